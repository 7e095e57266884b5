"""The SDK's two explicit state machines, sans-I/O: the connection and the sync.

Each is an ``Enum`` of states, an ``Enum`` of triggers and a transition table; a trigger
missing from the table for the current state is a bug and raises
:class:`~magpie.errors.LocalProtocolError` (STYLE habit 4, as in ``protocol.connection``).

Connection (spec §3 behaviour of SDK 1.0.4, with backoff instead of a fixed 3 s)::

    IDLE --START--> CONNECTING --CONNACK_OK--> CONNECTED --LINK_LOST--> WAITING
                    CONNECTING --DIAL_FAILED--> WAITING --RETRY--> CONNECTING
                    CONNECTING --REFUSED--> REFUSED    (CONNACK refused the credentials)
                    CONNECTED --KICK--> KICKED         (the server sent DISCONNECT)
    every state but CLOSED --CLOSE--> CLOSED

Sync (one full sync after every connect; CMD-driven pulls do not change it)::

    IDLE/SYNCED/FAILED --BEGIN--> SYNCING --SUCCEED--> SYNCED
                                  SYNCING --FAIL--> FAILED
    any --LINK_LOST--> IDLE
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Generic, TypeVar

from magpie.errors import LocalProtocolError

__all__ = [
    "CONNECTION_TRANSITIONS",
    "SYNC_TRANSITIONS",
    "ConnectionState",
    "ConnectionTrigger",
    "StateChange",
    "StateMachine",
    "SyncState",
    "SyncTrigger",
    "backoff_delay",
]


class ConnectionState(Enum):
    """Where the client's connection is."""

    IDLE = "idle"  # built, not started
    CONNECTING = "connecting"  # dialling, handshake in progress
    CONNECTED = "connected"  # CONNACK success: sends flow, heartbeats run
    WAITING = "waiting"  # link lost or dial failed; backoff before the next attempt
    REFUSED = "refused"  # CONNACK refused the credentials: no retry
    KICKED = "kicked"  # the server sent DISCONNECT (e.g. another login): no retry
    CLOSED = "closed"  # close() was called

    @property
    def terminal(self) -> bool:
        """Whether the client will not connect again by itself."""
        return self in (ConnectionState.REFUSED, ConnectionState.KICKED, ConnectionState.CLOSED)


class ConnectionTrigger(Enum):
    """What moves the connection state."""

    START = "start"
    CONNACK_OK = "connack_ok"
    REFUSED = "refused"
    DIAL_FAILED = "dial_failed"
    LINK_LOST = "link_lost"
    KICK = "kick"
    RETRY = "retry"
    CLOSE = "close"


class SyncState(Enum):
    """Where the cache's catch-up with the server is."""

    IDLE = "idle"  # not connected, or connected and not started
    SYNCING = "syncing"
    SYNCED = "synced"  # caught up as of the last full sync (live updates keep it so)
    FAILED = "failed"  # the last full sync failed; retried on the next connect


class SyncTrigger(Enum):
    """What moves the sync state."""

    BEGIN = "begin"
    SUCCEED = "succeed"
    FAIL = "fail"
    LINK_LOST = "link_lost"


_C, _CT = ConnectionState, ConnectionTrigger


def _connection_table() -> dict[tuple[ConnectionState, ConnectionTrigger], ConnectionState]:
    table = {
        (_C.IDLE, _CT.START): _C.CONNECTING,
        (_C.CONNECTING, _CT.CONNACK_OK): _C.CONNECTED,
        (_C.CONNECTING, _CT.REFUSED): _C.REFUSED,
        (_C.CONNECTING, _CT.DIAL_FAILED): _C.WAITING,
        (_C.CONNECTED, _CT.LINK_LOST): _C.WAITING,
        (_C.CONNECTED, _CT.KICK): _C.KICKED,
        (_C.WAITING, _CT.RETRY): _C.CONNECTING,
    }
    for state in _C:
        if state is not _C.CLOSED:
            table[state, _CT.CLOSE] = _C.CLOSED
    return table


_S, _ST = SyncState, SyncTrigger


def _sync_table() -> dict[tuple[SyncState, SyncTrigger], SyncState]:
    table = {
        (_S.SYNCING, _ST.SUCCEED): _S.SYNCED,
        (_S.SYNCING, _ST.FAIL): _S.FAILED,
    }
    for state in (_S.IDLE, _S.SYNCED, _S.FAILED):
        table[state, _ST.BEGIN] = _S.SYNCING
    for state in _S:
        table[state, _ST.LINK_LOST] = _S.IDLE
    return table


#: ``(state, trigger) -> next state`` of the connection; a missing key is not allowed.
CONNECTION_TRANSITIONS: Mapping[tuple[ConnectionState, ConnectionTrigger], ConnectionState] = (
    MappingProxyType(_connection_table())
)
#: ``(state, trigger) -> next state`` of the sync; a missing key is not allowed.
SYNC_TRANSITIONS: Mapping[tuple[SyncState, SyncTrigger], SyncState] = MappingProxyType(
    _sync_table()
)

S = TypeVar("S", bound=Enum)
T = TypeVar("T", bound=Enum)


@dataclass(frozen=True, slots=True)
class StateChange(Generic[S, T]):
    """One transition: ``old --trigger--> new``. ``reason`` is the WuKongIM reason code of a
    refusal or kick; ``delay`` the backoff before the next attempt when entering WAITING."""

    old: S
    new: S
    trigger: T
    reason: int | None = None
    delay: float | None = None
    detail: str = ""


class StateMachine(Generic[S, T]):
    """A state and its transition table. :meth:`fire` moves it or raises."""

    def __init__(self, table: Mapping[tuple[S, T], S], initial: S) -> None:
        self._table = table
        self._state = initial

    @property
    def state(self) -> S:
        """The current state."""
        return self._state

    def can(self, trigger: T) -> bool:
        """Whether ``trigger`` is allowed now."""
        return (self._state, trigger) in self._table

    def fire(
        self, trigger: T, *, reason: int | None = None, delay: float | None = None, detail: str = ""
    ) -> StateChange[S, T]:
        """Apply ``trigger`` and return the change; :class:`LocalProtocolError` if the table
        has no such transition (the state is then unchanged)."""
        following = self._table.get((self._state, trigger))
        if following is None:
            raise LocalProtocolError(f"{trigger.name} is not allowed in state {self._state.name}")
        change = StateChange(self._state, following, trigger, reason, delay, detail)
        self._state = following
        return change


def backoff_delay(
    attempt: int, initial: float, maximum: float, jitter: float, rand: Callable[[], float]
) -> float:
    """The pause before reconnect attempt ``attempt`` (0-based): ``initial * 2**attempt``
    capped at ``maximum``, scaled by a uniform factor in ``[1 - jitter, 1]`` (``rand`` returns
    a float in [0, 1)). Jitter spreads a crowd of clients that lost the same server."""
    base = min(maximum, initial * 2.0 ** min(max(attempt, 0), 64))
    return base * (1.0 - jitter * rand())

"""Every tunable of the SDK, in one frozen, validated object (STYLE habits 2 and 12).

Each limit has a safe default and is checked at construction: a bad value raises
:class:`~magpie.client.errors.InvalidArgument` naming the option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from magpie.client.errors import InvalidArgument

__all__ = ["ClientOptions"]

#: WuKongIM ``/channel/messagesync`` accepts at most this ``limit`` (spec §6).
MAX_MESSAGESYNC_LIMIT = 10_000
#: ``/conversation/sync`` returns at most this many recents per conversation.
MAX_RECENTS = 100
_SYNCHRONOUS = frozenset({"FULL", "NORMAL", "OFF", "EXTRA"})


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """The SDK's limits and timings (seconds unless stated)."""

    #: Time for the WebSocket to open and the server to answer CONNECT.
    connect_timeout: float = 10.0
    #: A PING is sent this often while connected (SDK 1.0.4 pings every 60 s, spec §3; the
    #: server closes a connection idle for 180 s).
    heartbeat_interval: float = 30.0
    #: A PING unanswered this long means the link is dead: it is closed and redialled.
    pong_timeout: float = 10.0
    #: Reconnect backoff: the first delay, the cap, and the jitter fraction (a delay ``d``
    #: becomes uniform in ``[d * (1 - jitter), d]``).
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: float = 0.5
    #: Timeout of one HTTP API request.
    request_timeout: float = 15.0
    #: Tries of one sync read (``/conversation/sync``, ``/channel/messagesync``,
    #: ``/message/extra/sync``) answered 503 with ``Retry-After`` (an overloaded node's
    #: ``busy``, or ``store_unavailable``), each after the pause it asks for …
    read_attempts: int = 3
    #: … but never longer than this.
    read_retry_max: float = 5.0
    #: Largest message payload (compact UTF-8 JSON) :meth:`Client.send` accepts; the
    #: server's default ``max_payload_bytes``.
    max_payload_bytes: int = 512 * 1024
    #: Messages per ``/channel/messagesync`` page while filling gaps.
    sync_page_size: int = 1000
    #: Rows per ``/message/extra/sync`` page; keep it at or below the server's cap
    #: (``ext_sync_max_limit``, 1000 by default).
    ext_page_size: int = 1000
    #: Recent messages asked for per conversation in ``/conversation/sync``. 0 by default:
    #: recents carry no extension, ``/channel/messagesync`` pages do.
    recents_per_conversation: int = 0
    #: Only the newest this-many messages of a channel are backfilled; ``None`` = all.
    history_limit: int | None = None
    #: A live message that leaves a hole in its channel's seqs triggers a fill after this
    #: delay (the missing message usually arrives by itself first).
    gap_fill_delay: float = 0.5
    #: RECVs cached (and then acknowledged) per cache transaction, at most.
    recv_batch: int = 256
    #: Items an async-iterator listener buffers; beyond it the oldest is dropped (and
    #: counted in ``Stream.dropped``).
    stream_max_queue: int = 10_000
    #: SQLite ``synchronous`` of the cache. FULL: a RECVACK is sent only once the message is
    #: on disk (the durability the server's retry relies on).
    cache_synchronous: str = "FULL"
    #: Attempts of one card action on transport errors and 502/503/504 (same action_id).
    card_attempts: int = 3
    #: Pause before the first card retry (doubles each time).
    card_retry_delay: float = 0.2

    def __post_init__(self) -> None:
        for f in fields(self):
            _check(f.name, getattr(self, f.name))

    def replace(self, **changes: Any) -> ClientOptions:
        """A validated copy with ``changes`` applied."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return ClientOptions(**values)


_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "max_payload_bytes": (1, 2**28),
    "sync_page_size": (1, MAX_MESSAGESYNC_LIMIT),
    "ext_page_size": (1, MAX_MESSAGESYNC_LIMIT),
    "recents_per_conversation": (0, MAX_RECENTS),
    "history_limit": (1, 2**62),
    "recv_batch": (1, 100_000),
    "stream_max_queue": (1, 10_000_000),
    "card_attempts": (1, 100),
    "read_attempts": (1, 100),
}
_FRACTIONS = frozenset({"backoff_jitter"})
_POSITIVE = frozenset({"connect_timeout", "heartbeat_interval", "pong_timeout", "request_timeout"})


def _check(name: str, value: object) -> None:
    if name == "cache_synchronous":
        if value not in _SYNCHRONOUS:
            raise InvalidArgument(name, f"must be one of {sorted(_SYNCHRONOUS)}, got {value!r}")
    elif name in _INT_BOUNDS:
        if value is None and name == "history_limit":
            return
        low, high = _INT_BOUNDS[name]
        if type(value) is not int or not low <= value <= high:
            raise InvalidArgument(name, f"must be an int in {low}..{high}, got {value!r}")
    else:
        _check_seconds(name, value)


def _check_seconds(name: str, value: object) -> None:
    """A finite number: > 0 for timeouts, in 0..1 for a fraction, >= 0 otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(name, f"must be a finite number, got {value!r}")
    if name in _POSITIVE and value <= 0:
        raise InvalidArgument(name, f"must be > 0, got {value!r}")
    if name in _FRACTIONS and not 0 <= value <= 1:
        raise InvalidArgument(name, f"must be in 0..1, got {value!r}")
    if value < 0:
        raise InvalidArgument(name, f"must be >= 0, got {value!r}")

"""The SDK's state machines (transition tables) and the reconnect backoff."""

from __future__ import annotations

import pytest

from magpie.client.state import (
    CONNECTION_TRANSITIONS,
    SYNC_TRANSITIONS,
    ConnectionState,
    ConnectionTrigger,
    StateMachine,
    SyncState,
    SyncTrigger,
    backoff_delay,
)
from magpie.errors import LocalProtocolError

C, T = ConnectionState, ConnectionTrigger


def test_connection_happy_path_and_reconnect() -> None:
    m = StateMachine(CONNECTION_TRANSITIONS, C.IDLE)
    path = [T.START, T.CONNACK_OK, T.LINK_LOST, T.RETRY, T.DIAL_FAILED, T.RETRY, T.CONNACK_OK]
    states = [m.fire(t).new for t in path]
    assert states == [
        C.CONNECTING,
        C.CONNECTED,
        C.WAITING,
        C.CONNECTING,
        C.WAITING,
        C.CONNECTING,
        C.CONNECTED,
    ]
    change = m.fire(T.KICK, reason=12, detail="login elsewhere")
    assert (change.old, change.new, change.reason, change.detail) == (
        C.CONNECTED,
        C.KICKED,
        12,
        "login elsewhere",
    )
    assert m.state.terminal


@pytest.mark.parametrize("state", list(C))
def test_close_is_allowed_from_every_state_but_closed(state: ConnectionState) -> None:
    m = StateMachine(CONNECTION_TRANSITIONS, state)
    if state is C.CLOSED:
        with pytest.raises(LocalProtocolError):
            m.fire(T.CLOSE)
    else:
        assert m.fire(T.CLOSE).new is C.CLOSED


def test_terminal_states_allow_nothing_but_close() -> None:
    for state in (C.REFUSED, C.KICKED, C.CLOSED):
        allowed = {t for (s, t) in CONNECTION_TRANSITIONS if s is state}
        assert allowed <= {T.CLOSE}


def test_a_missing_transition_raises_and_keeps_the_state() -> None:
    m = StateMachine(CONNECTION_TRANSITIONS, C.IDLE)
    with pytest.raises(LocalProtocolError, match="CONNACK_OK is not allowed in state IDLE"):
        m.fire(T.CONNACK_OK)
    assert m.state is C.IDLE and not m.can(T.RETRY) and m.can(T.START)


def test_sync_machine() -> None:
    m = StateMachine(SYNC_TRANSITIONS, SyncState.IDLE)
    assert m.fire(SyncTrigger.BEGIN).new is SyncState.SYNCING
    with pytest.raises(LocalProtocolError):
        m.fire(SyncTrigger.BEGIN)  # one full sync at a time
    assert m.fire(SyncTrigger.FAIL).new is SyncState.FAILED
    assert m.fire(SyncTrigger.BEGIN).new is SyncState.SYNCING
    assert m.fire(SyncTrigger.SUCCEED).new is SyncState.SYNCED
    assert m.fire(SyncTrigger.LINK_LOST).new is SyncState.IDLE
    with pytest.raises(LocalProtocolError):
        m.fire(SyncTrigger.SUCCEED)


def test_backoff_grows_exponentially_to_the_cap() -> None:
    no_jitter = [backoff_delay(a, 0.5, 30, 0.5, lambda: 0.0) for a in range(10)]
    assert no_jitter == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert backoff_delay(10_000, 0.5, 30, 0.5, lambda: 0.0) == 30, "no overflow"


@pytest.mark.parametrize("r", [0.0, 0.25, 0.999])
def test_backoff_jitter_stays_in_its_band(r: float) -> None:
    delay = backoff_delay(3, 0.5, 30, 0.5, lambda: r)
    assert 2.0 <= delay <= 4.0 and delay == pytest.approx(4.0 * (1 - 0.5 * r))

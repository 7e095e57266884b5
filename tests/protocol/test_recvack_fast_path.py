"""``Connection.receive_recvack`` answers exactly as ``receive_data`` would, or not at all."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magpie.errors import ProtocolError
from magpie.protocol.codec import encode
from magpie.protocol.connection import Connection, Role
from magpie.protocol.packets import Connack, Connect, Flags, Recvack


def established(version: int) -> tuple[Connection, Connection]:
    """Two identical server connections after a successful handshake at ``version``."""
    pair = []
    for _ in range(2):
        conn = Connection(Role.SERVER)
        conn.receive_data(encode(Connect(version, 1, "d", "u", "t", 0, "k")))
        conn.send(Connack(0, 1, "k", "s" * 16, server_version=6))
        pair.append(conn)
    return pair[0], pair[1]


def _near_recvack(version: int) -> st.SearchStrategy[bytes]:
    seq_max = 2**64 - 1 if version >= 6 else 2**32 - 1
    valid = st.builds(
        lambda mid, seq, flags: encode(Recvack(mid, seq, Flags(flags)), version),
        st.integers(-(2**63), 2**63 - 1),
        st.integers(0, seq_max),
        st.integers(0, 15),
    )
    mutated = st.tuples(valid, st.integers(0, 17), st.integers(0, 255)).map(
        lambda t: t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1 :]
    )
    return st.one_of(valid, mutated, st.binary(min_size=0, max_size=20))


@pytest.mark.parametrize("version", [2, 3, 5, 6])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fast_path_agrees_with_receive_data(version: int, data: st.DataObject) -> None:
    frame = data.draw(_near_recvack(version))
    fast_conn, slow_conn = established(version)
    fast = fast_conn.receive_recvack(frame)
    try:
        slow = slow_conn.receive_data(frame)
    except ProtocolError:
        assert fast is None, "the fast path accepted a frame the normal path refuses"
        return
    if fast is None:
        return  # the fast path may decline anything; the normal path then handles it
    assert len(slow) == 1 and isinstance(slow[0], Recvack)
    assert fast == (slow[0].message_id, slow[0].message_seq, int(slow[0].flags))


@pytest.mark.parametrize("version", [2, 3, 5, 6])
def test_fast_path_takes_every_well_formed_recvack_once_established(version: int) -> None:
    conn, _ = established(version)
    for flags in (Flags.NONE, Flags.RED_DOT, Flags.SYNC_ONCE):
        ack = Recvack(2**62 + 7, 2**31 + 5, flags)
        assert conn.receive_recvack(encode(ack, version)) == (2**62 + 7, 2**31 + 5, int(flags))


def test_fast_path_declines_after_a_protocol_error() -> None:
    conn, _ = established(2)
    frame = encode(Recvack(1, 1), 2)
    assert conn.receive_recvack(frame) is not None
    with pytest.raises(ProtocolError):
        conn.receive_data(b"\x00\x00")  # type 0: not a packet
    assert conn.receive_recvack(frame) is None


def test_fast_path_declines_before_the_handshake() -> None:
    conn = Connection(Role.SERVER)
    assert conn.receive_recvack(encode(Recvack(1, 1))) is None

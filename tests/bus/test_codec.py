"""The bus wire format: round trips (property tests) and malformed frames."""

from __future__ import annotations

import struct

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from magpie.bus.codec import BusDecodeError, decode_frame, encode_body, frame
from magpie.bus.interface import BusEvent, Delivery, Kick
from magpie.store.interface import StoredMessage

I64 = st.integers(min_value=0, max_value=2**63 - 1)
SMALL = st.integers(min_value=0, max_value=255)
TEXT = st.text(max_size=40)

messages = st.builds(
    StoredMessage,
    message_id=I64,
    message_seq=I64,
    client_msg_no=TEXT,
    from_uid=TEXT,
    channel_id=TEXT,
    channel_type=SMALL,
    timestamp=st.integers(min_value=0, max_value=2**40),
    payload=st.binary(max_size=300),
    flags=SMALL,
    setting=SMALL,
    topic=TEXT,
    expire=st.integers(min_value=0, max_value=2**31),
)
uids = st.lists(st.text(min_size=1, max_size=20), unique=True, max_size=12)


@given(messages, uids, st.booleans(), st.integers(min_value=0, max_value=1023), st.data())
def test_a_delivery_round_trips_with_the_recipients_of_one_node(
    message: StoredMessage, recipients: list[str], with_seqs: bool, origin: int, data: st.DataObject
) -> None:
    seqs = {uid: data.draw(I64) for uid in recipients} if with_seqs else {}
    event = Delivery(message, tuple(recipients), "conn-7", seqs)
    held = [uid for uid in recipients if data.draw(st.booleans())]  # this node's share
    body = encode_body(event, origin)
    wire = frame(held, [str(seqs[uid]) for uid in held] if seqs else [], body)
    got_origin, got = decode_frame(wire)
    assert got_origin == origin
    expected_seqs = {uid: seqs[uid] for uid in held} if seqs else {}
    assert got == Delivery(message, tuple(held), "", expected_seqs)


@given(
    st.text(max_size=40),
    st.one_of(st.none(), SMALL),
    SMALL,
    TEXT,
    st.integers(min_value=0, max_value=1023),
)
def test_a_kick_round_trips_without_its_local_connection(
    uid: str, flag: int | None, code: int, reason: str, origin: int
) -> None:
    event = Kick(uid, flag, code, reason, keep_conn="c1")
    assert decode_frame(frame([uid], [], encode_body(event, origin))) == (
        origin,
        Kick(uid, flag, code, reason),
    )


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_bus_decode_error(data: bytes) -> None:
    try:
        _, event = decode_frame(data)
    except BusDecodeError:
        return
    assert isinstance(event, Delivery | Kick)


def _delivery_body() -> bytes:
    return encode_body(Delivery(StoredMessage(1, 1, "c", "a", "g", 2, 0, b""), ("bob",)), 1)


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x00\x00",
        struct.pack(">I", 99) + b"\x92\x90\x90",  # header length past the end
        frame([], [], msgspec.msgpack.encode([9, 1, "new kind of event"])),  # unknown tag
        frame(["bob", "carol"], ["1"], _delivery_body()),  # seqs do not match recipients
        frame(["bob"], ["not a number"], _delivery_body()),
        frame(["bob"], [], _delivery_body())[:-3],  # truncated body
    ],
)
def test_malformed_frames_raise_bus_decode_error(wire: bytes) -> None:
    with pytest.raises(BusDecodeError) as err:
        decode_frame(wire)
    assert err.value.code == "bus_decode_error"


def test_a_frame_is_compact() -> None:
    """The body carries the payload as raw bytes: no base64, no field names."""
    payload = b'{"type":1,"content":"hello"}'
    event: BusEvent = Delivery(StoredMessage(2**62, 7, "cmn", "alice", "g1", 2, 1, payload), ())
    body = encode_body(event, 3)
    assert payload in body
    assert len(body) < len(payload) + 40

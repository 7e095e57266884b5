"""Every limit of :class:`magpie.protocol.Limits` accepted at N and refused at N+1, when decoding
(FrameTooLarge, the peer's fault) and when encoding (LocalProtocolError, ours)."""

from __future__ import annotations

import dataclasses

import pytest

from magpie.errors import FrameTooLarge, LocalProtocolError, MalformedPacket
from magpie.protocol import DEFAULT_LIMITS, Decoder, Limits, decode, encode
from magpie.protocol.codec import encode_varint
from magpie.protocol.packets import Disconnect, Flags, ReasonCode, Recv, Send, Setting

BIG = Limits(max_remaining_length=2**28 - 1, max_string=65535, max_payload=2**28 - 1)


def test_defaults() -> None:
    assert Limits() == DEFAULT_LIMITS
    assert (Limits().max_remaining_length, Limits().max_string, Limits().max_payload) == (
        1_048_576,
        32_767,
        1_048_576,
    )


@pytest.mark.parametrize("name", ["max_remaining_length", "max_string", "max_payload"])
@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10", None])
def test_invalid_values_refused(name: str, bad: object) -> None:
    with pytest.raises(LocalProtocolError, match=name):
        Limits(**{name: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "upper"),
    [("max_remaining_length", 2**28 - 1), ("max_string", 65535), ("max_payload", 2**28 - 1)],
)
def test_upper_bounds(name: str, upper: int) -> None:
    assert getattr(Limits(**{name: upper}), name) == upper
    with pytest.raises(LocalProtocolError, match=name):
        Limits(**{name: upper + 1})


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_LIMITS.max_string = 1  # type: ignore[misc]


# --------------------------------------------------------------------------- max_remaining_length


def _disconnect_with_body(size: int) -> Disconnect:
    """A DISCONNECT whose body is exactly ``size`` bytes (u8 + u16 length + reason)."""
    return Disconnect(reason_code=1, reason="x" * (size - 3))


@pytest.mark.parametrize("limit", [3, 200, 16384])
def test_remaining_length_at_n_and_n_plus_1(limit: int) -> None:
    limits = Limits(max_remaining_length=limit)
    at_n = encode(_disconnect_with_body(limit), limits=limits)
    assert decode(at_n, limits=limits) == _disconnect_with_body(limit)
    assert Decoder(limits=limits).feed(at_n) == [_disconnect_with_body(limit)]
    over = encode(_disconnect_with_body(limit + 1), limits=BIG)
    with pytest.raises(FrameTooLarge) as info:
        decode(over, limits=limits)
    assert info.value.reason == ReasonCode.PAYLOAD_DECODE_ERROR
    with pytest.raises(FrameTooLarge):
        Decoder(limits=limits).feed(over)
    with pytest.raises(LocalProtocolError):
        encode(_disconnect_with_body(limit + 1), limits=limits)


def _send_with_body(size: int) -> Send:
    """A SEND (v2, no options) whose body is exactly ``size`` bytes: 17 fixed + payload."""
    return Send(Setting.NONE, 1, "c", "u", 1, "k", b"\x00" * (size - 15), Flags.RED_DOT)


def test_default_remaining_length_one_mib() -> None:
    limit = DEFAULT_LIMITS.max_remaining_length
    at_n = encode(_send_with_body(limit))
    assert at_n[1:4] == encode_varint(limit) and len(at_n) == 1 + 3 + limit
    assert decode(at_n) == _send_with_body(limit)
    over = encode(_send_with_body(limit + 1), limits=BIG)
    with pytest.raises(FrameTooLarge):
        decode(over)
    with pytest.raises(LocalProtocolError):
        encode(_send_with_body(limit + 1))


def test_remaining_length_refused_before_the_body_arrives() -> None:
    """The header alone is enough to refuse: a peer cannot make us buffer the body."""
    header = b"\x30" + encode_varint(DEFAULT_LIMITS.max_remaining_length + 1)
    decoder = Decoder()
    assert decoder.feed(header[:2]) == []
    with pytest.raises(FrameTooLarge):
        decoder.feed(header[2:])
    assert decoder.buffered == 0


def test_remaining_length_at_limit_waits_for_body() -> None:
    decoder = Decoder()
    assert decoder.feed(b"\x30" + encode_varint(DEFAULT_LIMITS.max_remaining_length)) == []
    assert decoder.buffered == 4  # header byte + 3 length bytes


# --------------------------------------------------------------------------- max_string


@pytest.mark.parametrize("limit", [1, 10, 32767])
def test_string_at_n_and_n_plus_1(limit: int) -> None:
    limits = Limits(max_string=limit)
    ok = Disconnect(reason_code=1, reason="y" * limit)
    assert decode(encode(ok, limits=limits), limits=limits) == ok
    too_long = Disconnect(reason_code=1, reason="y" * (limit + 1))
    data = encode(too_long, limits=BIG)
    with pytest.raises(FrameTooLarge):
        decode(data, limits=limits)
    with pytest.raises(FrameTooLarge):
        Decoder(limits=limits).feed(data)
    with pytest.raises(LocalProtocolError):
        encode(too_long, limits=limits)


def test_string_limit_counts_utf8_bytes() -> None:
    limits = Limits(max_string=4)
    assert encode(Disconnect(1, "éé"), limits=limits)  # 4 bytes
    with pytest.raises(LocalProtocolError):
        encode(Disconnect(1, "éé."), limits=limits)  # 3 characters, 5 bytes
    with pytest.raises(FrameTooLarge):
        decode(encode(Disconnect(1, "ééé"), limits=BIG), limits=limits)


def test_string_limit_applies_to_every_string_field() -> None:
    limits = Limits(max_string=3)
    base = dataclasses.asdict(Recv(Setting.TOPIC, "k", "a", "b", 1, "c", 1, 2, 3, b"", topic="t"))
    for field in ("msg_key", "from_uid", "channel_id", "client_msg_no", "topic"):
        recv = Recv(**{**base, field: "long"})
        with pytest.raises(LocalProtocolError):
            encode(recv, limits=limits)
        with pytest.raises(FrameTooLarge):
            decode(encode(recv, limits=BIG), limits=limits)


def test_string_length_over_limit_refused_even_if_truncated() -> None:
    """A claimed string length over the limit is a FrameTooLarge, not a wait or a truncation."""
    data = bytes.fromhex("9004 0c ffff 00".replace(" ", ""))
    with pytest.raises(FrameTooLarge):
        decode(data)
    with pytest.raises(MalformedPacket):
        decode(data, limits=BIG)


# --------------------------------------------------------------------------- max_payload


def _recv(payload: bytes) -> Recv:
    return Recv(Setting.NONE, "k", "a", "b", 1, "c", 1, 2, 3, payload)


@pytest.mark.parametrize("limit", [1, 100, 4096])
@pytest.mark.parametrize("make", [_recv, lambda p: Send(Setting.NONE, 1, "c", "u", 1, "k", p)])
def test_payload_at_n_and_n_plus_1(limit: int, make: object) -> None:
    assert callable(make)
    limits = Limits(max_payload=limit)
    ok, too_big = make(b"p" * limit), make(b"p" * (limit + 1))
    assert decode(encode(ok, limits=limits), limits=limits) == ok
    data = encode(too_big, limits=BIG)
    with pytest.raises(FrameTooLarge):
        decode(data, limits=limits)
    with pytest.raises(FrameTooLarge):
        Decoder(limits=limits).feed(data)
    with pytest.raises(LocalProtocolError):
        encode(too_big, limits=limits)


def test_default_payload_bound_by_remaining_length() -> None:
    """With the defaults the 1 MiB body cap binds first: a payload of max_payload bytes cannot
    fit beside the other fields (documented in Limits)."""
    payload = b"p" * DEFAULT_LIMITS.max_payload
    with pytest.raises(LocalProtocolError, match="max_remaining_length"):
        encode(_recv(payload))

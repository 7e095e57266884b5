"""Property tests of :mod:`magpie.protocol.codec`: every packet type at versions 2..6 survives
encode → decode fed whole, byte by byte, in random chunks and glued to other packets; random and
mutated bytes only ever give packets or ``RemoteProtocolError``."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magpie.errors import LocalProtocolError, RemoteProtocolError
from magpie.protocol import Decoder, Limits, decode, encode
from magpie.protocol.packets import (
    Connack,
    Connect,
    Disconnect,
    Flags,
    Packet,
    Ping,
    Pong,
    Recv,
    Recvack,
    Send,
    Sendack,
    Setting,
    Sub,
    Suback,
)
from tests.protocol.test_codec import GOLDEN

VERSIONS = st.integers(min_value=2, max_value=6)
u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
text = st.text(max_size=12)
payloads = st.binary(max_size=48)
flags = st.integers(0, 15).map(Flags)
settings_byte = st.integers(0, 0xFF).map(Setting)  # unknown bits included on purpose

PACKET_CLASSES = (
    Connect,
    Connack,
    Send,
    Sendack,
    Recv,
    Recvack,
    Ping,
    Pong,
    Disconnect,
    Sub,
    Suback,
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def sends(draw: st.DrawFn, v: int) -> Send:
    setting = draw(settings_byte)
    stream = bool(setting & Setting.STREAM) and 2 <= v < 5  # spec §1.4
    return Send(
        setting=setting,
        client_seq=draw(u32),
        client_msg_no=draw(text),
        channel_id=draw(text),
        channel_type=draw(u8),
        msg_key=draw(text),
        payload=draw(payloads),
        flags=draw(flags),
        stream_no=draw(text) if stream else "",
        topic=draw(text) if setting & Setting.TOPIC else "",
        expire=draw(u32) if v >= 3 else 0,
    )


@st.composite
def recvs(draw: st.DrawFn, v: int) -> Recv:
    setting = draw(settings_byte)
    stream = bool(setting & Setting.STREAM) and 2 <= v < 5
    return Recv(
        setting=setting,
        msg_key=draw(text),
        from_uid=draw(text),
        channel_id=draw(text),
        channel_type=draw(u8),
        client_msg_no=draw(text),
        message_id=draw(i64),
        message_seq=draw(u64 if v >= 6 else u32),
        timestamp=draw(i32),
        payload=draw(payloads),
        flags=draw(flags),
        expire=draw(u32) if v >= 3 else 0,
        stream_no=draw(text) if stream else "",
        stream_seq=draw(u32) if stream else 0,
        stream_flag=draw(u8) if stream else 0,
        topic=draw(text) if setting & Setting.TOPIC else "",
    )


def connects(v: int) -> st.SearchStrategy[Connect]:
    # The CONNECT's own version is the stream's version, so the decoder's adoption of it
    # (spec §1.4) does not change how the packets after it are read.
    return st.builds(Connect, st.just(v), u8, text, text, text, i64, text, flags)


def connacks(v: int) -> st.SearchStrategy[Connack]:
    server_version = u8 if v > 3 else st.just(0)
    node_id = u64 if v >= 4 else st.just(0)
    return st.builds(Connack, i64, u8, text, text, server_version, node_id)


def packets(v: int) -> st.SearchStrategy[Packet]:
    """Any packet whose every field is on the wire at version ``v``."""
    seq = u64 if v >= 6 else u32
    return st.one_of(
        connects(v),
        connacks(v),
        sends(v),
        st.builds(Sendack, i64, u32, seq, u8, flags, text),
        recvs(v),
        st.builds(Recvack, i64, seq, flags),
        st.just(Ping()),
        st.just(Pong()),
        st.builds(Disconnect, u8, text),
        st.builds(Sub, settings_byte, text, text, u8, u8, text),
        st.builds(Suback, text, text, u8, u8, u8),
    )


@st.composite
def versioned(draw: st.DrawFn, many: bool = False) -> tuple[int, list[Packet]]:
    v = draw(VERSIONS)
    items = draw(st.lists(packets(v), min_size=1, max_size=6)) if many else [draw(packets(v))]
    return v, items


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _feed_all(decoder: Decoder, chunks: list[bytes]) -> list[Packet]:
    return [packet for chunk in chunks for packet in decoder.feed(chunk)]


# --------------------------------------------------------------------------- round trips


@PROPERTY
@given(versioned())
def test_round_trip_whole(case: tuple[int, list[Packet]]) -> None:
    v, [packet] = case
    data = encode(packet, version=v)
    assert decode(data, version=v) == packet
    assert encode(decode(data, version=v), version=v) == data


@PROPERTY
@given(versioned())
def test_round_trip_byte_by_byte(case: tuple[int, list[Packet]]) -> None:
    v, [packet] = case
    data = encode(packet, version=v)
    decoder = Decoder(version=v)
    assert _feed_all(decoder, [data[i : i + 1] for i in range(len(data))]) == [packet]
    assert decoder.buffered == 0


@PROPERTY
@given(versioned(many=True), st.lists(st.integers(min_value=0), max_size=12))
def test_round_trip_concatenated_random_chunks(
    case: tuple[int, list[Packet]], cuts: list[int]
) -> None:
    v, items = case
    data = b"".join(encode(p, version=v) for p in items)
    decoder = Decoder(version=v)
    assert _feed_all(decoder, _chunks(data, cuts)) == items
    assert decoder.buffered == 0


@PROPERTY
@given(versioned(many=True))
def test_concatenated_in_one_chunk(case: tuple[int, list[Packet]]) -> None:
    v, items = case
    assert Decoder(version=v).feed(b"".join(encode(p, version=v) for p in items)) == items


# --------------------------------------------------------------------------- hostile input

REMOTE_ONLY = settings(max_examples=300, deadline=None)


def _feed_hostile(decoder: Decoder, chunks: list[bytes]) -> None:
    """Feed chunks; only packets or RemoteProtocolError may come out, then it stays poisoned."""
    for chunk in chunks:
        try:
            got = decoder.feed(chunk)
        except RemoteProtocolError as exc:
            _assert_poisoned(decoder, type(exc))
            return
        assert all(isinstance(p, PACKET_CLASSES) for p in got)


def _assert_poisoned(decoder: Decoder, kind: type[RemoteProtocolError]) -> None:
    try:
        decoder.feed(b"\x70")
    except kind:
        return
    raise AssertionError("decoder accepted bytes after an error")


@REMOTE_ONLY
@given(st.binary(max_size=200), st.lists(st.integers(min_value=0), max_size=8), VERSIONS)
def test_garbage_gives_packets_or_remote_errors(data: bytes, cuts: list[int], v: int) -> None:
    _feed_hostile(Decoder(version=v, limits=Limits(64, 16, 32)), _chunks(data, cuts))


@REMOTE_ONLY
@given(
    st.sampled_from(sorted(GOLDEN)),
    st.lists(st.tuples(st.integers(min_value=0), u8), min_size=1, max_size=4),
    VERSIONS,
)
def test_mutated_golden_vectors(name: str, flips: list[tuple[int, int]], v: int) -> None:
    data = bytearray.fromhex(GOLDEN[name][1])
    for index, mask in flips:
        data[index % len(data)] ^= mask
    _feed_hostile(Decoder(version=v), [bytes(data)])
    with contextlib.suppress(RemoteProtocolError):
        decode(bytes(data), version=v)


@settings(max_examples=200, deadline=None)
@given(st.integers(), st.integers(), VERSIONS)
def test_encode_any_int_gives_bytes_or_local_error(big: int, other: int, v: int) -> None:
    """Out-of-range ints surface as LocalProtocolError, never struct.error/OverflowError;
    in-range ones round-trip (no silent truncation)."""
    builders: list[Callable[[], Packet]] = [
        lambda: Sendack(big, other, big, other),
        lambda: Recvack(big, other),
        lambda: Connack(big, other, "", "", other if v > 3 else 0, big if v >= 4 else 0),
        lambda: Disconnect(big, ""),
        lambda: Suback("", "", big, other, big),
    ]
    for build in builders:
        packet = build()
        try:
            data = encode(packet, version=v)
        except LocalProtocolError:
            continue
        assert decode(data, version=v) == packet  # what did encode must be exactly in range

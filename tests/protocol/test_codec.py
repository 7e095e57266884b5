"""Example-based tests of :mod:`magpie.protocol.codec`: the golden vectors of spec §1.7 in both
directions, varints of §1.2, version-dependent layouts of §1.4/§1.6, and every error path."""

from __future__ import annotations

import pytest

from magpie.errors import (
    FrameTooLarge,
    LocalProtocolError,
    MalformedPacket,
    RemoteProtocolError,
)
from magpie.protocol import DEFAULT_LIMITS, Decoder, decode, encode
from magpie.protocol.codec import _str, decode_varint, encode_varint
from magpie.protocol.packets import (
    Connack,
    Connect,
    Disconnect,
    Flags,
    Packet,
    Ping,
    Pong,
    ReasonCode,
    Recv,
    Recvack,
    Send,
    Sendack,
    Setting,
    Sub,
    Suback,
)

PAYLOAD = b"aK13BUGJKW08BDUNpShD+bOn0weyKBBxm1XIylajT0Q="  # spec §1.7 / §2.4
PAYLOAD_HEX = PAYLOAD.hex()
BOB_PUBLIC = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="

SEND_V2 = Send(
    setting=Setting.NONE,
    client_seq=1,
    client_msg_no="cmn-1",
    channel_id="u2",
    channel_type=1,
    msg_key="1bd68ae6176df23bf304adac5344c373",
    payload=PAYLOAD,
    flags=Flags.RED_DOT,
)
RECV_V2 = Recv(
    setting=Setting.NONE,
    msg_key="9526787a80b5e8c565cadd2bd896c830",
    from_uid="u2",
    channel_id="u1",
    channel_type=1,
    client_msg_no="cmn-2",
    message_id=1234567890123456790,
    message_seq=8,
    timestamp=1700000000,
    payload=PAYLOAD,
    flags=Flags.RED_DOT,
)
SENDACK = Sendack(
    message_id=1234567890123456789, client_seq=1, message_seq=7, reason_code=1, flags=Flags.RED_DOT
)
DISCONNECT = Disconnect(reason_code=12, reason="login in other device")
SUBACK = Suback(sub_no="", channel_id="room1", channel_type=7, action=0, reason_code=1)
SUB = Sub(
    setting=Setting.NONE, sub_no="", channel_id="room1", channel_type=7, action=0, param='{"a":"1"}'
)
CONNACK = Connack(time_diff=-5, reason_code=1, server_key=BOB_PUBLIC, salt="abcdef1234567890")

#: Spec §1.7, verbatim.
GOLDEN: dict[str, tuple[Packet, str]] = {
    "send_v2": (
        SEND_V2,
        "325f00000000010005636d6e2d31000275320100203162643638616536313736646632336266333034"
        "616461633533343463333733614b31334255474a4b5730384244554e705368442b624f6e307765794b"
        "4242786d315849796c616a5430513d",
    ),
    "recv_v2": (
        RECV_V2,
        "526f00002039353236373837613830623565386335363563616464326264383936633833300002753200"
        "027531010005636d6e2d32112210f47de98116000000086553f100614b31334255474a4b573038424455"
        "4e705368442b624f6e307765794b4242786d315849796c616a5430513d",
    ),
    "sendack": (SENDACK, "4211112210f47de98115000000010000000701"),
    "disconnect": (DISCONNECT, "90180c00156c6f67696e20696e206f7468657220646576696365"),
    "suback": (SUBACK, "b00c00000005726f6f6d31070001"),
    "sub": (SUB, "a0170000000005726f6f6d31070000097b2261223a2231227d"),
    "connack": (
        CONNACK,
        "2049fffffffffffffffb01002c33703762665874397762545457324843374f51314e7a2b44513868626547"
        "644e7266782b46472b494b30383d001061626364656631323334353637383930",
    ),
    "ping": (Ping(), "70"),
    "pong": (Pong(), "80"),
}
GOLDEN_IDS = list(GOLDEN)


def h(text: str) -> bytes:
    """Hex with spaces allowed, for readable expected bytes."""
    return bytes.fromhex(text.replace(" ", ""))


def _fields(packet: Packet) -> dict[str, object]:
    """The packet's fields as keyword arguments, to build a variant with ``{**…, k: v}``."""
    return {name: getattr(packet, name) for name in packet.__dataclass_fields__}


# --------------------------------------------------------------------------- golden vectors


@pytest.mark.parametrize("name", GOLDEN_IDS)
def test_golden_encode(name: str) -> None:
    packet, hex_bytes = GOLDEN[name]
    assert encode(packet).hex() == hex_bytes


@pytest.mark.parametrize("name", GOLDEN_IDS)
def test_golden_decode(name: str) -> None:
    packet, hex_bytes = GOLDEN[name]
    assert decode(bytes.fromhex(hex_bytes)) == packet


@pytest.mark.parametrize("name", GOLDEN_IDS)
def test_golden_feed_byte_by_byte(name: str) -> None:
    packet, hex_bytes = GOLDEN[name]
    data = bytes.fromhex(hex_bytes)
    decoder = Decoder()
    got = [p for i in range(len(data)) for p in decoder.feed(data[i : i + 1])]
    assert got == [packet]
    assert decoder.buffered == 0


def test_golden_all_in_one_chunk() -> None:
    data = b"".join(bytes.fromhex(hex_bytes) for _, hex_bytes in GOLDEN.values())
    assert Decoder().feed(data) == [packet for packet, _ in GOLDEN.values()]


@pytest.mark.parametrize("name", GOLDEN_IDS)
def test_every_prefix_is_incomplete(name: str) -> None:
    """Spec §1.7 vectors cut short: feed() waits, decode() refuses."""
    data = bytes.fromhex(GOLDEN[name][1])
    for cut in range(len(data)):
        decoder = Decoder()
        assert decoder.feed(data[:cut]) == []
        assert decoder.buffered == cut
        assert decoder.feed(data[cut:]) == [GOLDEN[name][0]]
        with pytest.raises(MalformedPacket):
            decode(data[:cut])


def test_golden_field_values() -> None:
    """The decoded values the spec names for the vectors (guards against a symmetric bug)."""
    recv = decode(bytes.fromhex(GOLDEN["recv_v2"][1]))
    assert isinstance(recv, Recv)
    assert (recv.message_id, recv.message_seq, recv.timestamp) == (
        1234567890123456790,
        8,
        1700000000,
    )
    connack = decode(bytes.fromhex(GOLDEN["connack"][1]))
    assert isinstance(connack, Connack)
    assert connack.time_diff == -5 and connack.salt == "abcdef1234567890"


# ------------------------------------------------------------------- primitives (§1.1, §1.2)

VARINTS = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (321, "c102"),
    (1241, "d909"),
    (16383, "ff7f"),
    (16384, "808001"),
    (2097151, "ffff7f"),
    (2097152, "80808001"),
    (268435455, "ffffff7f"),
]


@pytest.mark.parametrize(("value", "hex_bytes"), VARINTS)
def test_varint_vectors(value: int, hex_bytes: str) -> None:
    data = bytes.fromhex(hex_bytes)
    assert encode_varint(value) == data
    assert decode_varint(data, 0) == (value, len(data))
    assert decode_varint(b"\xaa" + data + b"\xbb", 1) == (value, len(data) + 1)


@pytest.mark.parametrize("hex_bytes", ["", "80", "8080", "808080", "ffffff"])
def test_varint_incomplete(hex_bytes: str) -> None:
    assert decode_varint(bytes.fromhex(hex_bytes), 0) is None


def test_varint_fifth_byte_is_malformed() -> None:
    with pytest.raises(MalformedPacket):
        decode_varint(h("80 80 80 80"), 0)
    with pytest.raises(MalformedPacket):
        decode_varint(h("ff ff ff ff 01"), 0)


def test_varint_non_minimal_accepted() -> None:
    assert decode_varint(h("81 00"), 0) == (1, 2)


@pytest.mark.parametrize("value", [-1, 268435456, 2**40, True, 1.0])
def test_varint_encode_out_of_range(value: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode_varint(value)  # type: ignore[arg-type]


def test_string_hello() -> None:
    """The one exact-byte assertion in the Go tests (spec §1.9)."""
    assert _str("hello", DEFAULT_LIMITS) == h("00 05 68 65 6c 6c 6f")
    assert _str("", DEFAULT_LIMITS) == h("00 00")
    assert _str("中", DEFAULT_LIMITS) == h("00 03 e4 b8 ad")


def test_ping_pong_single_bytes() -> None:
    assert encode(Ping()) == b"\x70"
    assert encode(Pong()) == b"\x80"
    assert Decoder().feed(b"\x70\x80\x70") == [Ping(), Pong(), Ping()]


def test_ping_flag_nibble_ignored() -> None:
    assert decode(b"\x71") == Ping()
    assert decode(b"\x8f") == Pong()


# ------------------------------------------------------------------- versions (§1.4, §1.6)


def test_send_expire_at_v3() -> None:
    send = Send(**{**_fields(SEND_V2), "expire": 0x01020304})
    # v2 vector with expire u32 inserted after channel_type (…0002 7532 01 | 01020304 | 0020…).
    v2 = bytes.fromhex(GOLDEN["send_v2"][1])
    at = v2.index(h("0002 7532 01")) + 5
    expected = b"\x32\x63" + v2[2:at] + h("01020304") + v2[at:]
    assert encode(send, version=3) == expected
    assert decode(expected, version=3) == send
    assert encode(send, version=2) == v2  # no room for expire in v2: left out


def test_recv_expire_at_v3() -> None:
    recv = Recv(**{**_fields(RECV_V2), "expire": 3600})
    v2 = bytes.fromhex(GOLDEN["recv_v2"][1])
    at = v2.index(h("0002 7531 01")) + 5
    expected = b"\x52\x73" + v2[2:at] + h("00000e10") + v2[at:]
    assert encode(recv, version=3) == expected
    assert decode(expected, version=3) == recv


def test_connack_v3_has_no_server_version_or_node_id() -> None:
    connack = Connack(**{**_fields(CONNACK), "server_version": 4, "node_id": 9})
    assert encode(connack, version=3) == bytes.fromhex(GOLDEN["connack"][1])


def test_connack_v4_server_version_and_node_id() -> None:
    connack = Connack(
        time_diff=0, reason_code=1, server_key="k", salt="s", server_version=4, node_id=2
    )
    expected = h("21 18  04  0000000000000000 01 0001 6b 0001 73  0000000000000002")
    assert encode(connack, version=4) == expected
    assert decode(expected, version=4) == connack


def test_connack_flag_decides_server_version_not_version() -> None:
    """A v2 client still reads server_version when HasServerVersion is set (spec §1.2)."""
    data = h("21 0e 06 0000000000000000 01 0000 0000")
    assert decode(data, version=2) == Connack(0, 1, "", "", server_version=6)


def test_sendack_v6_u64_seq() -> None:
    sendack = Sendack(message_id=-1, client_seq=2, message_seq=2**40, reason_code=1)
    expected = h("40 15 ffffffffffffffff 00000002 0000010000000000 01")
    assert encode(sendack, version=6) == expected
    assert decode(expected, version=6) == sendack
    with pytest.raises(LocalProtocolError):
        encode(sendack, version=5)  # 2**40 does not fit the u32 of v5


def test_recvack_v5_and_v6() -> None:
    recvack = Recvack(message_id=5, message_seq=7, flags=Flags.SYNC_ONCE | Flags.NO_PERSIST)
    assert encode(recvack, version=5) == h("65 0c 0000000000000005 00000007")
    assert encode(recvack, version=6) == h("65 10 0000000000000005 0000000000000007")
    assert decode(h("65 10 0000000000000005 0000000000000007"), version=6) == recvack


def test_recv_v6_u64_seq() -> None:
    recv = Recv(**{**_fields(RECV_V2), "message_seq": 2**33})
    data = encode(recv, version=6)
    assert h("112210f47de98116 0000000200000000 6553f100") in data
    assert decode(data, version=6) == recv


STREAM_RECV = Recv(
    setting=Setting.STREAM,
    msg_key="k",
    from_uid="a",
    channel_id="b",
    channel_type=2,
    client_msg_no="c",
    message_id=1,
    message_seq=2,
    timestamp=3,
    payload=b"P",
    stream_no="s1",
    stream_seq=9,
    stream_flag=1,
)
STREAM_RECV_V2 = h(
    "50 28 04 0001 6b 0001 61 0001 62 02 0001 63"
    " 0002 7331 00000009 01"  # 2023 stream layout: stream_no, stream_seq u32, stream_flag u8
    " 0000000000000001 00000002 00000003 50"
)


def test_recv_stream_2023_layout_at_v2() -> None:
    assert encode(STREAM_RECV, version=2) == STREAM_RECV_V2
    assert decode(STREAM_RECV_V2, version=2) == STREAM_RECV


def test_recv_no_stream_fields_at_v5() -> None:
    expected = h(
        "50 23 04 0001 6b 0001 61 0001 62 02 00000000 0001 63 0000000000000001 00000002 00000003 50"
    )
    assert encode(STREAM_RECV, version=5) == expected
    decoded = decode(expected, version=5)
    assert isinstance(decoded, Recv)
    assert decoded.setting == Setting.STREAM
    assert (decoded.stream_no, decoded.stream_seq, decoded.stream_flag) == ("", 0, 0)


def test_recv_no_stream_fields_at_v1() -> None:
    data = encode(STREAM_RECV, version=1)
    assert h("0002 7331") not in data
    assert decode(data, version=1) == Recv(
        **{**_fields(STREAM_RECV), "stream_no": "", "stream_seq": 0, "stream_flag": 0}
    )


def test_send_stream_at_v2_and_v5() -> None:
    send = Send(Setting.STREAM, 1, "c", "u", 1, "k", b"", stream_no="s")
    v2 = h("30 12 04 00000001 0001 63 0001 73 0001 75 01 0001 6b")
    assert encode(send, version=2) == v2
    assert decode(v2, version=2) == send
    assert encode(send, version=5) == h("30 13 04 00000001 0001 63 0001 75 01 00000000 0001 6b")


def test_topic_only_with_topic_bit() -> None:
    send = Send(Setting.TOPIC, 1, "c", "u", 1, "k", b"x", topic="t")
    data = encode(send)
    assert data == h("30 13 08 00000001 0001 63 0001 75 01 0001 6b 0001 74 78")
    assert decode(data) == send
    plain = Send(Setting.NONE, 1, "c", "u", 1, "k", b"x", topic="t")
    assert h("0001 74") not in encode(plain)


def test_sendack_trailing_client_msg_no() -> None:
    sendack = Sendack(1, 2, 3, 1, client_msg_no="cmn")
    data = encode(sendack)
    assert data == h("40 16 0000000000000001 00000002 00000003 01 0003 636d6e")
    assert decode(data) == sendack
    assert decode(h("40 13 0000000000000001 00000002 00000003 01 0000")) == Sendack(1, 2, 3, 1)


def test_connect_round_trip_and_layout() -> None:
    connect = Connect(2, 1, "d", "u", "t", -2, "key")
    data = h("10 18 02 01 0001 64 0001 75 0001 74 fffffffffffffffe 0003 6b6579")
    assert encode(connect) == data
    assert decode(data) == connect


def test_unknown_setting_bits_kept() -> None:
    sub = decode(h("a0 09 03 0000 0000 07 00 0000"))
    assert isinstance(sub, Sub)
    assert int(sub.setting) == 3
    assert encode(sub) == h("a0 09 03 0000 0000 07 00 0000")


def test_decoder_adopts_connect_version() -> None:
    connect = Connect(3, 1, "d", "u", "t", 0, "k")
    send = Send(Setting.NONE, 1, "c", "u", 1, "k", b"p", expire=77)
    decoder = Decoder()
    assert decoder.feed(encode(connect) + encode(send, version=3)) == [connect, send]
    assert decoder.version == 3


def test_decoder_caps_connect_version_at_latest() -> None:
    decoder = Decoder()
    decoder.feed(encode(Connect(200, 1, "d", "u", "t", 0, "k")))
    assert decoder.version == 6


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("kind", [0, 12, 13, 14, 15])
def test_unknown_packet_type(kind: int) -> None:
    data = bytes((kind << 4, 1, 0))
    with pytest.raises(MalformedPacket):
        decode(data)
    with pytest.raises(MalformedPacket):
        Decoder().feed(data[:1])  # refused from the header byte alone


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "1000",  # CONNECT with an empty body (length byte 0x00 = length 0)
        "9000",  # DISCONNECT, empty
        "9001 0c",  # DISCONNECT without its string
        "9003 0c 0005",  # string length past the end of the body
        "4212 1122 10f4 7de9 8115 0000 0001 0000 0007 01 00",  # SENDACK, half a trailing string
        "9004 0c 0000 ff",  # one trailing byte in a body
        "9004 0c 0001 ff",  # invalid UTF-8
        "9005 0c 0002 c3 28",  # invalid UTF-8 continuation
        "9005 0c 0002 eda0",  # a UTF-16 surrogate encoded in UTF-8
        "2009 0000000000000000 01",  # CONNACK missing key and salt
    ],
)
def test_malformed_bodies(hex_bytes: str) -> None:
    data = h(hex_bytes)
    with pytest.raises(MalformedPacket) as info:
        decode(data)
    assert info.value.reason == ReasonCode.PAYLOAD_DECODE_ERROR
    with pytest.raises(MalformedPacket):
        Decoder().feed(data)


def test_length_over_four_bytes_refused_without_waiting() -> None:
    decoder = Decoder()
    with pytest.raises(MalformedPacket):
        decoder.feed(h("30 ff ff ff ff"))


def test_decode_refuses_leftovers() -> None:
    with pytest.raises(MalformedPacket):
        decode(b"\x70\x70")
    with pytest.raises(MalformedPacket):
        decode(bytes.fromhex(GOLDEN["sub"][1]) + b"\x00")
    with pytest.raises(MalformedPacket):
        decode(b"")


def test_decoder_poisoned_after_error() -> None:
    decoder = Decoder()
    assert decoder.feed(b"\x70") == [Ping()]
    with pytest.raises(MalformedPacket):
        decoder.feed(b"\x00")
    with pytest.raises(MalformedPacket):
        decoder.feed(b"\x70")
    assert decoder.buffered == 0


def test_decoder_poison_keeps_kind() -> None:
    decoder = Decoder(limits=DEFAULT_LIMITS)
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"\x30" + encode_varint(DEFAULT_LIMITS.max_remaining_length + 1))
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"")


def test_decoder_buffers_partial_packet() -> None:
    data = bytes.fromhex(GOLDEN["sendack"][1])
    decoder = Decoder()
    assert decoder.feed(b"\x70" + data[:5]) == [Ping()]
    assert decoder.buffered == 5
    assert decoder.feed(data[5:] + data[:1]) == [SENDACK]
    assert decoder.buffered == 1


def test_decoder_accepts_bytearray_and_memoryview() -> None:
    data = bytes.fromhex(GOLDEN["suback"][1])
    decoder = Decoder()
    assert decoder.feed(bytearray(data[:3])) == []
    assert decoder.feed(memoryview(data)[3:]) == [SUBACK]


def test_remote_errors_are_remote_protocol_errors() -> None:
    assert issubclass(MalformedPacket, RemoteProtocolError)
    assert issubclass(FrameTooLarge, RemoteProtocolError)


# --------------------------------------------------------------------------- encoding misuse


@pytest.mark.parametrize(
    "packet",
    [
        Sendack(message_id=2**63, client_seq=1, message_seq=1, reason_code=1),
        Sendack(message_id=1, client_seq=-1, message_seq=1, reason_code=1),
        Sendack(message_id=1, client_seq=1, message_seq=1, reason_code=256),
        Recvack(message_id=1, message_seq=2**32),
        Recv(**{**_fields(RECV_V2), "timestamp": 2**31}),
        Recv(**{**_fields(RECV_V2), "setting": 256}),
        Send(**{**_fields(SEND_V2), "channel_type": -1}),
        Send(**{**_fields(SEND_V2), "flags": 16}),
        Send(**{**_fields(SEND_V2), "payload": "text"}),
        Send(**{**_fields(SEND_V2), "client_seq": 1.5}),
        Send(**{**_fields(SEND_V2), "channel_id": None}),
        Send(**{**_fields(SEND_V2), "channel_id": "\ud800"}),
        Connect(
            version=256,
            device_flag=1,
            device_id="",
            uid="",
            token="",
            client_timestamp=0,
            client_key="",
        ),
        Connect(
            version=2,
            device_flag=1,
            device_id="",
            uid="",
            token="",
            client_timestamp=2**63,
            client_key="",
        ),
        Connack(time_diff=0, reason_code=1, server_key="", salt="", node_id=-1),
        Suback(sub_no="", channel_id="", channel_type=7, action=300, reason_code=1),
        Sub(setting=Setting.NONE, sub_no="", channel_id="", channel_type=7, action=0, param=b""),
        Disconnect(reason_code=-1, reason=""),
    ],
)
def test_encode_refuses_bad_fields(packet: Packet) -> None:
    with pytest.raises(LocalProtocolError):
        encode(packet, version=4)


def test_encode_refuses_non_packet() -> None:
    with pytest.raises(LocalProtocolError):
        encode(object())  # type: ignore[arg-type]

"""Sans-I/O codec for WuKongIM packets (``shared/spec/wukongim-v2.md`` §1).

:func:`encode` turns a packet into the bytes of one frame; :class:`Decoder` turns a byte
stream, cut into chunks anywhere, back into packets; :func:`decode` decodes exactly one frame.
Nothing here does I/O, reads the clock or logs.

Layouts depend on the protocol version (spec §1.4): ``expire`` from 3, CONNACK
``server_version`` above 3 and ``node_id`` from 4, stream fields only for 2 ≤ version < 5,
uint64 ``message_seq`` from 6. Any other int is accepted as a version: below 1 reads like 1,
above :data:`~magpie.protocol.packets.LATEST_VERSION` reads like it. A field that the version
has no room for is left out when encoding (an old client never sees ``expire``) and is the
dataclass default when decoding.

Errors: the peer's bytes raise :class:`~magpie.errors.MalformedPacket` (truncated, garbage,
unknown type, trailing bytes, bad UTF-8, a length over 4 bytes) or
:class:`~magpie.errors.FrameTooLarge` (a :class:`~magpie.protocol.limits.Limits` value
exceeded), both with reason ``PAYLOAD_DECODE_ERROR``. A packet we cannot encode (int out of
range, string or body over a limit, wrong field type) raises
:class:`~magpie.errors.LocalProtocolError`. No other exception leaves this module.

Decisions where the spec leaves room:

* A length byte ``0x00`` means an empty body (Go and JS *write* no length byte at all for 0,
  spec §1.2, but only PING/PONG are empty and they have no length). Every other packet has
  fixed fields, so e.g. ``10 00`` (CONNECT, empty body) is :class:`MalformedPacket`.
* Non-minimal lengths (``80 00`` for 0) are accepted, as the Go and JS decoders do.
* PING/PONG are one byte; their flag nibble is ignored (``0x71`` is a PING), as in Go.
* The flag nibble of CONNACK is read as HasServerVersion (bit 0, spec §1.2) whatever the
  version; of DISCONNECT, SUB and SUBACK it is ignored, and encoded as 0.
* EVENT (12) and types 0, 13–15 are unknown: :class:`MalformedPacket` (spec §1.3).
* SENDACK's optional trailing ``client_msg_no`` is decoded when bytes remain after the core
  fields and written only when non-empty (spec §1.6).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

from magpie.errors import FrameTooLarge, LocalProtocolError, MalformedPacket, RemoteProtocolError
from magpie.protocol.limits import DEFAULT_LIMITS, MAX_VARINT, Limits
from magpie.protocol.packets import (
    LATEST_VERSION,
    Connack,
    Connect,
    Disconnect,
    Flags,
    Packet,
    PacketType,
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

__all__ = ["Decoder", "decode", "decode_varint", "encode", "encode_varint"]

# Fixed-width fields, big-endian (spec §1.1), grouped the way they sit next to each other.
_U8: Final = struct.Struct(">B")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_I64: Final = struct.Struct(">q")
_U64: Final = struct.Struct(">Q")
_U8_U8: Final = struct.Struct(">BB")  # CONNECT version, device_flag; SUB/SUBACK pairs
_U8_U32: Final = struct.Struct(">BI")  # SEND setting, client_seq
_U32_U8: Final = struct.Struct(">IB")  # RECV 2023 stream_seq, stream_flag
_I64_U8: Final = struct.Struct(">qB")  # CONNACK time_diff, reason_code
_U8_U8_U8: Final = struct.Struct(">BBB")  # SUBACK channel_type, action, reason_code
_SENDACK_V5: Final = struct.Struct(">qIIB")  # message_id, client_seq, message_seq, reason
_SENDACK_V6: Final = struct.Struct(">qIQB")
_RECV_V5: Final = struct.Struct(">qIi")  # message_id, message_seq, timestamp (i32 seconds)
_RECV_V6: Final = struct.Struct(">qQi")
_RECVACK_V5: Final = struct.Struct(">qI")  # message_id, message_seq
_RECVACK_V6: Final = struct.Struct(">qQ")

_STREAM: Final = int(Setting.STREAM)
_TOPIC: Final = int(Setting.TOPIC)
_HAS_SERVER_VERSION: Final = 0x01  # CONNACK header flag bit 0 (spec §1.2)
_PING_KIND: Final = int(PacketType.PING)
_PONG_KIND: Final = int(PacketType.PONG)
_PING_BYTE: Final = b"\x70"
_PONG_BYTE: Final = b"\x80"
_EMPTY_STR: Final = b"\x00\x00"
_MAX_VARINT_BYTES: Final = 4

# Enum lookups are slow; these tuples map every possible byte/nibble to its flag value once.
# Unknown setting bits are kept as part of the IntFlag value.
_SETTINGS: Final = tuple(Setting(i) for i in range(256))
_FLAGS: Final = tuple(Flags(i) for i in range(16))
_PING: Final = Ping()
_PONG: Final = Pong()


# --------------------------------------------------------------------------- varint (§1.2)


def encode_varint(n: int) -> bytes:
    """Encode a remaining length: 7 bits per byte, low group first, bit 7 = more (spec §1.2).

    ``0`` gives ``b"\\x00"`` (Go and JS would write nothing; we never encode an empty body).
    Raises :class:`LocalProtocolError` outside ``0..2**28-1`` (the 4-byte maximum).
    """
    if type(n) is not int or not 0 <= n <= MAX_VARINT:
        raise LocalProtocolError(f"remaining length {n!r} is outside 0..{MAX_VARINT}")
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int] | None:
    """Decode a remaining length at ``buf[offset:]``; return ``(value, offset after it)``.

    Returns ``None`` when ``buf`` ends before the last length byte. Raises
    :class:`MalformedPacket` when the 4th byte still has the continuation bit (spec §1.2).
    """
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if offset + i >= len(buf):
            return None
        byte = buf[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return value, offset + i + 1
    raise MalformedPacket("remaining length is longer than 4 bytes")


# --------------------------------------------------------------------------- encoding

_Body = tuple[int, list[bytes]]  # (flag nibble, body parts)


def _str(value: str, limits: Limits) -> bytes:
    """A uint16-length-prefixed UTF-8 string (spec §1.1)."""
    if value == "":
        return _EMPTY_STR
    data = value.encode()  # AttributeError for a non-str, UnicodeEncodeError for a surrogate
    if len(data) > limits.max_string:
        raise LocalProtocolError(f"string of {len(data)} bytes exceeds max_string")
    return _U16.pack(len(data)) + data


def _payload(value: bytes, limits: Limits) -> bytes:
    """The "rest" field of SEND/RECV: all remaining body bytes (spec §1.1)."""
    if not isinstance(value, bytes | bytearray):
        raise LocalProtocolError(f"payload must be bytes, got {type(value).__name__}")
    if len(value) > limits.max_payload:
        raise LocalProtocolError(f"payload of {len(value)} bytes exceeds max_payload")
    return bytes(value)


def _has_stream(setting: int, version: int) -> bool:
    """Stream fields are on the wire for the 2023 stream bit at versions 2–4 (spec §1.4)."""
    return bool(setting & _STREAM) and 2 <= version < 5


def _enc_connect(p: Connect, v: int, lim: Limits) -> _Body:
    parts = [
        _U8_U8.pack(p.version, p.device_flag),
        _str(p.device_id, lim),
        _str(p.uid, lim),
        _str(p.token, lim),
        _I64.pack(p.client_timestamp),
        _str(p.client_key, lim),
    ]
    return int(p.flags), parts


def _enc_connack(p: Connack, v: int, lim: Limits) -> _Body:
    # Spec §1.4: HasServerVersion + leading server_version above 3, trailing node_id from 4.
    parts = [_U8.pack(p.server_version)] if v > 3 else []
    parts += (_I64_U8.pack(p.time_diff, p.reason_code), _str(p.server_key, lim))
    parts.append(_str(p.salt, lim))
    if v >= 4:
        parts.append(_U64.pack(p.node_id))
    return (_HAS_SERVER_VERSION if v > 3 else 0), parts


def _enc_send(p: Send, v: int, lim: Limits) -> _Body:
    setting = int(p.setting)
    parts = [_U8_U32.pack(setting, p.client_seq), _str(p.client_msg_no, lim)]
    if _has_stream(setting, v):
        parts.append(_str(p.stream_no, lim))
    parts += (_str(p.channel_id, lim), _U8.pack(p.channel_type))
    if v >= 3:
        parts.append(_U32.pack(p.expire))
    parts.append(_str(p.msg_key, lim))
    if setting & _TOPIC:
        parts.append(_str(p.topic, lim))
    parts.append(_payload(p.payload, lim))
    return int(p.flags), parts


def _enc_sendack(p: Sendack, v: int, lim: Limits) -> _Body:
    layout = _SENDACK_V6 if v >= 6 else _SENDACK_V5
    parts = [layout.pack(p.message_id, p.client_seq, p.message_seq, p.reason_code)]
    if p.client_msg_no:
        parts.append(_str(p.client_msg_no, lim))
    return int(p.flags), parts


def _enc_recv(p: Recv, v: int, lim: Limits) -> _Body:
    setting = int(p.setting)
    parts = [_U8.pack(setting), _str(p.msg_key, lim), _str(p.from_uid, lim)]
    parts += (_str(p.channel_id, lim), _U8.pack(p.channel_type))
    if v >= 3:
        parts.append(_U32.pack(p.expire))
    parts.append(_str(p.client_msg_no, lim))
    if _has_stream(setting, v):  # 2023 layout (spec §1.6)
        parts += (_str(p.stream_no, lim), _U32_U8.pack(p.stream_seq, p.stream_flag))
    layout = _RECV_V6 if v >= 6 else _RECV_V5
    parts.append(layout.pack(p.message_id, p.message_seq, p.timestamp))
    if setting & _TOPIC:
        parts.append(_str(p.topic, lim))
    parts.append(_payload(p.payload, lim))
    return int(p.flags), parts


def _enc_recvack(p: Recvack, v: int, lim: Limits) -> _Body:
    layout = _RECVACK_V6 if v >= 6 else _RECVACK_V5
    return int(p.flags), [layout.pack(p.message_id, p.message_seq)]


def _enc_disconnect(p: Disconnect, v: int, lim: Limits) -> _Body:
    return 0, [_U8.pack(p.reason_code), _str(p.reason, lim)]


def _enc_sub(p: Sub, v: int, lim: Limits) -> _Body:
    parts = [_U8.pack(p.setting), _str(p.sub_no, lim), _str(p.channel_id, lim)]
    parts += (_U8_U8.pack(p.channel_type, p.action), _str(p.param, lim))
    return 0, parts


def _enc_suback(p: Suback, v: int, lim: Limits) -> _Body:
    parts = [_str(p.sub_no, lim), _str(p.channel_id, lim)]
    parts.append(_U8_U8_U8.pack(p.channel_type, p.action, p.reason_code))
    return 0, parts


_Encoder = Callable[[Any, int, Limits], _Body]
_ENCODERS: Final[dict[type[Any], tuple[int, _Encoder]]] = {
    Connect: (PacketType.CONNECT << 4, _enc_connect),
    Connack: (PacketType.CONNACK << 4, _enc_connack),
    Send: (PacketType.SEND << 4, _enc_send),
    Sendack: (PacketType.SENDACK << 4, _enc_sendack),
    Recv: (PacketType.RECV << 4, _enc_recv),
    Recvack: (PacketType.RECVACK << 4, _enc_recvack),
    Disconnect: (PacketType.DISCONNECT << 4, _enc_disconnect),
    Sub: (PacketType.SUB << 4, _enc_sub),
    Suback: (PacketType.SUBACK << 4, _enc_suback),
}


def encode(packet: Packet, version: int = 2, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Return the bytes of one frame carrying ``packet``, laid out for protocol ``version``.

    PING and PONG are the single bytes ``70`` and ``80``; every other packet is a header
    byte (type, flag nibble), the remaining length and the body (spec §1.2, §1.6).
    Raises :class:`LocalProtocolError` if a field is out of range, of the wrong type, or
    over a limit.
    """
    entry = _ENCODERS.get(type(packet))
    if entry is None:
        return _encode_bodiless(packet)
    type_bits, encoder = entry
    try:
        flags, parts = encoder(packet, version, limits)
    except (struct.error, TypeError, ValueError, AttributeError) as exc:
        # struct.error: int out of range; UnicodeEncodeError (a ValueError): lone surrogate.
        raise LocalProtocolError(f"cannot encode {type(packet).__name__}: {exc}") from exc
    return _frame(type_bits, flags, parts, limits)


def _encode_bodiless(packet: object) -> bytes:
    """PING/PONG: exactly one byte, no remaining length (spec §1.2)."""
    if type(packet) is Ping:
        return _PING_BYTE
    if type(packet) is Pong:
        return _PONG_BYTE
    raise LocalProtocolError(f"not a packet: {type(packet).__name__}")


def _frame(type_bits: int, flags: int, parts: list[bytes], limits: Limits) -> bytes:
    """Prefix the body parts with the fixed header (spec §1.2)."""
    if type(flags) is not int or not 0 <= flags <= 0x0F:
        raise LocalProtocolError(f"header flags {flags!r} do not fit in a nibble")
    body = b"".join(parts)
    length = len(body)
    if length > limits.max_remaining_length:
        raise LocalProtocolError(f"body of {length} bytes exceeds max_remaining_length")
    if length < 0x80:  # the common case: a one-byte remaining length
        return bytes((type_bits | flags, length)) + body
    return bytes((type_bits | flags,)) + encode_varint(length) + body


# --------------------------------------------------------------------------- decoding


class _Reader:
    """A cursor over one packet body. Running past the end raises ``struct.error``, which
    :func:`_decode_body` turns into :class:`MalformedPacket`."""

    __slots__ = ("buf", "limits", "pos")

    def __init__(self, buf: bytes, limits: Limits) -> None:
        self.buf = buf
        self.pos = 0
        self.limits = limits

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        values = layout.unpack_from(self.buf, self.pos)
        self.pos += layout.size
        return values

    def u8(self) -> int:
        value: int = _U8.unpack_from(self.buf, self.pos)[0]
        self.pos += 1
        return value

    def u32(self) -> int:
        value: int = _U32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return value

    def string(self) -> str:
        """A uint16-length-prefixed UTF-8 string (spec §1.1), bounded by ``max_string``."""
        start = self.pos + 2
        size: int = _U16.unpack_from(self.buf, self.pos)[0]
        if size > self.limits.max_string:
            raise FrameTooLarge(f"string of {size} bytes exceeds max_string")
        end = start + size
        if end > len(self.buf):
            raise MalformedPacket("string runs past the end of the packet")
        self.pos = end
        try:
            return self.buf[start:end].decode()
        except UnicodeDecodeError:
            raise MalformedPacket("string is not valid UTF-8") from None

    def payload(self) -> bytes:
        """The "rest" field (spec §1.1), bounded by ``max_payload``."""
        rest = self.buf[self.pos :]
        if len(rest) > self.limits.max_payload:
            raise FrameTooLarge(f"payload of {len(rest)} bytes exceeds max_payload")
        self.pos = len(self.buf)
        return rest

    def remaining(self) -> int:
        return len(self.buf) - self.pos


def _dec_connect(r: _Reader, flags: int, v: int) -> Connect:
    version, device_flag = r.unpack(_U8_U8)
    return Connect(
        version=version,
        device_flag=device_flag,
        device_id=r.string(),
        uid=r.string(),
        token=r.string(),
        client_timestamp=r.unpack(_I64)[0],
        client_key=r.string(),
        flags=_FLAGS[flags],
    )


def _dec_connack(r: _Reader, flags: int, v: int) -> Connack:
    # The header flag, not the version, says whether server_version is there (spec §1.2).
    server_version = r.u8() if flags & _HAS_SERVER_VERSION else 0
    time_diff, reason_code = r.unpack(_I64_U8)
    server_key, salt = r.string(), r.string()
    node_id: int = r.unpack(_U64)[0] if v >= 4 else 0
    return Connack(time_diff, reason_code, server_key, salt, server_version, node_id)


def _dec_send(r: _Reader, flags: int, v: int) -> Send:
    setting, client_seq = r.unpack(_U8_U32)
    client_msg_no = r.string()
    stream_no = r.string() if _has_stream(setting, v) else ""
    channel_id, channel_type = r.string(), r.u8()
    expire = r.u32() if v >= 3 else 0
    msg_key = r.string()
    topic = r.string() if setting & _TOPIC else ""
    return Send(
        _SETTINGS[setting], client_seq, client_msg_no, channel_id, channel_type, msg_key,
        r.payload(), _FLAGS[flags], stream_no, topic, expire,
    )  # fmt: skip


def _dec_sendack(r: _Reader, flags: int, v: int) -> Sendack:
    layout = _SENDACK_V6 if v >= 6 else _SENDACK_V5
    message_id, client_seq, message_seq, reason_code = r.unpack(layout)
    client_msg_no = r.string() if r.remaining() else ""  # optional trailer (spec §1.6)
    return Sendack(message_id, client_seq, message_seq, reason_code, _FLAGS[flags], client_msg_no)


def _dec_recv(r: _Reader, flags: int, v: int) -> Recv:
    setting = r.u8()
    msg_key, from_uid, channel_id = r.string(), r.string(), r.string()
    channel_type = r.u8()
    expire = r.u32() if v >= 3 else 0
    client_msg_no = r.string()
    stream_no, stream_seq, stream_flag = "", 0, 0
    if _has_stream(setting, v):  # 2023 layout (spec §1.6)
        stream_no = r.string()
        stream_seq, stream_flag = r.unpack(_U32_U8)
    message_id, message_seq, timestamp = r.unpack(_RECV_V6 if v >= 6 else _RECV_V5)
    topic = r.string() if setting & _TOPIC else ""
    return Recv(
        _SETTINGS[setting], msg_key, from_uid, channel_id, channel_type, client_msg_no,
        message_id, message_seq, timestamp, r.payload(), _FLAGS[flags], expire, stream_no,
        stream_seq, stream_flag, topic,
    )  # fmt: skip


def _dec_recvack(r: _Reader, flags: int, v: int) -> Recvack:
    message_id, message_seq = r.unpack(_RECVACK_V6 if v >= 6 else _RECVACK_V5)
    return Recvack(message_id, message_seq, _FLAGS[flags])


def _dec_disconnect(r: _Reader, flags: int, v: int) -> Disconnect:
    return Disconnect(reason_code=r.u8(), reason=r.string())


def _dec_sub(r: _Reader, flags: int, v: int) -> Sub:
    setting, sub_no, channel_id = _SETTINGS[r.u8()], r.string(), r.string()
    channel_type, action = r.unpack(_U8_U8)
    return Sub(setting, sub_no, channel_id, channel_type, action, param=r.string())


def _dec_suback(r: _Reader, flags: int, v: int) -> Suback:
    sub_no, channel_id = r.string(), r.string()
    channel_type, action, reason_code = r.unpack(_U8_U8_U8)
    return Suback(sub_no, channel_id, channel_type, action, reason_code)


_BodyDecoder = Callable[[_Reader, int, int], Packet]
# Indexed by the type nibble; None = not a packet with a body we know (spec §1.3).
_DECODERS: Final[tuple[_BodyDecoder | None, ...]] = (
    None, _dec_connect, _dec_connack, _dec_send, _dec_sendack, _dec_recv, _dec_recvack,
    None, None, _dec_disconnect, _dec_sub, _dec_suback, None, None, None, None,
)  # fmt: skip


def _decode_body(decoder: _BodyDecoder, body: bytes, flags: int, v: int, lim: Limits) -> Packet:
    """Run one body decoder and insist it used every byte."""
    reader = _Reader(body, lim)
    try:
        packet = decoder(reader, flags, v)
    except struct.error:
        raise MalformedPacket("packet body is truncated") from None
    if reader.pos != len(body):
        raise MalformedPacket(f"{len(body) - reader.pos} trailing bytes in packet body")
    return packet


def _next_frame(
    buf: bytes | bytearray, pos: int, version: int, limits: Limits
) -> tuple[Packet, int] | None:
    """Decode the frame at ``buf[pos:]``: ``(packet, end)``, or ``None`` if incomplete."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    kind = first >> 4
    if kind in (_PING_KIND, _PONG_KIND):  # one byte (spec §1.2)
        return (_PING if kind == _PING_KIND else _PONG), pos + 1
    decoder = _DECODERS[kind]
    if decoder is None:
        raise MalformedPacket(f"unknown packet type {kind}")
    header = decode_varint(buf, pos + 1)
    if header is None:
        return None
    length, start = header
    if length > limits.max_remaining_length:  # before buffering any of the body
        raise FrameTooLarge(f"body of {length} bytes exceeds max_remaining_length")
    end = start + length
    if end > len(buf):
        return None
    return _decode_body(decoder, bytes(buf[start:end]), first & 0x0F, version, limits), end


def decode(data: bytes, version: int = 2, limits: Limits = DEFAULT_LIMITS) -> Packet:
    """Decode ``data``, which must hold exactly one complete frame, at protocol ``version``.

    Raises :class:`MalformedPacket` if ``data`` is truncated or has bytes after the frame,
    :class:`FrameTooLarge` if a limit is exceeded.
    """
    frame = _next_frame(data, 0, version, limits)
    if frame is None:
        raise MalformedPacket(f"incomplete packet ({len(data)} bytes)")
    packet, end = frame
    if end != len(data):
        raise MalformedPacket(f"{len(data) - end} bytes after the packet")
    return packet


class Decoder:
    """Incremental decoder for one direction of one connection.

    Feed it bytes as they arrive, cut anywhere; it returns the packets completed so far and
    keeps the rest (:attr:`buffered` bytes). ``version`` is the layout used for the next
    packets: it may be set by the caller, and decoding a CONNECT sets it to
    ``min(connect.version, LATEST_VERSION)`` so a CONNECT and a SEND in one chunk both parse
    right (spec §1.4).

    After it raises, the decoder is poisoned: every later :meth:`feed` raises the same kind
    of error, and packets completed earlier in the failing call are dropped (the connection
    is going to be closed anyway).
    """

    __slots__ = ("_buf", "_error", "limits", "version")

    def __init__(self, *, version: int = 2, limits: Limits = DEFAULT_LIMITS) -> None:
        self.version = version
        self.limits = limits
        self._buf = bytearray()
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """How many bytes are held waiting for the rest of a packet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet]:
        """Add ``data`` and return every packet now complete, in order.

        Raises only :class:`~magpie.errors.RemoteProtocolError` subclasses.
        """
        if self._error is not None:
            error = self._error
            raise type(error)(f"decoder already failed: {error.message}", error.reason)
        buf = self._buf
        buf += data
        try:
            packets, end = self._split(buf)
        except RemoteProtocolError as exc:
            self._error = exc
            buf.clear()
            raise
        del buf[:end]
        return packets

    def _split(self, buf: bytearray) -> tuple[list[Packet], int]:
        packets: list[Packet] = []
        pos = 0
        while (frame := _next_frame(buf, pos, self.version, self.limits)) is not None:
            packet, pos = frame
            if type(packet) is Connect:
                self.version = min(packet.version, LATEST_VERSION)
            packets.append(packet)
        return packets, pos

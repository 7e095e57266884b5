"""Fuzz targets: the codec's :class:`Decoder` and the :class:`Connection` state machine.

One entry point, :func:`check`, takes one fuzz input and raises if anything but a documented
:class:`~magpie.errors.ProtocolError` escapes, or if an invariant breaks. An input is::

    byte 0   low 3 bits: mode (see MODES), bits 3-5: protocol version 0..7
    byte 1   chunking: 0 = one chunk, else chunk sizes drawn from a tiny LCG seeded with it
    rest     the bytes fed to the target

Everything is a pure function of the input, so a printed failing input replays exactly
(``python fuzz/run.py --replay HEX``). Imported lazily by ``run.py`` so that atheris can
instrument :mod:`magpie` as it loads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from magpie.errors import CryptoError, LocalProtocolError, ProtocolError, RemoteProtocolError
from magpie.protocol.codec import Decoder, decode, encode
from magpie.protocol.connection import Connection, Role, State
from magpie.protocol.crypto import SessionCipher, open_recv, open_send
from magpie.protocol.limits import Limits
from magpie.protocol.packets import (
    LATEST_VERSION,
    Connack,
    Connect,
    Packet,
    Ping,
    Pong,
    Recv,
    Send,
    Sendack,
    Setting,
    Sub,
    Suback,
)

#: Spec §1.7 golden vectors, the seeds of every mode.
GOLDEN_HEX = (
    "325f00000000010005636d6e2d31000275320100203162643638616536313736646632336266333034616461"
    "633533343463333733614b31334255474a4b5730384244554e705368442b624f6e307765794b4242786d3158"
    "49796c616a5430513d",
    "526f00002039353236373837613830623565386335363563616464326264383936633833300002753200027531"
    "010005636d6e2d32112210f47de98116000000086553f100614b31334255474a4b5730384244554e70536844"
    "2b624f6e307765794b4242786d315849796c616a5430513d",
    "4211112210f47de98115000000010000000701",
    "90180c00156c6f67696e20696e206f7468657220646576696365",
    "b00c00000005726f6f6d31070001",
    "a0170000000005726f6f6d31070000097b2261223a2231227d",
    "2049fffffffffffffffb01002c33703762665874397762545457324843374f51314e7a2b44513868626547644e"
    "7266782b46472b494b30383d001061626364656631323334353637383930",
    "70",
    "80",
)

#: Session keys of the spec vectors (§1.7), so the golden SEND/RECV pass msgKey checks.
CIPHER_KEY, CIPHER_IV = b"1234567890abcdef", b"abcdef1234567890"
CLIENT_KEY = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="  # RFC 7748 Alice (§2.4)
#: Small limits in half the modes, so limit paths are hit by short inputs.
SMALL_LIMITS = Limits(max_remaining_length=160, max_string=48, max_payload=64)
WIDE_LIMITS = Limits(max_remaining_length=2**28 - 1, max_string=65535, max_payload=2**28 - 1)


class Invariant(AssertionError):
    """An invariant of the codec or state machine broke (a finding, like a stray exception)."""


# --------------------------------------------------------------------------- input parsing


def _chunks(data: bytes, seed: int) -> Iterator[bytes]:
    """Cut ``data`` deterministically: one piece for seed 0, else LCG-sized pieces 1..seed."""
    if seed == 0:
        yield data
        return
    state, pos = seed, 0
    while pos < len(data):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        size = 1 + (state >> 8) % seed
        yield data[pos : pos + size]
        pos += size


def _connect(version: int) -> Connect:
    return Connect(version, 1, "dev", "u1", "tok", 1_700_000_000_000, CLIENT_KEY)


# --------------------------------------------------------------------------- codec targets


def _check_round_trip(packet: Packet, version: int) -> None:
    """What decoded at ``version`` re-encodes there and decodes to the same packet.

    Encoded under the widest limits: a body at the limit can legitimately grow a byte (a
    CONNACK at v4+ without HasServerVersion gains it). One documented exception: a CONNACK
    with HasServerVersion read at version ≤ 3 keeps a server_version that encoding at that
    version leaves out (codec module docstring). Raises Invariant, never ProtocolError.
    """
    if isinstance(packet, Connack) and version <= 3 and packet.server_version:
        return
    try:
        again = decode(encode(packet, version, WIDE_LIMITS), version, WIDE_LIMITS)
    except ProtocolError as exc:
        raise Invariant(f"decoded {packet!r} but cannot round-trip it: {exc!r}") from exc
    if again != packet:
        raise Invariant(f"round trip changed {packet!r} into {again!r}")


def _fuzz_decoder(data: bytes, version: int, seed: int, limits: Limits) -> None:
    decoder = Decoder(version=version, limits=limits)
    for chunk in _chunks(data, seed):
        current = decoder.version
        try:
            packets = decoder.feed(chunk)
        except ProtocolError:
            _expect_poisoned(lambda: decoder.feed(b"\x70"))
            return
        for packet in packets:  # each at the version it was read at (CONNECT changes it)
            _check_round_trip(packet, current)
            if isinstance(packet, Connect):
                current = min(packet.version, LATEST_VERSION)


def _fuzz_decode_one(data: bytes, version: int, seed: int, limits: Limits) -> None:
    try:
        packet = decode(data, version, limits)
    except ProtocolError:
        return
    _check_round_trip(packet, version)


def _expect_poisoned(again: Callable[[], object]) -> None:
    try:
        again()
    except ProtocolError:
        return
    raise Invariant("accepted bytes after a protocol error")


# --------------------------------------------------------------------------- state machine targets


def _server(version: int, limits: Limits, prefix: str) -> tuple[Connection, bytes]:
    """A server connection; ``prefix`` "connect" prepends a CONNECT to the fuzzed bytes,
    "established" receives one and answers CONNACK success first."""
    conn = Connection(Role.SERVER, limits)
    head = encode(_connect(version), version) if prefix else b""
    if prefix == "established":
        conn.receive_data(head)
        conn.send(Connack(0, 1, "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=", "s" * 16))
        head = b""
    return conn, head


def _client(version: int, limits: Limits, established: bool) -> tuple[Connection, bytes]:
    """A client that sent CONNECT; when ``established`` the fuzzed bytes follow a CONNACK."""
    conn = Connection(Role.CLIENT, limits)
    conn.send(_connect(max(1, min(version, 6))))
    if not established:
        return conn, b""
    return conn, encode(Connack(0, 1, "k", "s" * 16), conn.version)


def _answer(conn: Connection, packet: Packet, cipher: SessionCipher) -> None:
    """React like a server/client would, exercising the outbound path and crypto.

    A packet that decoded must be answerable: a LocalProtocolError here is an Invariant.
    """
    try:
        if isinstance(packet, Send):
            _open(open_send, cipher, packet)
            conn.send(Sendack(1, packet.client_seq, 1, 1, packet.flags, packet.client_msg_no))
        elif isinstance(packet, Ping):
            conn.send(Pong())
        elif isinstance(packet, Sub):
            reply = Suback(packet.sub_no, packet.channel_id, packet.channel_type, packet.action, 1)
            conn.send(reply)
        elif isinstance(packet, Recv):
            _open(open_recv, cipher, packet)
    except LocalProtocolError as exc:
        raise Invariant(f"cannot answer {packet!r}: {exc!r}") from exc


def _open(opener: Callable[[SessionCipher, Any], bytes], cipher: SessionCipher, p: Packet) -> None:
    """Check msgKey and decrypt; the peer's junk may only raise CryptoError."""
    with contextlib.suppress(CryptoError):
        opener(cipher, p)


def _drive(conn: Connection, data: bytes, seed: int) -> None:
    """Feed the chunks; answer packets while established; check failures stick."""
    cipher = SessionCipher(CIPHER_KEY, CIPHER_IV)
    for chunk in _chunks(data, seed):
        try:
            packets = conn.receive_data(chunk)
        except RemoteProtocolError:
            _expect_poisoned(lambda: conn.receive_data(b"\x70"))
            return
        except LocalProtocolError:  # receive_data after CLOSED: our misuse, documented
            if conn.state is not State.CLOSED:
                raise
            return
        for packet in packets:
            if conn.state is State.ESTABLISHED:
                _answer(conn, packet, cipher)


def _fuzz_connection(mode: int, data: bytes, version: int, seed: int, limits: Limits) -> None:
    setups = {
        2: lambda: _server(version, limits, ""),
        3: lambda: _server(version, limits, "connect"),
        4: lambda: _server(version, limits, "established"),
        5: lambda: _client(version, limits, established=False),
        6: lambda: _client(version, limits, established=True),
    }
    conn, head = setups[mode]()
    _drive(conn, head + data, seed)


# --------------------------------------------------------------------------- entry point

MODES = {
    0: "decoder stream",
    1: "decode() one packet",
    2: "server, fresh",
    3: "server, CONNECT prepended",
    4: "server, established",
    5: "client, awaiting CONNACK",
    6: "client, established",
    7: "decoder stream, small limits",
}


def check(data: bytes) -> None:
    """Run one fuzz input; raise on anything but a documented ProtocolError."""
    if len(data) < 2:
        return
    mode, version, seed = data[0] & 0x07, (data[0] >> 3) & 0x07, data[1]
    limits = SMALL_LIMITS if data[0] & 0x40 or mode == 7 else Limits()
    body = data[2:]
    if mode in (0, 7):
        _fuzz_decoder(body, version, seed, limits)
    elif mode == 1:
        _fuzz_decode_one(body, version, seed, limits)
    else:
        _fuzz_connection(mode, body, version, seed, limits)


def seeds() -> list[bytes]:
    """Seed corpus: every golden vector in every mode at versions 2..6, plus every vector
    glued together (one chunk and byte-chunked) and a few version-specific packets."""
    vectors = [bytes.fromhex(h) for h in GOLDEN_HEX]
    vectors.append(b"".join(vectors))
    vectors += [encode(_connect(v), v) for v in range(1, 7)]
    vectors += [encode(Connack(-5, 1, "k", "s", 4, 7), 4)]
    options = Setting.STREAM | Setting.TOPIC
    vectors += [encode(Send(options, 1, "c", "u", 1, "k", b"p", stream_no="s", topic="t"), 2)]
    out = []
    for mode in MODES:
        for version in range(2, 7):
            out += [bytes((mode | version << 3, chunk)) + v for v in vectors for chunk in (0, 3)]
    return out

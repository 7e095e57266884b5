"""A tiny, test-only WuKongIM v2 peer for self-testing the interop harness without Magpie.

It speaks just enough of the protocol (spec ``shared/spec/wukongim-v2.md`` §1-§3) to let the real
SDK connect, send and receive: CONNECT -> CONNACK with X25519 + AES-128-CBC, SEND -> SENDACK,
server-pushed RECV, RECVACK, PING -> PONG, DISCONNECT. It is deliberately independent of
``magpie.protocol`` so that the harness can be trusted before the server exists. It is *not* a
reference implementation: no storage, no routing, one packet per WebSocket message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import string
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

CONNECT, CONNACK, SEND, SENDACK, RECV, RECVACK, PING, PONG, DISCONNECT = range(1, 10)


# ---------------------------------------------------------------------------------------------
# Codec helpers


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame(header: int, body: bytes) -> bytes:
    return bytes([header]) + encode_varint(len(body)) + body


def string_field(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return int(value)

    def string(self) -> str:
        size = self.unpack(">H")
        value = self.data[self.pos : self.pos + size].decode()
        self.pos += size
        return value

    def rest(self) -> bytes:
        value = self.data[self.pos :]
        self.pos = len(self.data)
        return value


def split_packet(data: bytes) -> tuple[int, int, Reader]:
    """-> (packet type, flag nibble, reader positioned at the body)."""
    header = data[0]
    ptype, flags = header >> 4, header & 0x0F
    reader = Reader(data)
    reader.pos = 1
    if ptype in (PING, PONG):
        return ptype, flags, reader
    length = shift = 0
    while True:
        byte = reader.u8()
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    if len(data) - reader.pos != length:
        raise ValueError(f"remaining length {length} != body size {len(data) - reader.pos}")
    return ptype, flags, reader


@dataclass(frozen=True)
class ConnectInfo:
    version: int
    device_flag: int
    device_id: str
    uid: str
    token: str
    client_timestamp: int
    client_key: str


def parse_connect(data: bytes) -> ConnectInfo:
    ptype, _flags, r = split_packet(data)
    if ptype != CONNECT:
        raise ValueError(f"expected CONNECT, got packet type {ptype}")
    return ConnectInfo(
        version=r.u8(),
        device_flag=r.u8(),
        device_id=r.string(),
        uid=r.string(),
        token=r.string(),
        client_timestamp=r.unpack(">q"),
        client_key=r.string(),
    )


# ---------------------------------------------------------------------------------------------
# Crypto (spec §2)


def aes_seal(key: bytes, iv: bytes, plain: bytes) -> bytes:
    """base64 text (as bytes) of AES-128-CBC/PKCS7 ciphertext."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(enc.update(padded) + enc.finalize())


def aes_open(key: bytes, iv: bytes, sealed: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = dec.update(base64.b64decode(sealed)) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def msg_key(key: bytes, iv: bytes, verify: str) -> str:
    sealed = aes_seal(key, iv, verify.encode())
    return hashlib.md5(sealed, usedforsecurity=False).hexdigest()


# ---------------------------------------------------------------------------------------------
# The peer


@dataclass
class SendInfo:
    flags: int
    setting: int
    client_seq: int
    client_msg_no: str
    channel_id: str
    channel_type: int
    msg_key: str
    msg_key_ok: bool
    payload: Any


@dataclass
class PeerConn:
    ws: ServerConnection
    info: ConnectInfo
    aes_key: bytes = b""
    aes_iv: bytes = b""
    sends: asyncio.Queue[SendInfo] = field(default_factory=asyncio.Queue)
    recvacks: asyncio.Queue[tuple[int, int, int]] = field(default_factory=asyncio.Queue)
    pings: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send_raw(self, data: bytes) -> None:
        await self.ws.send(data)

    async def sendack(
        self, send: SendInfo, message_id: int, message_seq: int, reason: int = 1
    ) -> None:
        body = struct.pack(">qIIB", message_id, send.client_seq, message_seq, reason)
        await self.send_raw(frame((SENDACK << 4) | send.flags, body))

    async def recv(
        self,
        *,
        from_uid: str,
        channel_id: str,
        channel_type: int,
        payload: bytes,
        message_id: int,
        message_seq: int,
        client_msg_no: str,
        flags: int = 0x02,
        timestamp: int | None = None,
    ) -> None:
        """Push a RECV encrypted for this connection. ``payload`` is the plaintext bytes."""
        ts = int(time.time()) if timestamp is None else timestamp
        sealed = aes_seal(self.aes_key, self.aes_iv, payload)
        verify = (
            f"{message_id}{message_seq}{client_msg_no}{ts}{from_uid}{channel_id}{channel_type}"
            + sealed.decode()
        )
        body = (
            b"\x00"
            + string_field(msg_key(self.aes_key, self.aes_iv, verify))
            + string_field(from_uid)
            + string_field(channel_id)
            + bytes([channel_type])
            + string_field(client_msg_no)
            + struct.pack(">qIi", message_id, message_seq, ts)
            + sealed
        )
        await self.send_raw(frame((RECV << 4) | flags, body))

    async def disconnect(self, reason: int, text: str) -> None:
        await self.send_raw(frame(DISCONNECT << 4, bytes([reason]) + string_field(text)))


class LoopbackPeer:
    """WebSocket server on 127.0.0.1 (random port) that plays a minimal WuKongIM v2 gateway.

    ``connack_reason`` other than 1 refuses logins; ``auto_ack`` answers every SEND with a
    SENDACK (message_id 1000+n, message_seq n) unless its client_msg_no is in ``hold``.
    """

    def __init__(self, *, connack_reason: int = 1, auto_ack: bool = True) -> None:
        self.connack_reason = connack_reason
        self.auto_ack = auto_ack
        self.hold: set[str] = set()
        self.conns: asyncio.Queue[PeerConn] = asyncio.Queue()
        self.all_conns: list[PeerConn] = []
        self.first_frames: list[bytes] = []
        self.errors: list[str] = []
        self._seq = 0
        self._server: Server | None = None
        self.url = ""

    async def __aenter__(self) -> LoopbackPeer:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _handle(self, ws: ServerConnection) -> None:
        conn: PeerConn | None = None
        try:
            async for message in ws:
                if not isinstance(message, bytes):
                    self.errors.append(f"text frame: {message!r}")
                    continue
                if conn is None:
                    self.first_frames.append(message)
                    conn = await self._on_connect(ws, message)
                    if conn is None:
                        return
                    continue
                await self._on_packet(conn, message)
        except ConnectionClosed:
            pass
        except Exception as exc:
            self.errors.append(repr(exc))
            raise
        finally:
            if conn is not None:
                conn.closed.set()

    async def _on_connect(self, ws: ServerConnection, data: bytes) -> PeerConn | None:
        info = parse_connect(data)
        conn = PeerConn(ws=ws, info=info)
        if self.connack_reason != 1:
            body = struct.pack(">qB", 0, self.connack_reason) + string_field("") + string_field("")
            await ws.send(frame(CONNACK << 4, body))
            return None
        private = X25519PrivateKey.generate()
        client_public = X25519PublicKey.from_public_bytes(base64.b64decode(info.client_key))
        secret = private.exchange(client_public)
        conn.aes_key = (
            hashlib.md5(base64.b64encode(secret), usedforsecurity=False).hexdigest()[:16].encode()
        )
        alphabet = string.ascii_letters + string.digits
        conn.aes_iv = "".join(secrets.choice(alphabet) for _ in range(16)).encode()
        server_key = base64.b64encode(
            private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        ).decode()
        time_diff = int(time.time() * 1000) - info.client_timestamp
        body = (
            struct.pack(">qB", time_diff, 1)
            + string_field(server_key)
            + string_field(conn.aes_iv.decode())
        )
        await ws.send(frame(CONNACK << 4, body))
        self.all_conns.append(conn)
        await self.conns.put(conn)
        return conn

    async def _on_packet(self, conn: PeerConn, data: bytes) -> None:
        ptype, flags, r = split_packet(data)
        if ptype == PING:
            conn.pings += 1
            await conn.send_raw(bytes([PONG << 4]))
        elif ptype == RECVACK:
            await conn.recvacks.put((flags, r.unpack(">q"), r.unpack(">I")))
        elif ptype == SEND:
            setting = r.u8()
            client_seq = r.unpack(">I")
            client_msg_no = r.string()
            channel_id = r.string()
            channel_type = r.u8()
            key = r.string()
            sealed = r.rest()
            verify = f"{client_seq}{client_msg_no}{channel_id}{channel_type}{sealed.decode()}"
            plain = aes_open(conn.aes_key, conn.aes_iv, sealed)
            send = SendInfo(
                flags=flags,
                setting=setting,
                client_seq=client_seq,
                client_msg_no=client_msg_no,
                channel_id=channel_id,
                channel_type=channel_type,
                msg_key=key,
                msg_key_ok=key == msg_key(conn.aes_key, conn.aes_iv, verify),
                payload=json.loads(plain),
            )
            await conn.sends.put(send)
            if self.auto_ack and client_msg_no not in self.hold:
                self._seq += 1
                await conn.sendack(send, message_id=1000 + self._seq, message_seq=self._seq)
        else:
            self.errors.append(f"unexpected packet type {ptype}: {data.hex()}")

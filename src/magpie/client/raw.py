"""A low-level asyncio WuKongIM client: one connection, packets in and out, no cache.

It is the transport the Python SDK builds on, and what Magpie's own tests and benchmarks
use to speak to a server the way the official SDK does (handshake, encryption, msgKey, one
packet per WebSocket message).
"""

from __future__ import annotations

import asyncio
import secrets
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from magpie.errors import LocalProtocolError, ProtocolError
from magpie.protocol.connection import Connection, Role
from magpie.protocol.crypto import KeyPair, SessionCipher, derive_aes_key, open_recv, seal_send
from magpie.protocol.packets import (
    Connack,
    Connect,
    Flags,
    Packet,
    ReasonCode,
    Recv,
    Recvack,
    Send,
    Sendack,
    Setting,
)

__all__ = ["ConnectRefused", "RawClient", "ReceivedMessage"]


class ConnectRefused(ProtocolError):
    """The server answered CONNECT with a reason other than success."""

    code = "connect_refused"


class ReceivedMessage:
    """A decrypted RECV."""

    __slots__ = ("packet", "payload")

    def __init__(self, packet: Recv, payload: bytes) -> None:
        self.packet = packet
        self.payload = payload


class RawClient:
    """One WuKongIM connection speaking protocol ``version`` (2 = JS SDK 1.0.4)."""

    def __init__(
        self,
        url: str,
        uid: str,
        token: str,
        *,
        device_flag: int = 1,
        version: int = 2,
        auto_ack: bool = True,
    ) -> None:
        self.url = url
        self.uid = uid
        self.token = token
        self.device_flag = device_flag
        self.version = version
        self.auto_ack = auto_ack
        self.conn = Connection(Role.CLIENT)
        self.cipher: SessionCipher | None = None
        self.connack: Connack | None = None
        self._ws: ClientConnection | None = None
        self._client_seq = 0
        self.packets: asyncio.Queue[Packet] = asyncio.Queue()
        self.messages: asyncio.Queue[ReceivedMessage] = asyncio.Queue()
        self._acks: dict[int, asyncio.Future[Sendack]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, timeout: float = 10.0) -> Connack:
        """Open the socket, handshake, and start reading; raises :class:`ConnectRefused`."""
        self._ws = await connect(self.url, compression=None, max_size=None, open_timeout=timeout)
        keys = KeyPair.generate()
        hello = Connect(
            version=self.version,
            device_flag=self.device_flag,
            device_id=secrets.token_hex(16) + "P",
            uid=self.uid,
            token=self.token,
            client_timestamp=time.time_ns() // 1_000_000,
            client_key=keys.public_b64,
        )
        await self._ws.send(self.conn.send(hello))
        data = await asyncio.wait_for(self._ws.recv(), timeout)
        packets = self.conn.receive_data(data) if isinstance(data, bytes) else []
        if len(packets) != 1 or not isinstance(packets[0], Connack):
            raise ConnectRefused("expected one CONNACK")
        ack = packets[0]
        self.connack = ack
        if ack.reason_code != ReasonCode.SUCCESS:
            raise ConnectRefused(f"CONNECT refused: reason {ack.reason_code}", ack.reason_code)
        self.cipher = SessionCipher(derive_aes_key(keys, ack.server_key), ack.salt[:16].encode())
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return ack

    def next_client_seq(self) -> int:
        """The next client_seq (starts at 1, like the JS SDK)."""
        self._client_seq += 1
        return self._client_seq

    async def send(
        self,
        channel_id: str,
        channel_type: int,
        payload: bytes,
        *,
        client_msg_no: str | None = None,
        flags: Flags = Flags.RED_DOT,
        client_seq: int | None = None,
    ) -> Sendack:
        """Send one message and wait for its SENDACK."""
        seq = self.next_client_seq() if client_seq is None else client_seq
        packet = self.seal(channel_id, channel_type, payload, seq, client_msg_no, flags)
        return await self.send_sealed(packet)

    async def send_sealed(self, packet: Send) -> Sendack:
        """Write an already sealed SEND and wait for the SENDACK with its client_seq."""
        fut: asyncio.Future[Sendack] = asyncio.get_running_loop().create_future()
        self._acks[packet.client_seq] = fut
        try:
            await self.write(packet)
        except BaseException:
            # Nobody will await the future: drop it so its exception is not left unretrieved.
            if self._acks.get(packet.client_seq) is fut:
                del self._acks[packet.client_seq]
            fut.cancel()
            raise
        return await fut

    def seal(
        self,
        channel_id: str,
        channel_type: int,
        payload: bytes,
        client_seq: int,
        client_msg_no: str | None = None,
        flags: Flags = Flags.RED_DOT,
    ) -> Send:
        """An encrypted, msgKey'd SEND."""
        cipher = self._require_cipher()
        plain = Send(
            setting=Setting.NONE,
            client_seq=client_seq,
            client_msg_no=client_msg_no or secrets.token_hex(16) + "3",
            channel_id=channel_id,
            channel_type=channel_type,
            msg_key="",
            payload=payload,
            flags=flags,
        )
        return seal_send(cipher, plain)

    async def write(self, packet: Packet) -> None:
        """Encode and send one packet as one WebSocket message."""
        await self._require_ws().send(self.conn.send(packet))

    async def write_raw(self, frame: bytes) -> None:
        """Send raw bytes (tests of bad input)."""
        await self._require_ws().send(frame)

    def _require_ws(self) -> ClientConnection:
        if self._ws is None:
            raise LocalProtocolError("connect() first")
        return self._ws

    def _require_cipher(self) -> SessionCipher:
        if self.cipher is None:
            raise LocalProtocolError("connect() first")
        return self.cipher

    async def _read(self) -> None:
        ws = self._require_ws()
        try:
            async for data in ws:
                if isinstance(data, bytes):
                    for packet in self.conn.receive_data(data):
                        await self._on_packet(packet)
        except (ConnectionClosed, ProtocolError, OSError):
            pass  # the connection is gone or spoke garbage; ``closed`` is set below
        finally:
            self.closed.set()
            for fut in self._acks.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))

    async def _on_packet(self, packet: Packet) -> None:
        if isinstance(packet, Sendack):
            fut = self._acks.pop(packet.client_seq, None)
            if fut is not None and not fut.done():
                fut.set_result(packet)
            return
        if isinstance(packet, Recv):
            payload = open_recv(self._require_cipher(), packet)
            if self.auto_ack:
                ack = Recvack(packet.message_id, packet.message_seq, flags=packet.flags)
                await self.write(ack)
            self.messages.put_nowait(ReceivedMessage(packet, payload))
            return
        self.packets.put_nowait(packet)

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake (a dead peer would
        not answer one)."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def close(self) -> None:
        """Close the socket and stop reading."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

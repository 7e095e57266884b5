"""A low-level asyncio WuKongIM client: one connection, packets in and out, no cache.

It is the transport the Python SDK builds on, and what Magpie's own tests and benchmarks
use to speak to a server the way the official SDKs do (handshake, encryption, msgKey). The URL
picks the transport: ``ws://host:port`` speaks WebSocket, one packet per binary message, as the
JS SDK does; ``tcp://host:port`` speaks plain TCP, packets back to back on the stream (framed
by their own length prefix), as WuKongIM's native SDKs do.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import urlsplit

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


class _Link(Protocol):
    """The byte pipe under a :class:`RawClient`."""

    async def send(self, data: bytes) -> None:
        """Write one packet's bytes."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """What arrives, until the connection ends."""
        ...

    async def close(self) -> None:
        """Close politely."""
        ...

    @property
    def local_address(self) -> tuple[str, int]:
        """Our end's ``(host, port)``."""
        ...

    def abort(self) -> None:
        """Drop the connection at once."""
        ...


class _WsLink:
    """WebSocket: one packet per binary message."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)

    async def chunks(self) -> AsyncIterator[bytes]:
        async for data in self.ws:
            if isinstance(data, bytes):
                yield data

    async def close(self) -> None:
        await self.ws.close()

    def abort(self) -> None:
        self.ws.transport.abort()

    @property
    def local_address(self) -> tuple[str, int]:
        host, port = self.ws.local_address[:2]
        return str(host), int(port)


class _TcpLink:
    """Plain TCP: packets back to back on the stream."""

    _READ_SIZE = 64 * 1024

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def chunks(self) -> AsyncIterator[bytes]:
        while data := await self.reader.read(self._READ_SIZE):
            yield data

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    def abort(self) -> None:
        self.writer.transport.abort()

    @property
    def local_address(self) -> tuple[str, int]:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return str(host), int(port)


async def _open_link(url: str, timeout: float, local_addr: tuple[str, int] | None = None) -> _Link:
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        if not parts.hostname or parts.port is None:
            raise LocalProtocolError(f"a TCP URL needs a host and a port: {url!r}")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port, local_addr=local_addr), timeout
        )
        return _TcpLink(reader, writer)
    extra: dict[str, Any] = {} if local_addr is None else {"local_addr": local_addr}
    ws = await connect(url, compression=None, max_size=None, open_timeout=timeout, **extra)
    return _WsLink(ws)


class RawClient:
    """One WuKongIM connection speaking protocol ``version`` (2 = JS SDK 1.0.4), over
    WebSocket (``ws://``, ``wss://``) or plain TCP (``tcp://host:port``)."""

    def __init__(
        self,
        url: str,
        uid: str,
        token: str,
        *,
        device_flag: int = 1,
        version: int = 2,
        auto_ack: bool = True,
        local_addr: tuple[str, int] | None = None,
    ) -> None:
        self.url = url
        #: The address to connect from (``None``: the system's choice).
        self.local_addr = local_addr
        self.uid = uid
        self.token = token
        self.device_flag = device_flag
        self.version = version
        self.auto_ack = auto_ack
        self.conn = Connection(Role.CLIENT)
        self.cipher: SessionCipher | None = None
        self.connack: Connack | None = None
        self._link: _Link | None = None
        self._inbox: AsyncIterator[bytes] | None = None
        self._early: list[Packet] = []
        self._client_seq = 0
        self.packets: asyncio.Queue[Packet] = asyncio.Queue()
        self.messages: asyncio.Queue[ReceivedMessage] = asyncio.Queue()
        self._acks: dict[int, asyncio.Future[Sendack]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, timeout: float = 10.0) -> Connack:
        """Open the socket, handshake, and start reading; raises :class:`ConnectRefused`."""
        link = self._link = await _open_link(self.url, timeout, self.local_addr)
        inbox = self._inbox = link.chunks()
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
        await link.send(self.conn.send(hello))
        ack = await asyncio.wait_for(self._connack(inbox), timeout)
        self.connack = ack
        if ack.reason_code != ReasonCode.SUCCESS:
            raise ConnectRefused(f"CONNECT refused: reason {ack.reason_code}", ack.reason_code)
        self.cipher = SessionCipher(derive_aes_key(keys, ack.server_key), ack.salt[:16].encode())
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return ack

    async def _connack(self, inbox: AsyncIterator[bytes]) -> Connack:
        """The CONNACK, however the transport cut its bytes. It must come first; packets
        after it in the same chunk (TCP) are kept for the reader."""
        async for data in inbox:
            packets = self.conn.receive_data(data)
            if not packets:
                continue  # over TCP: the rest of the packet is still on its way
            first, *self._early = packets
            if not isinstance(first, Connack):
                raise ConnectRefused("expected a CONNACK first")
            return first
        raise ConnectRefused("the connection closed before CONNACK")

    @property
    def local_address(self) -> tuple[str, int]:
        """Our end's ``(host, port)`` (what the server logs as the remote address)."""
        return self._require_link().local_address

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
        setting: Setting = Setting.NONE,
    ) -> Send:
        """An encrypted, msgKey'd SEND (``setting``: e.g. ``Setting.RECEIPT``)."""
        cipher = self._require_cipher()
        plain = Send(
            setting=setting,
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
        """Encode and send one packet (over WebSocket: as one binary message)."""
        await self._require_link().send(self.conn.send(packet))

    async def write_raw(self, frame: bytes) -> None:
        """Send raw bytes (tests of bad input)."""
        await self._require_link().send(frame)

    def _require_link(self) -> _Link:
        if self._link is None:
            raise LocalProtocolError("connect() first")
        return self._link

    def _require_cipher(self) -> SessionCipher:
        if self.cipher is None:
            raise LocalProtocolError("connect() first")
        return self.cipher

    async def _read(self) -> None:
        inbox = self._inbox
        if inbox is None:
            raise LocalProtocolError("connect() first")
        try:
            early, self._early = self._early, []
            for packet in early:
                await self._on_packet(packet)
            async for data in inbox:
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
        if self._link is not None:
            self._link.abort()

    async def close(self) -> None:
        """Close the socket and stop reading."""
        if self._link is not None:
            await self._link.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

"""The spec's golden packets (§1.7) through a real node, over WebSocket and over plain TCP.

Each test speaks raw bytes (no RawClient): the handshake is built with the sans-I/O client
:class:`~magpie.protocol.connection.Connection`, then golden frames go in verbatim and what the
server answers is checked byte for byte where the vector fixes every byte (PONG), and by
decoding and re-encoding (the codec's own golden tests pin that mapping) where it carries fresh
ids. The same bytes are also cut anywhere (TCP: one byte per write; WebSocket: a message split
into continuation frames) and packed several to a chunk (a text message is refused: see
``test_gateway.py``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from magpie.app import Node
from magpie.protocol.codec import encode
from magpie.protocol.connection import Connection, Role
from magpie.protocol.crypto import KeyPair, SessionCipher, derive_aes_key, seal_send
from magpie.protocol.packets import (
    Connack,
    Connect,
    Flags,
    Packet,
    Pong,
    ReasonCode,
    Send,
    Sendack,
    Setting,
    Suback,
)
from tests.protocol.test_codec import GOLDEN
from tests.support.nodes import TRANSPORTS, add_user, running_node, time_scale

T = 5 * time_scale()


class RawPeer:
    """One connection speaking raw WuKongIM bytes over ``ws`` or ``tcp``."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.conn = Connection(Role.CLIENT)
        self.received = bytearray()  # every byte the server sent after CONNACK
        self._ws: ClientConnection | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.cipher: SessionCipher | None = None
        self._pending: list[Packet] = []

    async def open(self, node: Node) -> None:
        if self.transport == "tcp":
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", node.tcp_port)
        else:
            self._ws = await ws_connect(f"ws://127.0.0.1:{node.ws_port}", compression=None)

    async def write(self, data: bytes) -> None:
        """``data`` as one WebSocket message, or as one write on the TCP stream."""
        if self._ws is not None:
            await self._ws.send(data)
        else:
            assert self._writer is not None
            self._writer.write(data)
            await self._writer.drain()

    async def write_cut(self, data: bytes) -> None:
        """``data`` cut into one-byte pieces: continuation frames, or one write per byte."""
        if self._ws is not None:
            await self._ws.send([data[i : i + 1] for i in range(len(data))])
        else:
            assert self._writer is not None
            for i in range(len(data)):
                self._writer.write(data[i : i + 1])
                await self._writer.drain()

    async def _chunk(self) -> bytes:
        if self._ws is not None:
            data = await asyncio.wait_for(self._ws.recv(), T)
            assert isinstance(data, bytes)
            return data
        assert self._reader is not None
        data = await asyncio.wait_for(self._reader.read(65536), T)
        assert data, "the server closed the connection"
        return data

    async def packets(self, n: int) -> list[Packet]:
        """The next ``n`` packets from the server."""
        while len(self._pending) < n:
            data = await self._chunk()
            if self.cipher is not None:
                self.received += data
            self._pending += self.conn.receive_data(data)
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    async def handshake(self, uid: str, token: str) -> Connack:
        keys = KeyPair.generate()
        hello = Connect(
            version=2,
            device_flag=1,
            device_id=secrets.token_hex(8),
            uid=uid,
            token=token,
            client_timestamp=time.time_ns() // 1_000_000,
            client_key=keys.public_b64,
        )
        await self.write(self.conn.send(hello))
        [ack] = await self.packets(1)
        assert isinstance(ack, Connack) and ack.reason_code == ReasonCode.SUCCESS
        self.cipher = SessionCipher(derive_aes_key(keys, ack.server_key), ack.salt[:16].encode())
        return ack

    def sealed_send(self, client_seq: int, text: str) -> bytes:
        assert self.cipher is not None
        payload = json.dumps({"type": 1, "content": text}).encode()
        send = Send(Setting.NONE, client_seq, secrets.token_hex(16), "bob", 1, "", payload)
        return self.conn.send(seal_send(self.cipher, send))

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._writer is not None:
            self._writer.close()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path) as n:
        await add_user(n, "alice")
        await add_user(n, "bob")
        yield n


@pytest.fixture(params=TRANSPORTS)
async def peer(request: pytest.FixtureRequest, node: Node) -> AsyncIterator[RawPeer]:
    p = RawPeer(str(request.param))
    await p.open(node)
    await p.handshake("alice", "tok-alice")
    yield p
    await p.close()


def golden(name: str) -> bytes:
    return bytes.fromhex(GOLDEN[name][1])


async def test_golden_ping_gets_the_golden_pong(peer: RawPeer) -> None:
    await peer.write(golden("ping"))
    assert await peer.packets(1) == [Pong()]
    assert bytes(peer.received) == golden("pong")


async def test_golden_sub_gets_a_suback_for_its_channel(peer: RawPeer) -> None:
    await peer.write(golden("sub"))
    [ack] = await peer.packets(1)
    assert isinstance(ack, Suback)
    assert (ack.channel_id, ack.channel_type) == ("room1", 7)
    assert ack.reason_code == ReasonCode.NOT_SUPPORT_CHANNEL_TYPE
    assert bytes(peer.received) == encode(ack)


async def test_sendack_has_the_golden_layout(peer: RawPeer) -> None:
    await peer.write(peer.sealed_send(1, "hello"))
    [ack] = await peer.packets(1)
    assert isinstance(ack, Sendack) and ack.reason_code == ReasonCode.SUCCESS
    assert ack.client_seq == 1 and ack.flags == Flags.NONE
    assert bytes(peer.received) == encode(ack)
    # Same header and size as spec §1.7's SENDACK, whose SEND carried RED_DOT.
    await peer.write(peer.conn.send(_with_flags(peer, 2, Flags.RED_DOT)))
    [red] = await peer.packets(1)
    assert encode(red)[:2] == golden("sendack")[:2]


def _with_flags(peer: RawPeer, client_seq: int, flags: Flags) -> Send:
    assert peer.cipher is not None
    payload = json.dumps({"type": 1, "content": "red dot"}).encode()
    send = Send(Setting.NONE, client_seq, secrets.token_hex(16), "bob", 1, "", payload, flags)
    return seal_send(peer.cipher, send)


async def test_packets_cut_anywhere_are_understood(peer: RawPeer) -> None:
    await peer.write_cut(peer.sealed_send(7, "one byte at a time"))
    [ack] = await peer.packets(1)
    assert isinstance(ack, Sendack) and (ack.client_seq, ack.reason_code) == (7, 1)


async def test_several_packets_in_one_chunk_are_all_answered(peer: RawPeer) -> None:
    chunk = golden("ping") + peer.sealed_send(8, "batched") + golden("ping")
    await peer.write(chunk)
    answers = await peer.packets(3)
    kinds = sorted(type(p).__name__ for p in answers)
    assert kinds == ["Pong", "Pong", "Sendack"]
    [ack] = [p for p in answers if isinstance(p, Sendack)]
    assert (ack.client_seq, ack.reason_code) == (8, ReasonCode.SUCCESS)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_connect_cut_anywhere_is_answered(node: Node, transport: str) -> None:
    p = RawPeer(transport)
    await p.open(node)
    keys = KeyPair.generate()
    hello = Connect(
        version=2,
        device_flag=1,
        device_id="dev",
        uid="bob",
        token="tok-bob",
        client_timestamp=time.time_ns() // 1_000_000,
        client_key=keys.public_b64,
    )
    await p.write_cut(p.conn.send(hello))
    [ack] = await p.packets(1)
    assert isinstance(ack, Connack) and ack.reason_code == ReasonCode.SUCCESS
    await p.close()

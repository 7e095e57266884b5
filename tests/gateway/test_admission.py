"""The admission hook (connection caps, Origin allow-lists plug in here) over both transports,
the TCP listener's switch, and the gateway's bounds on what a client may send early."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

from magpie.app import Node
from magpie.client.raw import ConnectRefused, RawClient
from magpie.config import load_settings
from magpie.gateway.tcp import TcpWire
from magpie.gateway.wire import Handshake, Refusal
from magpie.gateway.ws import WsWire
from magpie.protocol.connection import Connection, Role
from magpie.protocol.crypto import KeyPair
from magpie.protocol.packets import Connect
from tests.support.nodes import (
    API_KEY,
    TRANSPORTS,
    add_user,
    client_url,
    running_node,
    time_scale,
)

T = 5 * time_scale()


class OnePerHost:
    """Admits one connection per remote host (a per-IP cap of 1) and refuses browsers
    from other origins; records what it saw."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}
        self.seen: list[Handshake] = []
        self.released: list[Handshake] = []

    def admit(self, handshake: Handshake) -> Refusal | None:
        self.seen.append(handshake)
        if handshake.origin not in (None, "https://chat.example"):
            return Refusal(1008, "origin not allowed")
        if self.open.get(handshake.remote_host, 0) >= 1:
            return Refusal(1013, "too many connections")
        self.open[handshake.remote_host] = self.open.get(handshake.remote_host, 0) + 1
        return None

    def release(self, handshake: Handshake) -> None:
        self.released.append(handshake)
        self.open[handshake.remote_host] -= 1


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[tuple[Node, OnePerHost]]:
    settings = load_settings(
        environ={},
        data_dir=str(tmp_path),
        ws_port=0,
        api_port=0,
        tcp_port=0,
        api_key=API_KEY,
        sqlite_synchronous="NORMAL",
    )
    node = Node(settings)
    admission = OnePerHost()
    node.gateway.admission = admission
    await node.start()
    try:
        await add_user(node, "alice")
        yield node, admission
    finally:
        await node.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_admission_sees_every_connection_and_its_release(
    gated: tuple[Node, OnePerHost], transport: str
) -> None:
    node, admission = gated
    first = RawClient(client_url(node, transport), "alice", "tok-alice")
    await first.connect(timeout=T)
    [seen] = admission.seen
    assert (seen.transport, seen.remote_host) == (transport, "127.0.0.1")
    assert seen.remote_port == first.local_address[1]
    if transport == "ws":
        assert seen.path == "/" and seen.headers.get("upgrade", "").lower() == "websocket"
    else:
        assert (seen.path, dict(seen.headers)) == ("", {})
    # A second connection from the same host is refused before any WuKongIM byte.
    second = RawClient(client_url(node, transport), "alice", "tok-alice")
    refused = (ConnectRefused, ConnectionError, OSError, TimeoutError, WebSocketException)
    with pytest.raises(refused):
        await second.connect(timeout=T)
    assert len(admission.seen) == 2 and admission.released == []
    assert len(node.gateway.online("alice")) == 1
    await first.close()
    for _ in range(int(50 * time_scale())):
        if admission.released:
            break
        await asyncio.sleep(0.05)
    assert admission.released == [seen] and admission.open == {"127.0.0.1": 0}


async def test_refused_websocket_gets_the_refusal_close_code(
    gated: tuple[Node, OnePerHost],
) -> None:
    node, admission = gated
    url = f"ws://127.0.0.1:{node.ws_port}"
    async with ws_connect(url, origin="https://evil.example") as ws:  # type: ignore[arg-type]
        await asyncio.wait_for(ws.wait_closed(), T)
        assert (ws.close_code, ws.close_reason) == (1008, "origin not allowed")
    assert admission.seen[-1].origin == "https://evil.example"
    async with ws_connect(url, origin="https://chat.example") as ws:  # type: ignore[arg-type]
        async with ws_connect(url) as other:
            await asyncio.wait_for(other.wait_closed(), T)
            assert other.close_code == 1013
        assert ws.close_code is None  # the admitted one stays open


async def test_tcp_listener_can_be_switched_off(tmp_path: Path) -> None:
    async with running_node(tmp_path, tcp_enabled=False) as node:
        assert node.tcp_port == 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.api_port}") as http:
            route = (await http.get("/route", params={"uid": "alice"})).json()
        assert route["tcp_addr"] == "" and route["ws_addr"].startswith("ws://")


async def test_a_packet_before_connack_closes_however_the_bytes_are_cut(tmp_path: Path) -> None:
    """CONNECT and a PING in one TCP write: the PING comes before CONNACK, a protocol
    violation (a client has no keys before CONNACK, so it waits); the start of a packet
    before CONNACK is kept and completed after it."""
    async with running_node(tmp_path) as node:
        await add_user(node, "alice")

        async def exchange(early: bytes, late: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.tcp_port)
            conn = Connection(Role.CLIENT)
            hello = Connect(
                version=2,
                device_flag=1,
                device_id="d",
                uid="alice",
                token="tok-alice",
                client_timestamp=0,
                client_key=KeyPair.generate().public_b64,
            )
            writer.write(conn.send(hello) + early)
            await writer.drain()
            received = b""
            while not received.startswith(b"\x20") or len(received) < 2:
                chunk = await asyncio.wait_for(reader.read(65536), T)
                if not chunk:
                    break
                received += chunk
            if late:
                writer.write(late)
                await writer.drain()
            try:
                while chunk := await asyncio.wait_for(reader.read(65536), T / 5):
                    received += chunk
            except TimeoutError:
                pass
            writer.close()
            return received

        refused = await exchange(b"\x70", b"")
        assert not refused.startswith(b"\x20")  # no CONNACK: closed as a violation
        # A SUB's first byte before CONNACK, the rest after it: one SUBACK.
        sub = bytes.fromhex("a0170000000005726f6f6d31070000097b2261223a2231227d")
        served = await exchange(sub[:1], sub[1:])
        assert served.startswith(b"\x20") and b"room1" in served


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pipelined_sends_are_acked_in_order_with_reading_paused_meanwhile(
    tmp_path: Path, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 SENDs written at once: each gets its SENDACK, in order, numbered in order; over
    ``MAX_PENDING_WORK`` queued SENDs the socket is not read (and is read again after)."""
    paused: list[int] = []
    wire_class = TcpWire if transport == "tcp" else WsWire
    original = wire_class.pause_reading

    def counting(self: object) -> None:
        paused.append(1)
        original(self)  # type: ignore[arg-type]

    monkeypatch.setattr(wire_class, "pause_reading", counting)
    async with running_node(tmp_path) as node:
        await add_user(node, "alice")
        await add_user(node, "bob")
        alice = RawClient(client_url(node, transport), "alice", "tok-alice")
        await alice.connect(timeout=T)
        sends = [alice.seal("bob", 1, b'{"type":1,"content":"n%d"}' % i, i + 1) for i in range(100)]
        acks = await asyncio.wait_for(
            asyncio.gather(*(alice.send_sealed(s) for s in sends)), 10 * T
        )
        assert [a.client_seq for a in acks] == list(range(1, 101))
        assert [a.message_seq for a in acks] == list(range(1, 101))
        assert all(a.reason_code == 1 for a in acks)
        assert paused, "reading was never paused"
        await alice.close()

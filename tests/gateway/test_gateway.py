"""The gateway over real sockets: handshake, send, fan-out, acks, kicks, and the invariants
I1–I5 of ARCHITECTURE.md."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect

from magpie.app import Node
from magpie.client.raw import ConnectRefused, RawClient
from magpie.gateway.wire import Wire
from magpie.protocol.packets import Disconnect, Flags, Ping, Pong, ReasonCode
from magpie.store.sqlite import SqliteStore
from tests.support import nodes
from tests.support.nodes import (
    TRANSPORTS,
    add_user,
    client_url,
    make_group,
    running_node,
    settle,
    time_scale,
)

T = 5 * time_scale()


def text(s: str) -> bytes:
    return json.dumps({"type": 1, "content": s}).encode()


Connector = Callable[..., Awaitable[RawClient]]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Every test that connects clients runs over WebSocket and over plain TCP."""
    return str(request.param)


@pytest.fixture
def connect(transport: str) -> Connector:
    """``await connect(node, uid, token, **kw)``: a low-level client over ``transport``."""

    async def make(node: Node, uid: str, token: str, **kw: Any) -> RawClient:
        return await nodes.connect(node, uid, token, transport=transport, **kw)

    return make


@pytest.fixture
async def node(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with running_node(tmp_path, retry_interval=0.3, retry_attempts=3) as n:
        yield n


async def users(node: Node, *uids: str) -> dict[str, str]:
    return {uid: await add_user(node, uid) for uid in uids}


async def test_person_message_reaches_peer_with_peer_channel_id(
    node: Node, connect: Connector
) -> None:
    tok = await users(node, "alice", "bob")
    alice, bob = await connect(node, "alice", tok["alice"]), await connect(node, "bob", tok["bob"])
    ack = await alice.send("bob", 1, text("hi bob"))
    assert ack.reason_code == ReasonCode.SUCCESS and ack.message_seq == 1
    got = await asyncio.wait_for(bob.messages.get(), T)
    assert got.packet.channel_id == "alice" and got.packet.from_uid == "alice"
    assert (
        got.packet.message_id == ack.message_id and json.loads(got.payload)["content"] == "hi bob"
    )
    assert got.packet.flags & Flags.RED_DOT
    assert alice.messages.empty(), "the sending connection must not get its own message"
    await alice.close()
    await bob.close()


async def test_group_fan_out_and_other_device_of_sender(node: Node, connect: Connector) -> None:
    tok = await users(node, "a", "b", "c")
    await make_group(node, "g1", ["a", "b", "c"])
    a1 = await connect(node, "a", tok["a"], device_flag=1)
    a2 = await connect(node, "a", tok["a"], device_flag=0)
    b, c = await connect(node, "b", tok["b"]), await connect(node, "c", tok["c"])
    ack = await a1.send("g1", 2, text("hello group"))
    for client in (a2, b, c):
        got = await asyncio.wait_for(client.messages.get(), T)
        assert got.packet.channel_id == "g1" and got.packet.message_seq == ack.message_seq
    other_device = await asyncio.wait_for(a2.messages.get(), T) if not a2.messages.empty() else None
    assert other_device is None
    assert a1.messages.empty()
    for client in (a1, a2, b, c):
        await client.close()


async def test_bad_token_gets_connack_auth_fail_and_close(node: Node, transport: str) -> None:
    await users(node, "alice")
    client = RawClient(client_url(node, transport), "alice", "wrong")
    with pytest.raises(ConnectRefused) as info:
        await client.connect()
    assert info.value.reason == ReasonCode.AUTH_FAIL
    assert client.connack is not None and client.connack.server_key == ""


async def test_unknown_user_is_refused(node: Node, transport: str) -> None:
    client = RawClient(client_url(node, transport), "nobody", "x")
    with pytest.raises(ConnectRefused):
        await client.connect()


async def test_no_connect_within_timeout_closes(tmp_path: Path) -> None:
    async with running_node(tmp_path, connect_timeout=0.3) as node:
        ws = await ws_connect(f"ws://127.0.0.1:{node.ws_port}")
        await asyncio.wait_for(ws.wait_closed(), T)
        assert ws.close_code == 1008


async def test_first_packet_not_connect_closes(node: Node) -> None:
    async with ws_connect(f"ws://127.0.0.1:{node.ws_port}") as ws:
        await ws.send(b"\x70")
        await asyncio.wait_for(ws.wait_closed(), T)
        assert ws.close_code == 1008


async def test_tcp_no_connect_within_timeout_closes(tmp_path: Path) -> None:
    async with running_node(tmp_path, connect_timeout=0.3) as node:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.tcp_port)
        assert await asyncio.wait_for(reader.read(), T) == b""  # closed by the server
        writer.close()


async def test_tcp_first_packet_not_connect_closes(node: Node) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.tcp_port)
    writer.write(b"\x70")
    assert await asyncio.wait_for(reader.read(), T) == b""
    writer.close()


async def test_websocket_text_message_closes_as_protocol_violation(node: Node) -> None:
    async with ws_connect(f"ws://127.0.0.1:{node.ws_port}") as ws:
        await ws.send("not binary")
        await asyncio.wait_for(ws.wait_closed(), T)
        assert ws.close_code == 1008


async def test_ping_pong(node: Node, connect: Connector) -> None:
    tok = await users(node, "alice")
    alice = await connect(node, "alice", tok["alice"])
    await alice.write(Ping())
    assert isinstance(await asyncio.wait_for(alice.packets.get(), T), Pong)
    await alice.close()


async def test_non_member_send_refused_and_nothing_stored(node: Node, connect: Connector) -> None:
    tok = await users(node, "a", "x")
    await make_group(node, "g2", ["a"])
    x = await connect(node, "x", tok["x"])
    ack = await x.send("g2", 2, text("let me in"))
    assert ack.reason_code == ReasonCode.SUBSCRIBER_NOT_EXIST and ack.message_id == 0
    assert await node.store.max_seq("g2", 2) == 0
    ack = await x.send("nope", 2, text("?"))
    assert ack.reason_code == ReasonCode.CHANNEL_NOT_EXIST
    await x.close()


async def test_client_cannot_send_cmd_or_sync_once(node: Node, connect: Connector) -> None:
    tok = await users(node, "a", "b")
    a = await connect(node, "a", tok["a"])
    cmd = json.dumps({"type": 99, "cmd": "syncMessageExtra"}).encode()
    ack = await a.send("b", 1, cmd)
    assert ack.reason_code == ReasonCode.NOT_ALLOW_SEND
    ack = await a.send("b", 1, text("x"), flags=Flags.SYNC_ONCE | Flags.RED_DOT)
    assert ack.reason_code == ReasonCode.NOT_SUPPORT_HEADER
    ack = await a.send("b", 1, b"not json")
    assert ack.reason_code == ReasonCode.PAYLOAD_DECODE_ERROR
    assert await node.store.max_seq("a@b", 1) == 0 and await node.store.max_seq("b@a", 1) == 0
    await a.close()


async def test_bad_msg_key_gets_reason_and_nothing_stored(node: Node, connect: Connector) -> None:
    from dataclasses import replace

    tok = await users(node, "a", "b")
    a = await connect(node, "a", tok["a"])
    good = a.seal("b", 1, text("tampered"), a.next_client_seq())
    ack = await asyncio.wait_for(a.send_sealed(replace(good, msg_key="0" * 32)), T)
    assert ack.reason_code == ReasonCode.MSG_KEY_ERROR
    assert ack.client_seq == good.client_seq and ack.message_id == 0
    stored = [m async for m in _all_messages(node, "a", "b")]
    assert stored == []
    await a.close()


async def _all_messages(node: Node, a: str, b: str):  # type: ignore[no-untyped-def]
    from magpie.domain.channels import fake_channel_id

    for m in await node.store.get_messages(
        fake_channel_id(a, b), 1, start_seq=0, end_seq=0, limit=100, pull_mode=0
    ):
        yield m


async def test_master_login_kicks_older_connection(node: Node, connect: Connector) -> None:
    await add_user(node, "m", "tok-m", level=1)
    old = await connect(node, "m", "tok-m", device_flag=1)
    new = await connect(node, "m", "tok-m", device_flag=1)
    kicked = await asyncio.wait_for(old.packets.get(), T)
    assert isinstance(kicked, Disconnect) and kicked.reason_code == ReasonCode.CONNECT_KICK
    await asyncio.wait_for(old.closed.wait(), T)
    assert not new.closed.is_set()
    await new.close()


# --- invariants ----------------------------------------------------------------------------


async def test_i1_ack_means_durable(tmp_path: Path, connect: Connector) -> None:
    async with running_node(tmp_path, sqlite_synchronous="FULL") as node:
        tok = await users(node, "a", "b")
        a = await connect(node, "a", tok["a"])
        ack = await a.send("b", 1, text("durable"))
        # A second, independent store on the same file sees the row as soon as the ack came.
        other = SqliteStore(node.settings.db_path)
        await other.open()
        stored = await other.get_message(ack.message_id)
        await other.close()
        assert stored is not None and stored.message_seq == ack.message_seq
        await a.close()


async def test_i2_concurrent_duplicates_store_once(node: Node, connect: Connector) -> None:
    tok = await users(node, "a", "b")
    clients = [await connect(node, "a", tok["a"], device_flag=f % 3) for f in range(6)]
    acks = await asyncio.gather(
        *(c.send("b", 1, text("once"), client_msg_no="same-no-1") for c in clients)
    )
    assert {a.reason_code for a in acks} == {ReasonCode.SUCCESS}
    assert len({(a.message_id, a.message_seq) for a in acks}) == 1
    assert len([m async for m in _all_messages(node, "a", "b")]) == 1
    for c in clients:
        await c.close()


async def test_i3_gap_free_seq_under_concurrent_senders(node: Node, connect: Connector) -> None:
    members = [f"u{i}" for i in range(10)]
    tok = await users(node, *members)
    await make_group(node, "busy", members)
    clients = [await connect(node, uid, tok[uid]) for uid in members]

    async def burst(c: RawClient) -> list[int]:
        acks = await asyncio.gather(*(c.send("busy", 2, text(f"m{i}")) for i in range(20)))
        return [a.message_seq for a in acks]

    seqs = [s for batch in await asyncio.gather(*(burst(c) for c in clients)) for s in batch]
    assert sorted(seqs) == list(range(1, 201))
    for c in clients:
        await c.close()


async def test_i4_fan_out_only_after_commit(node: Node, connect: Connector) -> None:
    tok = await users(node, "a", "b")
    a, b = await connect(node, "a", tok["a"]), await connect(node, "b", tok["b"])
    for i in range(20):
        await a.send("b", 1, text(f"n{i}"))
        got = await asyncio.wait_for(b.messages.get(), T)
        # The moment a recipient has it, the store has it.
        assert await node.store.get_message(got.packet.message_id) is not None
    await a.close()
    await b.close()


async def test_i5_unacked_recv_is_retried_until_recvack(node: Node, connect: Connector) -> None:
    tok = await users(node, "a", "b")
    a = await connect(node, "a", tok["a"])
    b = await connect(node, "b", tok["b"], auto_ack=False)
    ack = await a.send("b", 1, text("retry me"))
    first = await asyncio.wait_for(b.messages.get(), T)
    again = await asyncio.wait_for(b.messages.get(), T)
    assert first.packet.message_id == again.packet.message_id == ack.message_id
    from magpie.protocol.packets import Recvack

    await b.write(Recvack(ack.message_id, ack.message_seq, flags=again.packet.flags))
    await settle(1.0)
    while not b.messages.empty():  # a retry already in flight before the ack is fine
        b.messages.get_nowait()
    await settle(1.0)
    assert b.messages.empty(), "no retries after RECVACK"
    await a.close()
    await b.close()


async def test_no_persist_is_not_stored_nor_retried(node: Node, connect: Connector) -> None:
    tok = await users(node, "a", "b")
    a = await connect(node, "a", tok["a"])
    b = await connect(node, "b", tok["b"], auto_ack=False)
    ack = await a.send("b", 1, text("typing"), flags=Flags.NO_PERSIST)
    assert ack.reason_code == ReasonCode.SUCCESS and ack.message_seq == 0
    got = await asyncio.wait_for(b.messages.get(), T)
    assert got.packet.flags & Flags.NO_PERSIST
    assert await node.store.get_message(ack.message_id) is None
    await settle(1.0)
    assert b.messages.empty()
    await a.close()
    await b.close()


class _FullSocket:
    """A socket whose kernel buffer always looks full and whose sends never finish."""

    def __init__(self, inner: Wire) -> None:
        self._inner = inner

    def buffered(self) -> int:
        return 10**9

    async def send(self, frame: bytes) -> None:
        await asyncio.sleep(3600)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def test_slow_consumer_is_closed_and_others_unaffected(
    tmp_path: Path, connect: Connector
) -> None:
    async with running_node(tmp_path, outbound_max_frames=5, outbound_max_bytes=4096) as node:
        members = ["s", "fast", "slow"]
        tok = await users(node, *members)
        await make_group(node, "g", members)
        sender = await connect(node, "s", tok["s"])
        fast = await connect(node, "fast", tok["fast"])
        slow = await connect(node, "slow", tok["slow"])
        gw_slow = node.gateway.online("slow")[0]
        # Make the slow reader's socket look full: its writes can only queue.
        gw_slow.ws = _FullSocket(gw_slow.ws)
        for i in range(10):
            await sender.send("g", 2, text(f"m{i}"))
        for _ in range(10):
            await asyncio.wait_for(fast.messages.get(), T)
        await asyncio.wait_for(slow.closed.wait(), T)
        assert node.gateway.online("slow") == []
        for c in (sender, fast):
            await c.close()


async def test_connack_carries_server_version_only_for_clients_above_v3(
    node: Node, connect: Connector
) -> None:
    tok = await users(node, "v")
    old = await connect(node, "v", tok["v"], version=2)
    new = await connect(node, "v", tok["v"], version=4)
    assert old.connack is not None and old.connack.server_version == 0
    assert new.connack is not None and new.connack.server_version == 6
    ack = await new.send("v", 1, text("to myself at v4"))
    assert ack.reason_code == ReasonCode.SUCCESS
    await old.close()
    await new.close()

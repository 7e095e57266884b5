"""The SDK against a real node on loopback: live messages and extension changes, convergence
after a disconnection, restart from the cache, resend after reconnect, heartbeats, refusals,
kicks and the epoch rule (I7)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from magpie.app import Node
from magpie.client import (
    Channel,
    Client,
    ClientClosed,
    ConnectionState,
    ConnectionTrigger,
    ConnectRefused,
    SendRefused,
    Stream,
    SyncPhase,
)
from magpie.client.connection import ConnectionChange
from tests.client.support import FAST, Proxy, T, client_of, ext_update, server_rows
from tests.support.nodes import add_user, api, make_group, running_node, settle

G = Channel.group("g1")


def text(s: str) -> dict[str, object]:
    return {"type": 1, "content": s}


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path / "node", ext_coalesce_ms=0) as n:
        for uid in ("alice", "bob", "carol"):
            await add_user(n, uid)
        await make_group(n, "g1", ["alice", "bob", "carol"])
        yield n


async def started(client: Client) -> Client:
    await client.open()
    await client.wait_connected(T)
    await client.wait_synced(T)
    return client


async def test_two_clients_see_messages_and_ext_changes_within_a_second(
    node: Node, tmp_path: Path
) -> None:
    alice = await started(client_of(node, "alice", "tok-alice", tmp_path / "a.db"))
    bob = await started(client_of(node, "bob", "tok-bob", tmp_path / "b.db"))
    try:
        messages, changes = bob.messages.stream(), bob.ext_changes.stream()
        t0 = time.monotonic()
        sent = await alice.send(G, text("please approve"))
        got = await messages.get(1.0)
        assert (got.message_id, got.message_seq, got.text) == (sent.message_id, 1, "please approve")
        assert got.from_uid == "alice" and got.channel == G
        await ext_update(node, sent.message_id, status="approved", extra_patch={"by": "carol"})
        t1 = time.monotonic()
        change = await changes.get(1.0)
        assert time.monotonic() - t1 < 1.0 and time.monotonic() - t0 < 2.0
        assert change.message_id == sent.message_id and change.old is None
        assert (change.new.status, dict(change.new.extra), change.new.version) == (
            "approved",
            {"by": "carol"},
            1,
        )
        assert change.message is not None and change.message.text == "please approve"
        ext = await bob.ext(sent.message_id)
        assert ext is not None and ext.status == "approved"
        (cached,) = await alice.history(G)
        assert cached.message_id == sent.message_id, "the sender caches its own message"
    finally:
        await alice.close()
        await bob.close()


async def test_a_client_over_tcp_and_one_over_websocket_chat_and_follow_changes(
    node: Node,
) -> None:
    tcp = f"tcp://127.0.0.1:{node.tcp_port}"
    alice = await started(client_of(node, "alice", "tok-alice", None, url=tcp))
    bob = await started(client_of(node, "bob", "tok-bob", None))
    try:
        to_alice, to_bob = alice.messages.stream(), bob.messages.stream()
        alice_changes = alice.ext_changes.stream()
        sent = await alice.send(G, text("over TCP"))
        assert (await to_bob.get(T)).text == "over TCP"
        await bob.send(G, text("over WebSocket"))
        own, got = await to_alice.get(T), await to_alice.get(T)  # the stream has her own too
        assert (own.from_uid, own.text) == ("alice", "over TCP")
        assert (got.from_uid, got.text) == ("bob", "over WebSocket")
        await ext_update(node, sent.message_id, status="seen")
        change = await alice_changes.get(T)
        assert change.message_id == sent.message_id and change.new.status == "seen"
    finally:
        await alice.close()
        await bob.close()


async def test_person_channels_are_named_by_the_peer(node: Node, tmp_path: Path) -> None:
    alice = await started(client_of(node, "alice", "tok-alice", None))
    bob = await started(client_of(node, "bob", "tok-bob", None))
    try:
        got, bob_changes = bob.messages.stream(), bob.ext_changes.stream()
        alice_changes = alice.ext_changes.stream()
        sent = await alice.send(Channel.person("bob"), text("psst"))
        message = await got.get(T)
        assert message.channel == Channel.person("alice") and message.message_seq == 1
        await ext_update(node, sent.message_id, status="read")
        change = await bob_changes.get(T)
        assert change.channel == Channel.person("alice") and change.new.status == "read"
        mine = await alice_changes.get(T)
        assert mine.channel == Channel.person("bob") and mine.message is not None
        (cached,) = await bob.history(Channel.person("alice"))
        assert cached.ext is not None and cached.ext.status == "read"
    finally:
        await alice.close()
        await bob.close()


async def test_a_disconnected_client_converges_after_100_changes(
    node: Node, tmp_path: Path
) -> None:
    async with Proxy(node.ws_port) as proxy:
        bob = await started(client_of(node, "bob", "tok-bob", tmp_path / "b.db", url=proxy.url))
        try:
            async with api(node) as http:
                ids = [await _api_send(http, f"m{i}") for i in range(20)]
            await ext_update(node, ids[0], status="seen")
            await _until(lambda: _has_ext(bob, ids[0]))
            proxy.refuse = True
            proxy.cut()
            await _until(lambda: _async(bob.state is not ConnectionState.CONNECTED))
            for i in range(100):
                await ext_update(node, ids[i % 20], status=f"s{i}", extra_patch={"n": i})
            async with api(node) as http:
                late = [await _api_send(http, f"late{i}") for i in range(5)]
            before = bob.api_requests
            proxy.refuse = False
            await bob.wait_connected(T)
            await bob.wait_synced(T)
            server = await server_rows(node, "bob", "g1", 2)
            assert len(server) == 20
            for mid, row in server.items():
                mine = await bob.ext(mid)
                assert mine is not None and mine.to_json() == row
            history = await bob.history(G, limit=100)
            assert [m.message_seq for m in history] == list(range(1, 26))
            assert [m.message_id for m in history[-5:]] == late
            assert bob.api_requests - before <= 4, "conversations, one history page, one ext page"
        finally:
            await bob.close()


async def test_restart_from_the_cache_shows_the_last_state_offline(tmp_path: Path) -> None:
    cache = tmp_path / "bob.db"
    async with running_node(tmp_path / "node") as node:
        for uid in ("alice", "bob"):
            await add_user(node, uid)
        await make_group(node, "g1", ["alice", "bob"])
        bob = await started(client_of(node, "bob", "tok-bob", cache))
        changes = bob.ext_changes.stream()
        async with api(node) as http:
            mid = await _api_send(http, "card")
        await ext_update(node, mid, status="approved", extra_patch={"votes": 3})
        await changes.get(T)
        url = f"ws://127.0.0.1:{node.ws_port}"
        await bob.close()
    again = Client(url, "bob", "tok-bob", cache_path=cache, api_url="http://127.0.0.1:1")
    states = again.states.stream()
    await again.open()
    try:
        (message,) = await again.history(G)  # before any network traffic succeeded
        assert message.message_id == mid and message.text == "card"
        assert message.ext is not None and message.ext.status == "approved"
        assert dict(message.ext.extra) == {"votes": 3}
        assert [c.channel for c in await again.conversations()] == [G]
        assert again.state is not ConnectionState.CONNECTED
        assert (await states.get(T)).trigger is ConnectionTrigger.START
        assert (await states.get(T)).trigger is ConnectionTrigger.DIAL_FAILED
    finally:
        await again.close()


async def test_reconnect_resends_and_the_message_is_stored_once(node: Node, tmp_path: Path) -> None:
    bob = await started(client_of(node, "bob", "tok-bob", tmp_path / "b.db"))
    async with Proxy(node.ws_port) as proxy:
        alice = await started(
            client_of(node, "alice", "tok-alice", tmp_path / "a.db", url=proxy.url)
        )
        try:
            received = bob.messages.stream()
            proxy.hold()  # the SEND goes through, its SENDACK is lost
            sending = asyncio.ensure_future(alice.send(G, text("once")))
            await _until(lambda: _stored(node, 1))
            assert not sending.done()
            proxy.cut()
            result = await asyncio.wait_for(sending, T)
            stored = await node.store.get_messages(
                "g1", 2, start_seq=0, end_seq=0, limit=10, pull_mode=0
            )
            assert [(m.message_id, m.message_seq) for m in stored] == [
                (result.message_id, result.message_seq)
            ]
            assert proxy.connections == 2
            first = await received.get(T)
            await settle(0.3)
            assert first.message_id == result.message_id and received.pending() == []
            assert [m.message_id for m in await alice.history(G)] == [result.message_id]
        finally:
            await alice.close()
            await bob.close()


async def test_no_pong_means_a_dead_link_and_a_reconnect(node: Node, tmp_path: Path) -> None:
    options = FAST.replace(heartbeat_interval=0.2, pong_timeout=0.3)
    async with Proxy(node.ws_port) as proxy:
        alice = client_of(node, "alice", "tok-alice", None, url=proxy.url, options=options)
        states = alice.states.stream()
        await started(alice)
        try:
            proxy.hold()
            lost = await _next_state(states, ConnectionState.WAITING)
            assert lost.trigger is ConnectionTrigger.LINK_LOST and lost.delay is not None
            await _next_state(states, ConnectionState.CONNECTED)
            assert proxy.connections == 2
            sent = await alice.send(G, text("after the reconnect"))
            assert sent.message_seq == 1
        finally:
            await alice.close()


async def test_a_failed_sync_is_retried_while_connected(node: Node) -> None:
    async with Proxy(node.api_port) as http_proxy:
        http_proxy.refuse = True  # the gateway is up, the HTTP API is not
        client = Client(
            f"ws://127.0.0.1:{node.ws_port}",
            "bob",
            "tok-bob",
            options=FAST,
            api_url=f"http://127.0.0.1:{http_proxy.port}",
        )
        progress = client.sync_progress.stream()
        await client.open()
        try:
            await client.wait_connected(T)
            while (await progress.get(T)).phase is not SyncPhase.FAILED:
                pass
            http_proxy.refuse = False
            await client.wait_synced(T)
            assert client.sync_state.value == "synced"
        finally:
            await client.close()


async def test_a_bad_token_is_refused_for_good(node: Node) -> None:
    client = client_of(node, "alice", "wrong", None)
    await client.open()
    try:
        with pytest.raises(ClientClosed, match="refused"):
            await client.wait_connected(T)
        assert client.state is ConnectionState.REFUSED
        with pytest.raises(ConnectRefused) as info:
            await client.send(G, text("x"))
        assert info.value.reason == 2 and info.value.reason_name == "auth_fail"
    finally:
        await client.close()


async def test_a_refused_send_carries_the_reason(node: Node, tmp_path: Path) -> None:
    await add_user(node, "mallory")
    client = await started(client_of(node, "mallory", "tok-mallory", None))
    try:
        with pytest.raises(SendRefused) as info:
            await client.send(G, text("let me in"))
        assert info.value.reason == 3 and info.value.reason_name == "subscriber_not_exist"
        with pytest.raises(SendRefused) as info:
            await client.send(Channel.group("nope"), text("?"))
        assert info.value.reason == 5
    finally:
        await client.close()


async def test_a_kick_stops_the_client_and_fails_pending_sends(node: Node) -> None:
    client = await started(client_of(node, "alice", "tok-alice", None))
    states = client.states.stream()
    try:
        async with api(node) as http:
            r = await http.post("/user/device_quit", json={"uid": "alice", "device_flag": -1})
            assert r.status_code == 200, r.text
        kicked = await _next_state(states, ConnectionState.KICKED)
        assert kicked.reason == 12
        with pytest.raises(ClientClosed, match="kicked"):
            await client.send(G, text("x"))
    finally:
        await client.close()
    assert client.state is ConnectionState.CLOSED


async def test_a_new_store_epoch_drops_the_cache(tmp_path: Path) -> None:
    async with running_node(tmp_path / "n1") as one, running_node(tmp_path / "n2") as two:
        for n in (one, two):
            for uid in ("alice", "bob"):
                await add_user(n, uid)
            await make_group(n, "g1", ["alice", "bob"])
        async with api(one) as http:
            old = await _api_send(http, "from the old store")
        async with Proxy(one.ws_port) as ws, Proxy(one.api_port) as http_proxy:
            bob = Client(
                ws.url,
                "bob",
                "tok-bob",
                cache_path=tmp_path / "b.db",
                api_url=f"http://127.0.0.1:{http_proxy.port}",
                options=FAST,
            )
            progress = bob.sync_progress.stream()
            await started(bob)
            try:
                assert [m.message_id for m in await bob.history(G)] == [old]
                async with api(two) as http:
                    new = await _api_send(http, "from the new store")
                ws.upstream, http_proxy.upstream = two.ws_port, two.api_port
                ws.cut()
                http_proxy.cut()  # pooled keep-alive connections still lead to the old node
                await _until(lambda: _async(bob.state is not ConnectionState.CONNECTED))
                await bob.wait_connected(T)
                await bob.wait_synced(T)
                assert [m.message_id for m in await bob.history(G)] == [new]
                assert bob.cache.epoch == two.store.epoch != one.store.epoch
                phases = [p.phase for p in progress.pending()]
                assert SyncPhase.RESET in phases
            finally:
                await bob.close()


# --- helpers -------------------------------------------------------------------------------


async def _api_send(http: httpx.AsyncClient, content: str) -> int:
    """Send a text message to g1 as alice through the business API; its id."""
    payload = base64.b64encode(json.dumps(text(content)).encode()).decode()
    body = {"from_uid": "alice", "channel_id": "g1", "channel_type": 2, "payload": payload}
    r = await http.post("/message/send", json=body)
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["message_id"])


async def _async(value: bool) -> bool:
    return value


async def _has_ext(client: Client, message_id: int) -> bool:
    return await client.ext(message_id) is not None


async def _stored(node: Node, seq: int) -> bool:
    return await node.store.max_seq("g1", 2) >= seq


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _next_state(states: Stream[ConnectionChange], state: ConnectionState) -> ConnectionChange:
    while True:
        change = await states.get(T)
        if change.new is state:
            return change

"""Store epochs protect the SDK's cache (I7), as a user meets them: a client that only sent
messages reconnects to a server that now runs on a different store (a restore, a fresh
install). Before the fix its cache never recorded the epoch (no sync page was read), adopted
the new store's epoch without dropping its data, and showed the old store's m0–m2 as seqs
1–3 while the new store's seq 1 never appeared. Now ``/conversation/sync`` carries the epoch,
the first sync records it before anything is cached, and data cached without an epoch (a file
left by an older SDK) is treated as stale."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from magpie.app import Node
from magpie.client import Channel, Client, ConnectionState, SyncPhase
from magpie.client.cache import Cache
from magpie.client.model import Message
from tests.client.support import FAST, Proxy, T
from tests.support.nodes import add_user, api, make_group, running_node

G = Channel.group("g1")


def _text(s: str) -> bytes:
    return json.dumps({"type": 1, "content": s}).encode()


async def _prepare(node: Node) -> None:
    for uid in ("alice", "bob"):
        await add_user(node, uid)
    await make_group(node, "g1", ["alice", "bob"])


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_client_that_only_sent_drops_its_cache_on_a_new_store(
    tmp_path: Path,
) -> None:
    async with running_node(tmp_path / "old") as old, running_node(tmp_path / "new") as new:
        for n in (old, new):
            await _prepare(n)
        async with Proxy(old.ws_port) as ws, Proxy(old.api_port) as http_proxy:
            alice = Client(
                ws.url,
                "alice",
                "tok-alice",
                cache_path=tmp_path / "alice.db",
                api_url=f"http://127.0.0.1:{http_proxy.port}",
                options=FAST,
            )
            progress = alice.sync_progress.stream()
            await alice.open()
            try:
                await alice.wait_connected(T)
                await alice.wait_synced(T)
                for i in range(3):
                    await alice.send(G, {"type": 1, "content": f"m{i}"})
                cached = await alice.history(G)
                assert [m.message_seq for m in cached] == [1, 2, 3]
                # The first sync recorded the epoch before anything was cached.
                assert alice.cache.epoch == old.store.epoch
                # The server now runs on another store, where bob sends one message (seq 1).
                async with api(new) as http:
                    payload = base64.b64encode(_text("from the new store")).decode()
                    body = {"from_uid": "bob", "channel_id": "g1", "channel_type": 2,
                            "payload": payload}  # fmt: skip
                    r = await http.post("/message/send", json=body)
                    fresh = int(r.json()["data"]["message_id"])
                ws.upstream, http_proxy.upstream = new.ws_port, new.api_port
                ws.cut()
                http_proxy.cut()
                await _until(lambda: _is(alice.state is not ConnectionState.CONNECTED))
                await alice.wait_connected(T)
                await alice.wait_synced(T)
                shown = await alice.history(G)
                assert [(m.message_id, m.message_seq) for m in shown] == [(fresh, 1)], (
                    "the old store's m0–m2 must not be shown as the new store's seqs 1–3"
                )
                assert alice.cache.epoch == new.store.epoch
                assert SyncPhase.RESET in [p.phase for p in progress.pending()]
            finally:
                await alice.close()


async def _is(value: bool) -> bool:
    return value


async def test_a_cache_file_with_data_but_no_epoch_is_stale(tmp_path: Path) -> None:
    """A cache file holding messages but no epoch (as an SDK before the fix left it after
    only sending) shows only the server's messages after the first sync."""
    leftover = Cache(tmp_path / "alice.db")
    await leftover.open("alice")
    await leftover.put_messages([_message(seq) for seq in (1, 2, 3)])
    await leftover.close()
    async with running_node(tmp_path / "node") as node:
        await _prepare(node)
        async with api(node) as http:
            payload = base64.b64encode(_text("the server's first")).decode()
            body = {"from_uid": "bob", "channel_id": "g1", "channel_type": 2, "payload": payload}
            r = await http.post("/message/send", json=body)
            first = int(r.json()["data"]["message_id"])
        alice = Client(
            f"ws://127.0.0.1:{node.ws_port}",
            "alice",
            "tok-alice",
            cache_path=tmp_path / "alice.db",
            api_url=f"http://127.0.0.1:{node.api_port}",
            options=FAST,
        )
        await alice.open()
        try:
            await alice.wait_connected(T)
            await alice.wait_synced(T)
            assert [(m.message_id, m.message_seq) for m in await alice.history(G)] == [(first, 1)]
            assert alice.cache.epoch == node.store.epoch
        finally:
            await alice.close()


def _message(seq: int) -> Message:
    return Message.of(G, 1000 + seq, seq, f"c{seq}", "alice", 1, _text(f"m{seq}"))


async def test_an_empty_cache_adopts_the_first_epoch_it_hears(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.db")
    await cache.open("alice")
    try:
        assert await cache.adopt_epoch("e1") is True
        assert cache.epoch == "e1"
        assert await cache.adopt_epoch("e2") is False, "a recorded epoch is never replaced"
        assert cache.epoch == "e1"
    finally:
        await cache.close()


async def test_a_cache_holding_data_without_an_epoch_refuses_to_adopt_one(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.db")
    await cache.open("alice")
    try:
        await cache.put_messages([_message(1)])
        assert await cache.adopt_epoch("e1") is False
        assert cache.epoch == ""
        assert [m.message_seq for m in await cache.history(G, 10)] == [1]
    finally:
        await cache.close()

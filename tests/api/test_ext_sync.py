"""Extension sync over HTTP (``/message/extra/sync``, ``message_extra`` in
``/channel/messagesync``), the ``syncMessageExtra`` CMD to online members, and the convergence
check for every kind of change: (state before + changes synced after) == a fresh full sync."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.app import Node
from magpie.client.raw import RawClient, ReceivedMessage
from magpie.ext.hlc import pack
from magpie.protocol.packets import Flags
from tests.api.ext_support import (
    GROUP,
    PERSON,
    cas,
    catch_up,
    full_sync,
    send,
    update,
)
from tests.api.helpers import as_user
from tests.support.nodes import (
    add_user,
    api,
    connect,
    make_group,
    running_node,
    settle,
    time_scale,
)

#: Run on both stores (tests.api.conftest).
BOTH_STORES = True

T = 5 * time_scale()


def sync_body(channel: str, cursor: int = 0, **extra: Any) -> dict[str, Any]:
    return {"channel_id": channel, "channel_type": GROUP, "extra_version": cursor, **extra}


async def test_sync_is_a_bare_array_with_the_epoch_header(
    node: Node, http: httpx.AsyncClient
) -> None:
    token = await add_user(node, "a")
    await make_group(node, "g1", ["a"])
    ids = [await send(http, "a", "g1") for _ in range(4)]
    for n, mid in enumerate([ids[0], ids[1], ids[2], ids[0]]):  # extra_versions 1..4
        await update(http, mid, mode="lww", status=f"s{n}")
    async with as_user(node, token) as user:  # TSDD shape: a user token, no uid in the body
        r = await user.post("/message/extra/sync", json=sync_body("g1", 1, limit=2))
        assert r.status_code == 200, r.text
        assert r.headers["x-magpie-epoch"] == node.store.epoch
        rows = r.json()
        assert isinstance(rows, list)
        assert [(x["message_id"], x["extra_version"]) for x in rows] == [(ids[1], 2), (ids[2], 3)]
        assert set(rows[0]) >= {
            "message_id",
            "message_id_str",
            "message_seq",
            "extra_version",
            "revoke",
            "revoker",
            "readed_count",
            "content_edit",
            "edited_at",
            "status",
            "extra",
            "version",
            "updated_at",
            "updated_by",
        }
        r = await user.post("/message/extra/sync", json=sync_body("g1", 0, limit=2, envelope=True))
        page = r.json()
        assert set(page) == {"epoch", "rows", "more"} and page["epoch"] == node.store.epoch
        assert [x["extra_version"] for x in page["rows"]] == [3, 4], "cursor 0: the newest"
        assert page["more"] == 0
        r = await user.post("/message/extra/sync", json=sync_body("g1", 1, limit=2, envelope=1))
        assert r.json()["more"] == 1
        r = await user.post("/message/extra/sync", json=sync_body("g1", 4))
        assert r.json() == []


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path, ext_sync_max_limit=3) as n:
        yield n


async def test_the_sync_limit_is_capped_at_n(capped: Node) -> None:
    async with api(capped) as http:
        await make_group(capped, "g1", ["a"])
        for _ in range(5):
            await update(http, await send(http, "a", "g1"), mode="lww", status="x")
        for limit, expected in ((3, 3), (4, 3), (2, 2), (0, 3)):
            body = sync_body("g1", 1, limit=limit, login_uid="a")
            r = await http.post("/message/extra/sync", json=body)
            assert len(r.json()) == expected, limit


async def test_who_may_sync(node: Node, http: httpx.AsyncClient) -> None:
    tokens = {uid: await add_user(node, uid) for uid in ("a", "c")}
    await add_user(node, "twin1", "shared")
    await add_user(node, "twin2", "shared")
    await make_group(node, "g1", ["a", "twin1"])
    await update(http, await send(http, "a", "g1"), mode="lww", status="x")
    async with as_user(node, tokens["c"]) as stranger:
        r = await stranger.post("/message/extra/sync", json=sync_body("g1"))
        assert (r.status_code, r.json()["code"]) == (403, "forbidden")
        r = await stranger.post("/message/extra/sync", json=sync_body("g1", login_uid="a"))
        assert r.status_code == 403, "a token of c cannot read as a"
    async with as_user(node, "made-up") as nobody:
        r = await nobody.post("/message/extra/sync", json=sync_body("g1"))
        assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    async with as_user(node, "shared") as twin:
        r = await twin.post("/message/extra/sync", json=sync_body("g1"))
        assert (r.status_code, r.json()["field"]) == (400, "login_uid")
        r = await twin.post("/message/extra/sync", json=sync_body("g1", login_uid="twin1"))
        assert r.status_code == 200 and len(r.json()) == 1
    business = await http.post("/message/extra/sync", json=sync_body("g1"))
    assert business.status_code == 200 and len(business.json()) == 1
    r = await http.post("/message/extra/sync", json={"channel_id": "a", "channel_type": PERSON})
    assert (r.status_code, r.json()["field"]) == (400, "login_uid")


async def test_person_channels_show_the_peer(node: Node, http: httpx.AsyncClient) -> None:
    tokens = {uid: await add_user(node, uid) for uid in ("a", "b")}
    mid = await send(http, "a", "b", PERSON)
    r = await cas(http, mid, 0, "p", status="seen")
    assert "@" in r.json()["data"]["channel_id"], "the business view: the storage id"
    for me, peer in (("a", "b"), ("b", "a")):
        async with as_user(node, tokens[me]) as user:
            body = {"channel_id": peer, "channel_type": PERSON}
            (row,) = (await user.post("/message/extra/sync", json=body)).json()
            assert (row["message_id"], row["channel_id"], row["status"]) == (mid, peer, "seen")
            body = {"login_uid": me, "channel_id": peer, "channel_type": PERSON}
            page = (await user.post("/channel/messagesync", json=body)).json()
            assert page["messages"][0]["message_extra"]["channel_id"] == peer


async def test_messagesync_embeds_each_extension(node: Node, http: httpx.AsyncClient) -> None:
    await make_group(node, "g1", ["a", "b"])
    m1, m2 = await send(http, "a", "g1"), await send(http, "a", "g1")
    row = (await cas(http, m2, 0, "x", status="approved", extra_patch={"n": 1})).json()["data"]
    body = {"login_uid": "b", "channel_id": "g1", "channel_type": GROUP}
    r = await http.post("/channel/messagesync", json=body)
    assert r.headers["x-magpie-epoch"] == node.store.epoch
    first, second = r.json()["messages"]
    assert first["message_id"] == m1 and first["message_extra"] is None
    assert second["message_extra"] == row


# --- the CMD -------------------------------------------------------------------------------


async def next_cmd(client: RawClient) -> tuple[ReceivedMessage, dict[str, Any]]:
    got = await asyncio.wait_for(client.messages.get(), T)
    return got, json.loads(got.payload)


async def test_changes_notify_online_members(node: Node, http: httpx.AsyncClient) -> None:
    tokens = {uid: await add_user(node, uid) for uid in ("a", "b", "c", "d")}
    await make_group(node, "g1", ["a", "b", "d"])
    mid = await send(http, "a", "g1")
    a, b, c = [await connect(node, uid, tokens[uid]) for uid in ("a", "b", "c")]
    try:
        await cas(http, mid, 0, "plain", status="x")
        for client in (a, b):
            got, payload = await next_cmd(client)
            assert payload == {
                "type": 99,
                "cmd": "syncMessageExtra",
                "param": {"channel_id": "g1", "channel_type": GROUP, "extra_version": 1},
            }
            assert got.packet.flags & Flags.NO_PERSIST and got.packet.flags & Flags.SYNC_ONCE
            assert got.packet.channel_id == "g1" and not got.packet.flags & Flags.RED_DOT
        queued = await http.post("/message/sync", json={"uid": "d"})
        assert queued.json() == [], "online-only: nothing queued for the offline member"

        await cas(http, mid, 1, "vital", status="y", important=1)
        got, payload = await next_cmd(a)
        assert payload["param"]["extra_version"] == 2
        assert got.packet.flags & Flags.SYNC_ONCE and not got.packet.flags & Flags.NO_PERSIST
        (entry,) = (await http.post("/message/sync", json={"uid": "d"})).json()
        assert json.loads(base64.b64decode(entry["payload"]))["cmd"] == "syncMessageExtra"
        await settle(0.2)
        assert c.messages.empty(), "a non-member hears nothing"
    finally:
        for client in (a, b, c):
            await client.close()


async def test_a_burst_is_coalesced_and_the_last_is_kept(
    node: Node, http: httpx.AsyncClient
) -> None:
    token = await add_user(node, "a")
    await make_group(node, "g1", ["a"])
    ids = [await send(http, "a", "g1") for _ in range(5)]
    a = await connect(node, "a", token)
    try:
        await asyncio.gather(*(update(http, mid, mode="lww", status="v") for mid in ids * 4))
        seen = []
        while True:
            _, payload = await next_cmd(a)
            seen.append(payload["param"]["extra_version"])
            if seen[-1] == 20:
                break
        assert len(seen) < 20, "changes within the window share a CMD"
        assert seen == sorted(seen)
        await settle(0.15)
        assert a.messages.empty()
    finally:
        await a.close()


# --- catching up and convergence -----------------------------------------------------------


async def test_an_offline_device_catches_up_in_few_requests(
    node: Node, http: httpx.AsyncClient
) -> None:
    token = await add_user(node, "a")
    await make_group(node, "g1", ["a"])
    ids = [await send(http, "a", "g1") for _ in range(100)]
    async with as_user(node, token) as device:
        cache = await full_sync(device, "g1")
        assert cache.rows == {} and cache.cursor == 0
        await cas(http, ids[0], 0, "seed", status="s")
        cache, _ = await catch_up(device, cache, "g1", 10)
        for n in range(100):  # the device is offline; every change on another message
            await update(http, ids[(n + 1) % 100], mode="lww", extra_patch={"n": n})
        for limit in (7, 10, 100, 1000):
            caught, requests = await catch_up(device, cache, "g1", limit)
            assert requests == math.ceil(100 / limit), (limit, requests)
            assert caught == await full_sync(device, "g1")
            assert caught.cursor == 101 and len(caught.rows) == 100


Change = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
TOO_MANY_KEYS = {f"k{i}": i for i in range(300)}  # above the default ext_max_keys (256)

CHANGES: dict[str, Change] = {
    "cas": lambda h, m: update(h, m, expected_version=1, status="cas", extra_patch={"x": 1}),
    "cas conflict": lambda h, m: update(h, m, expected_version=0, status="lost"),
    "lww": lambda h, m: update(h, m, mode="lww", extra_patch={"k": None, "y": [1]}),
    "lww stale": lambda h, m: update(h, m, mode="lww", updated_at=pack(1), status="old"),
    "readed_count": lambda h, m: update(h, m, expected_version=1, readed_count=3),
    "revoke": lambda h, m: h.post("/message/revoke", json={"message_id": m, "revoker": "a"}),
    "edit": lambda h, m: h.post(
        "/message/edit", json={"message_id": m, "content_edit": {"type": 1, "content": "e"}}
    ),
    "repeat": lambda h, m: update(h, m, expected_version=0, action_id="seed", status="s"),
    "invalid": lambda h, m: update(
        h, m, expected_version=1, extra_patch={"a": {"b": 1}} | {f"k{i}": i for i in range(300)}
    ),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
async def test_every_change_converges(node: Node, http: httpx.AsyncClient, change: Change) -> None:
    """verify_action: a client's state before + the rows it syncs after == a fresh sync."""
    token = await add_user(node, "a")
    await make_group(node, "g1", ["a"])
    target, other = await send(http, "a", "g1"), await send(http, "a", "g1")
    await cas(http, target, 0, "seed", status="s", extra_patch={"k": "v"})
    await cas(http, other, 0, "other", status="o")
    async with as_user(node, token) as device:
        before = await full_sync(device, "g1")
        r = await change(http, target)
        assert r.status_code in (200, 400, 409, 413), r.text
        after, _ = await catch_up(device, before, "g1", 2)
        fresh = await full_sync(device, "g1")
        assert after == fresh
        assert fresh.rows[other] == before.rows[other]
        changed = r.status_code == 200 and not r.json()["duplicate"]
        assert (fresh.rows[target] != before.rows[target]) == changed

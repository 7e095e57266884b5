"""Read receipts (``docs/conversation.md``, item 3a): first reads of messages sent with the
receipt setting are counted through the extension path (live to the sender), the "read by"
list is the sender's; repeats change nothing; outsiders get nothing."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx

from magpie.app import Node
from tests.api.conv_support import GROUP, PERSON, cmds, group, next_cmd, online, user_client, users
from tests.api.ext_support import catch_up, full_sync
from tests.support.nodes import settle

BOTH_STORES = True
RECEIPT = 0x80


async def send(
    http: httpx.AsyncClient, frm: str, channel: str, kind: int = GROUP, setting: int = RECEIPT
) -> int:
    payload = base64.b64encode(json.dumps({"type": 1, "content": "read me"}).encode()).decode()
    body = {
        "from_uid": frm,
        "channel_id": channel,
        "channel_type": kind,
        "payload": payload,
        "setting": setting,
    }
    r = await http.post("/message/send", json=body)
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["message_id"])


async def read(
    c: httpx.AsyncClient, *ids: int, channel: str = "g1", kind: int = GROUP
) -> httpx.Response:
    body = {"channel_id": channel, "channel_type": kind, "message_ids": [str(i) for i in ids]}
    return await c.post("/message/readed", json=body)


async def receipt(c: httpx.AsyncClient, mid: int, **query: Any) -> httpx.Response:
    return await c.get(f"/messages/{mid}/receipt", params=query)


async def ops(http: httpx.AsyncClient, mid: int) -> list[dict[str, Any]]:
    return (await http.post("/message/extra/ops", json={"message_id": mid})).json()["data"]


async def test_first_reads_count_and_reach_the_sender_live(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "bob", "carol", "dave")
    await group(node, "g1", "alice", "bob", "carol", "dave")
    mid = await send(http, "alice", "g1")
    plain = await send(http, "alice", "g1", setting=0)
    async with online(node, tokens, "alice") as (alice,):
        async with user_client(node, tokens["bob"]) as bob:
            r = await read(bob, mid, plain)
            assert r.status_code == 200, r.text
            assert r.json()["data"] == {"applied": [str(mid)], "skipped": [str(plain)]}
            _, cmd = await next_cmd(alice, "syncMessageExtra")
            assert cmd["param"]["channel_id"] == "g1"
            again = await read(bob, mid)
            assert again.json()["data"] == {"applied": [], "skipped": [str(mid)]}
        async with user_client(node, tokens["carol"]) as carol:
            assert (await read(carol, mid)).json()["data"]["applied"] == [str(mid)]
        async with user_client(node, tokens["alice"]) as me:
            own = await read(me, mid)
            assert own.json()["data"] == {"applied": [], "skipped": [str(mid)]}, "one's own"
            rows = (await full_sync(me, "g1")).rows
        await settle(0.2)
        assert len(cmds(alice, "syncMessageExtra")) >= 1
    fields = rows[mid].fields
    assert (fields.readed_count, fields.unread_count) == (2, 1)  # dave has not read it
    assert plain not in rows
    assert [(o["operation"], o["actor"]["uid"]) for o in await ops(http, mid)] == [
        ("read", "bob"),
        ("read", "carol"),
    ], "a repeat logs nothing more"


async def test_the_read_by_list_is_the_senders(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob", "carol", "dave", "eve")
    await group(node, "g1", "alice", "bob", "carol", "dave")
    mid = await send(http, "alice", "g1")
    for uid in ("carol", "bob"):
        async with user_client(node, tokens[uid]) as c:
            assert (await read(c, mid)).status_code == 200
    async with user_client(node, tokens["alice"]) as me:
        r = await receipt(me, mid)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [x["uid"] for x in body["data"]] == ["bob", "carol"] and body["more"] == 0
        assert all(x["readed_at"] > 1_700_000_000_000 for x in body["data"])
        first = (await receipt(me, mid, limit=1)).json()
        assert [x["uid"] for x in first["data"]] == ["bob"] and first["more"] == 1
        rest = (await receipt(me, mid, limit=1, after="bob")).json()
        assert [x["uid"] for x in rest["data"]] == ["carol"] and rest["more"] == 0
        waiting = (await receipt(me, mid, readed=0)).json()
        assert [x["uid"] for x in waiting["data"]] == ["dave"]
    async with user_client(node, tokens["bob"]) as bob:
        r = await receipt(bob, mid)
        assert r.status_code == 403 and "carol" not in r.text
    async with user_client(node, tokens["eve"]) as eve:
        r = await receipt(eve, mid)
        assert r.status_code == 404 and "carol" not in r.text
    r = await receipt(http, mid)
    assert r.status_code == 200 and len(r.json()["data"]) == 2, "the business key may ask"


async def test_person_channel_receipts(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob")
    mid = await send(http, "alice", "bob", PERSON)
    async with user_client(node, tokens["bob"]) as bob:
        r = await read(bob, mid, channel="alice", kind=PERSON)
        assert r.json()["data"]["applied"] == [str(mid)]
    async with user_client(node, tokens["alice"]) as alice:
        row = (await full_sync(alice, "bob", PERSON)).rows[mid]
        assert (row.fields.readed_count, row.fields.unread_count) == (1, 0)
        assert [x["uid"] for x in (await receipt(alice, mid)).json()["data"]] == ["bob"]


async def test_bad_reads_change_nothing(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob", "eve")
    await group(node, "g1", "alice", "bob")
    await group(node, "g2", "alice", "bob")
    mid = await send(http, "alice", "g1")
    other = await send(http, "alice", "g2")
    async with user_client(node, tokens["bob"]) as bob:
        r = await read(bob, mid, other)
        assert (r.status_code, r.json()["field"]) == (404, "message_ids")
        assert (await read(bob, mid, 123456789)).status_code == 404
        r = await bob.post(
            "/message/readed", json={"channel_id": "g1", "channel_type": GROUP, "message_ids": []}
        )
        assert r.status_code == 400
        r = await bob.post(
            "/message/readed",
            json={"channel_id": "g1", "channel_type": GROUP, "message_ids": ["x"]},
        )
        assert r.status_code == 400
    async with user_client(node, tokens["eve"]) as eve:
        r = await read(eve, mid)
        assert r.status_code == 403 and str(mid) not in r.text
    assert await ops(http, mid) == [] and await ops(http, other) == []


async def test_incremental_sync_of_counts_converges(node: Node, http: httpx.AsyncClient) -> None:
    readers = [f"r{n}" for n in range(6)]
    tokens = await users(node, "alice", *readers)
    await group(node, "g1", "alice", *readers)
    mids = [await send(http, "alice", "g1") for _ in range(3)]
    async with user_client(node, tokens["alice"]) as me:
        async with user_client(node, tokens["r0"]) as first:  # every message has a row
            assert (await read(first, *mids)).status_code == 200
        before = await full_sync(me, "g1")
        assert before.cursor == 3
        for n, uid in enumerate(readers[1:], start=1):
            async with user_client(node, tokens[uid]) as c:
                assert (await read(c, *mids[: 1 + n % 3])).status_code == 200
        after, _ = await catch_up(me, before, "g1", limit=2)
        fresh = await full_sync(me, "g1")
    assert after.rows == fresh.rows
    # r0 read all three; r1..r5 read the first 1 + n % 3 of them
    assert [fresh.rows[m].fields.readed_count for m in mids] == [6, 5, 3]
    assert [fresh.rows[m].fields.unread_count for m in mids] == [0, 1, 3]


async def test_a_storm_of_reads_is_counted_exactly(node: Node, http: httpx.AsyncClient) -> None:
    readers = [f"r{n}" for n in range(40)]
    tokens = await users(node, "alice", *readers)
    await group(node, "g1", "alice", *readers)
    mid = await send(http, "alice", "g1")

    async def one(uid: str) -> None:
        async with user_client(node, tokens[uid]) as c:
            await asyncio.gather(read(c, mid), read(c, mid))  # twice at once: counted once

    await asyncio.gather(*(one(u) for u in readers))
    async with user_client(node, tokens["alice"]) as me:
        row = (await full_sync(me, "g1")).rows[mid]
        listed = (await receipt(me, mid, limit=1000)).json()["data"]
    assert (row.fields.readed_count, row.fields.unread_count) == (40, 0)
    assert sorted(x["uid"] for x in listed) == sorted(readers)

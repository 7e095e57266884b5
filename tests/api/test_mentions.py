"""Mentions and reminders (``docs/conversation.md``, item 4): ``mention`` checked at send,
reminders created in the message's transaction for mentioned members (everybody for group
admins' ``all``), a per-user version for incremental sync, done marks synced to every device."""

from __future__ import annotations

import json
from typing import Any

import httpx

from magpie.app import Node
from magpie.client.raw import RawClient
from magpie.protocol.packets import ReasonCode
from tests.api.conv_support import GROUP, PERSON, cmds, group, next_cmd, online, user_client, users
from tests.api.helpers import b64
from tests.support.nodes import settle

BOTH_STORES = True


def mention(text: str, uids: list[str] | None = None, everybody: int = 0, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "type": 1,
        "content": text,
        "mention": {"uids": uids or [], "all": everybody},
    }
    return json.dumps({**body, **extra}).encode()


async def reminders(c: httpx.AsyncClient, version: int = 0, **kw: Any) -> list[dict[str, Any]]:
    r = await c.post("/message/reminder/sync", json={"version": version, **kw})
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()
    return out


async def setup(node: Node, http: httpx.AsyncClient) -> dict[str, str]:
    tokens = await users(node, "alice", "bob", "carol", "dave", "eve")
    await group(node, "g1", "alice", "bob", "carol", "dave")
    r = await http.post(
        "/channel/subscriber_role",
        json={"channel_id": "g1", "channel_type": GROUP, "uids": ["alice"], "role": 2},
    )
    assert r.status_code == 200
    return tokens


async def test_mentioned_members_get_reminders(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await setup(node, http)
    async with online(node, tokens, "bob", "carol", "eve") as (bob, carol, eve):
        ack = await bob.send("g1", GROUP, mention("hi @carol @eve", ["carol", "eve", "nobody"]))
        assert ack.reason_code == ReasonCode.SUCCESS
        _, cmd = await next_cmd(carol, "syncReminders")
        assert cmd["param"] == {}
        await settle(0.2)
        assert cmds(eve, "syncReminders") == [], "not a member: no reminder, no notice"
        assert cmds(bob, "syncReminders") == []
    async with user_client(node, tokens["carol"]) as c:
        (row,) = await reminders(c)
    assert row == {
        "id": row["id"],
        "channel_id": "g1",
        "channel_type": GROUP,
        "publisher": "bob",
        "message_seq": ack.message_seq,
        "message_id": str(ack.message_id),
        "reminder_type": 1,
        "uid": "carol",
        "text": "[@you]",
        "data": None,
        "is_locate": 1,
        "version": row["version"],
        "done": 0,
    }
    for uid in ("eve", "bob", "dave"):
        async with user_client(node, tokens[uid]) as c:
            assert await reminders(c) == []


async def test_mention_all_is_for_admins(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await setup(node, http)
    async with online(node, tokens, "bob", "alice") as (bob, alice):
        refused = await bob.send("g1", GROUP, mention("@all", everybody=1))
        assert refused.reason_code == ReasonCode.NOT_ALLOW_SEND
        assert await node.store.max_seq("g1", GROUP) == 0, "nothing stored"
        ok = await alice.send("g1", GROUP, mention("@all", everybody=1))
        assert ok.reason_code == ReasonCode.SUCCESS
    for uid, expected in (("bob", 1), ("carol", 1), ("dave", 1), ("alice", 0)):
        async with user_client(node, tokens[uid]) as c:
            rows = await reminders(c)
        assert len(rows) == expected and all(r["text"] == "[@all]" for r in rows)
    body = {"from_uid": "bob", "channel_id": "g1", "channel_type": GROUP}
    r = await http.post("/message/send", json={**body, "payload": b64(mention("x", everybody=1))})
    assert r.status_code == 200, "the business API may mention everybody"


async def test_malformed_mentions_are_refused(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await setup(node, http)
    bad = [
        {"type": 1, "mention": "carol"},
        {"type": 1, "mention": {"uids": "carol"}},
        {"type": 1, "mention": {"uids": ["a b"]}},
        {"type": 1, "mention": {"all": 2}},
        {"type": 1, "mention": {"uids": ["u"] * 1001}},
    ]
    async with online(node, tokens, "bob") as (bob,):
        for content in bad:
            ack = await bob.send("g1", GROUP, json.dumps(content).encode())
            assert ack.reason_code == ReasonCode.PAYLOAD_DECODE_ERROR, content
    assert await node.store.max_seq("g1", GROUP) == 0
    body = {"from_uid": "bob", "channel_id": "g1", "channel_type": GROUP, "payload": b64(bad[0])}
    r = await http.post("/message/send", json=body)
    assert (r.status_code, r.json()["code"], r.json()["reason"]) == (400, "send_refused", 9)


async def test_done_converges_on_every_device(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await setup(node, http)
    async with online(node, tokens, "bob") as (bob,):
        for n in range(3):
            await bob.send("g1", GROUP, mention(f"m{n}", ["carol"]))
    phone = RawClient(f"ws://127.0.0.1:{node.ws_port}", "carol", tokens["carol"], device_flag=0)
    await phone.connect()
    try:
        async with user_client(node, tokens["carol"]) as carol:
            before = await reminders(carol)
            assert len(before) == 3
            cursor = max(r["version"] for r in before)
            r = await carol.post(
                "/message/reminder/done", json={"ids": [before[0]["id"], before[2]["id"]]}
            )
            assert r.status_code == 200 and r.json() == {"status": 200}
            await next_cmd(phone, "syncReminders")
            changed = await reminders(carol, cursor)
            assert [(x["id"], x["done"]) for x in changed] == [
                (before[0]["id"], 1),
                (before[2]["id"], 1),
            ]
            held = {x["id"]: x for x in before} | {x["id"]: x for x in changed}
            fresh = {x["id"]: x for x in await reminders(carol)}
            assert held == fresh
            again = await carol.post("/message/reminder/done", json={"ids": [before[0]["id"]]})
            assert again.status_code == 200
            assert await reminders(carol, max(x["version"] for x in fresh.values())) == []
            page = await carol.post("/message/reminder/sync", json={"version": 0, "limit": 2})
            assert len(page.json()) == 2 and page.headers["x-magpie-more"] == "1"
    finally:
        await phone.close()


async def test_reminder_refusals_change_nothing(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await setup(node, http)
    async with online(node, tokens, "bob") as (bob,):
        await bob.send("g1", GROUP, mention("x", ["carol", "dave"]))
    async with user_client(node, tokens["carol"]) as carol:
        (mine,) = await reminders(carol)
    async with user_client(node, tokens["dave"]) as dave:
        (theirs,) = await reminders(dave)
        r = await dave.post("/message/reminder/done", json={"ids": [theirs["id"], mine["id"]]})
        assert r.status_code == 404 and "carol" not in r.text
        assert (await reminders(dave))[0]["done"] == 0, "nothing changed"
        assert (await dave.post("/message/reminder/done", json={"ids": []})).status_code == 400
        r = await dave.post("/message/reminder/sync", json={"uid": "carol"})
        assert r.status_code == 403
    r = await http.post("/message/reminder/sync", json={"version": 0})
    assert (r.status_code, r.json()["field"]) == (400, "uid")
    assert len((await http.post("/message/reminder/sync", json={"uid": "carol"})).json()) == 1


async def test_person_channel_mentions(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob")
    async with online(node, tokens, "alice", "bob") as (alice, bob):
        ack = await alice.send("bob", PERSON, mention("hey", ["bob"]))
        assert ack.reason_code == ReasonCode.SUCCESS
        got, _ = await next_cmd(bob, "syncReminders")
        assert got.packet.channel_id == "alice"
    async with user_client(node, tokens["bob"]) as c:
        (row,) = await reminders(c)
    assert (row["channel_id"], row["channel_type"], row["publisher"]) == ("alice", PERSON, "alice")

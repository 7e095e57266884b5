"""Unread counts and read positions kept on the server (``docs/conversation.md``, item 3b):
cleared with the user's own token, synced to every device of the user (the conversation sync
by version answers it, an ``unreadClear`` CMD tells the online ones)."""

from __future__ import annotations

from typing import Any

import httpx

from magpie.app import Node
from tests.api.conv_support import GROUP, PERSON, cmds, group, next_cmd, user_client, users
from tests.api.helpers import text
from tests.support.nodes import connect, settle

BOTH_STORES = True


async def send(http: httpx.AsyncClient, frm: str, channel: str, kind: int = GROUP) -> None:
    """A message that counts as unread (red dot)."""
    body = {"from_uid": frm, "channel_id": channel, "channel_type": kind, "payload": text("m")}
    r = await http.post("/message/send", json={**body, "header": {"red_dot": 1}})
    assert r.status_code == 200, r.text


async def conversations(c: httpx.AsyncClient, uid: str, version: int = 0) -> dict[str, Any]:
    r = await c.post("/conversation/sync", json={"uid": uid, "version": version})
    assert r.status_code == 200, r.text
    return {row["channel_id"]: row for row in r.json()}


async def clear(
    c: httpx.AsyncClient, channel: str, seq: int = 0, kind: int = GROUP, **kw: Any
) -> httpx.Response:
    body = {"channel_id": channel, "channel_type": kind, "message_seq": seq, **kw}
    return await c.post("/conversations/clearUnread", json=body)


async def test_clearing_reaches_every_device_of_the_user(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "bob")
    await group(node, "g1", "alice", "bob")
    for _ in range(3):
        await send(http, "alice", "g1")
    phone = await connect(node, "bob", tokens["bob"], device_flag=0)
    laptop = await connect(node, "bob", tokens["bob"], device_flag=2)
    alice = await connect(node, "alice", tokens["alice"])
    try:
        async with user_client(node, tokens["bob"]) as bob:
            before = (await conversations(bob, "bob"))["g1"]
            assert (before["unread"], before["readed_to_msg_seq"]) == (3, 0)
            r = await clear(bob, "g1", 2)
            assert r.status_code == 200, r.text
            row = r.json()["data"]
            assert (row["unread"], row["readed_to_msg_seq"], row["last_msg_seq"]) == (1, 2, 3)
            assert row["version"] > before["version"]
            for device in (phone, laptop):
                _, cmd = await next_cmd(device, "unreadClear")
                assert cmd["param"] == {
                    "channel_id": "g1",
                    "channel_type": GROUP,
                    "unread": 1,
                    "readed_to_msg_seq": 2,
                    "version": row["version"],
                }
            changed = await conversations(bob, "bob", before["version"])
            assert changed["g1"]["unread"] == 1, "a sync by version from another device sees it"
            again = await clear(bob, "g1", 1)
            assert again.json()["data"]["readed_to_msg_seq"] == 2, "never back"
            await settle(0.2)
            assert cmds(phone, "unreadClear") == [], "nothing changed, nothing sent"
            assert cmds(alice, "unreadClear") == [], "another user hears nothing"
            assert (await conversations(bob, "bob", row["version"])) == {}
            done = (await clear(bob, "g1")).json()["data"]
            assert (done["unread"], done["readed_to_msg_seq"]) == (0, 3)
    finally:
        for c in (phone, laptop, alice):
            await c.close()


async def test_a_fresh_browser_sees_the_servers_unread(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob")
    for _ in range(2):
        await send(http, "alice", "bob", PERSON)
    async with user_client(node, tokens["bob"]) as bob:
        assert (await conversations(bob, "bob"))["alice"]["unread"] == 2
        assert (await clear(bob, "alice", kind=PERSON)).status_code == 200
        fresh = await conversations(bob, "bob")
    assert (fresh["alice"]["unread"], fresh["alice"]["readed_to_msg_seq"]) == (0, 2)
    async with user_client(node, tokens["alice"]) as alice:
        assert (await conversations(alice, "alice"))["bob"]["readed_to_msg_seq"] == 0


async def test_conversation_extras_carry_the_read_position(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "bob")
    await group(node, "g1", "alice", "bob")
    await group(node, "g2", "alice", "bob")
    await send(http, "alice", "g1")
    await send(http, "alice", "g2")
    async with user_client(node, tokens["bob"]) as bob:
        first = (await bob.post("/conversation/extra/sync", json={"version": 0})).json()
        assert [(x["channel_id"], x["browse_to"]) for x in first] == [("g1", 0), ("g2", 0)]
        top = max(x["version"] for x in first)
        await clear(bob, "g1")
        later = (await bob.post("/conversation/extra/sync", json={"version": top})).json()
    assert [(x["channel_id"], x["browse_to"], x["draft"]) for x in later] == [("g1", 1, "")]


async def test_refusals(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob", "eve")
    await group(node, "g1", "alice", "bob")
    await send(http, "alice", "g1")
    async with user_client(node, tokens["eve"]) as eve:
        r = await clear(eve, "g1")
        assert r.status_code == 404 and "unread" not in r.text, "eve has no such conversation"
        r = await clear(eve, "g1", uid="bob")
        assert r.status_code == 403, "a token of eve cannot act for bob"
    r = await clear(http, "g1")
    assert (r.status_code, r.json()["field"]) == (400, "uid")
    r = await clear(http, "g1", uid="bob")
    assert r.status_code == 200, "the business key acting for bob"
    async with user_client(node, tokens["bob"]) as bob:
        assert (await clear(bob, "g1", -1)).status_code == 400
        assert (await clear(bob, "a b", kind=PERSON)).status_code == 400
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.api_port}") as anon:
        assert (await clear(anon, "g1")).status_code == 401

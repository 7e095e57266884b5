"""Replies (``docs/conversation.md``, item 1): the quoted message is checked at send (same
channel, its seq and sender, not revoked), the preview is the server's, served copies show the
original's revoke and edit, and the thread view lists a message's replies."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from magpie.app import Node
from magpie.protocol.packets import ReasonCode
from tests.api.conv_support import GROUP, PERSON, group, online, user_client, users
from tests.api.helpers import b64

BOTH_STORES = True


def reply(text: str, mid: int | str, seq: int = 0, frm: str = "", preview: Any = None) -> bytes:
    quote: dict[str, Any] = {"message_id": str(mid), "message_seq": seq, "from_uid": frm}
    quote["from_name"] = "Alice"
    if preview is not None:
        quote["payload"] = preview
    return json.dumps({"type": 1, "content": text, "reply": quote}).encode()


async def send(
    http: httpx.AsyncClient, frm: str, channel: str, payload: bytes, kind: int = GROUP
) -> httpx.Response:
    body = {"from_uid": frm, "channel_id": channel, "channel_type": kind, "payload": b64(payload)}
    return await http.post("/message/send", json=body)


async def page(
    c: httpx.AsyncClient, channel: str = "g1", kind: int = GROUP
) -> list[dict[str, Any]]:
    r = await c.post(
        "/channel/messagesync",
        json={"channel_id": channel, "channel_type": kind, "login_uid": "bob"},
    )
    assert r.status_code == 200, r.text
    return list(r.json()["messages"])


def content(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(base64.b64decode(m["payload"]))
    return out


async def test_the_preview_is_the_servers(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob")
    await group(node, "g1", "alice", "bob")
    original = await send(
        http,
        "alice",
        "g1",
        json.dumps({"type": 1, "content": "lunch at 12?", "mention": {"uids": ["bob"]}}).encode(),
    )
    mid, seq = original.json()["data"]["message_id"], original.json()["data"]["message_seq"]
    async with online(node, tokens, "alice", "bob") as (alice, bob):
        forged = {"type": 1, "content": "I owe bob 1000 euros"}
        ack = await bob.send("g1", GROUP, reply("yes", mid, seq, "alice", forged))
        assert ack.reason_code == ReasonCode.SUCCESS
        got = await alice.messages.get()
    shown = json.loads(got.payload)["reply"]
    assert shown == {
        "message_id": str(mid),
        "message_seq": seq,
        "from_uid": "alice",
        "from_name": "Alice",
        "payload": {"type": 1, "content": "lunch at 12?"},
    }, "the live copy carries the server's preview, without the original's mention"
    async with user_client(node, tokens["bob"]) as c:
        stored = content((await page(c))[-1])
    assert stored["reply"] == shown and stored["content"] == "yes"


async def test_bad_quotes_are_refused(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob")
    await group(node, "g1", "alice", "bob")
    await group(node, "g2", "alice", "bob")
    r = await send(http, "alice", "g1", json.dumps({"type": 1, "content": "x"}).encode())
    mid, seq = r.json()["data"]["message_id"], r.json()["data"]["message_seq"]
    other = (
        await send(http, "alice", "g2", json.dumps({"type": 1, "content": "y"}).encode())
    ).json()["data"]["message_id"]
    revoked = (
        await send(http, "alice", "g1", json.dumps({"type": 1, "content": "z"}).encode())
    ).json()["data"]["message_id"]
    await http.post("/message/revoke", json={"message_id": revoked, "revoker": "alice"})
    bad = [
        reply("a", other),  # another channel
        reply("b", mid, seq + 5),  # a wrong seq
        reply("c", mid, seq, "bob"),  # a wrong sender
        reply("d", 123456789),  # nothing
        reply("e", revoked),  # revoked
        json.dumps({"type": 1, "reply": "x"}).encode(),
        json.dumps({"type": 1, "reply": {"message_id": "12a"}}).encode(),
        json.dumps({"type": 1, "reply": {"message_id": mid, "message_seq": -1}}).encode(),
    ]
    async with online(node, tokens, "bob") as (bob,):
        for payload in bad:
            ack = await bob.send("g1", GROUP, payload)
            assert ack.reason_code == ReasonCode.PAYLOAD_DECODE_ERROR, payload
    assert await node.store.max_seq("g1", GROUP) == 2, "nothing more stored"
    r = await send(http, "bob", "g1", bad[0])
    assert (r.status_code, r.json()["reason"]) == (400, 9)


async def test_served_replies_follow_the_originals_revoke_and_edit(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "bob")
    await group(node, "g1", "alice", "bob")
    first = (
        await send(http, "alice", "g1", json.dumps({"type": 1, "content": "v1"}).encode())
    ).json()["data"]
    second = (
        await send(http, "alice", "g1", json.dumps({"type": 1, "content": "w"}).encode())
    ).json()["data"]
    for target in (first, second):
        r = await send(http, "bob", "g1", reply("re", target["message_id"]))
        assert r.status_code == 200, r.text
    async with user_client(node, tokens["alice"]) as alice:
        edit = {"message_id": first["message_id"], "content_edit": {"type": 1, "content": "v2"}}
        assert (await alice.post("/message/edit", json=edit)).status_code == 200
        assert (
            await alice.post("/message/revoke", json={"message_id": second["message_id"]})
        ).status_code == 200
    async with user_client(node, tokens["bob"]) as bob:
        messages = await page(bob)
        threads = {}
        for target in (first, second):
            body = {
                "channel_id": "g1",
                "channel_type": GROUP,
                "message_id": str(target["message_id"]),
            }
            r = await bob.post("/message/replies", json=body)
            assert r.status_code == 200, r.text
            threads[target["message_id"]] = r.json()["data"]
    edited, revoked = content(messages[2])["reply"], content(messages[3])["reply"]
    assert edited["payload"] == {"type": 1, "content": "v2"} and "revoke" not in edited
    assert revoked["revoke"] == 1 and "payload" not in revoked
    assert [content(m)["reply"] for m in threads[first["message_id"]]["messages"]] == [edited]
    assert [content(m)["reply"] for m in threads[second["message_id"]]["messages"]] == [revoked]
    assert threads[first["message_id"]]["more"] == 0


async def test_the_thread_view_pages_and_refuses_outsiders(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "bob", "eve")
    await group(node, "g1", "alice", "bob")
    await group(node, "g2", "alice", "eve")
    root = (
        await send(http, "alice", "g1", json.dumps({"type": 1, "content": "q"}).encode())
    ).json()["data"]["message_id"]
    for n in range(3):
        await send(http, "bob", "g1", reply(f"a{n}", root))
    async with user_client(node, tokens["bob"]) as bob:
        body = {"channel_id": "g1", "channel_type": GROUP, "message_id": root, "limit": 2}
        first = (await bob.post("/message/replies", json=body)).json()["data"]
        assert [content(m)["content"] for m in first["messages"]] == ["a0", "a1"] and first[
            "more"
        ] == 1
        last_seq = first["messages"][-1]["message_seq"]
        rest = (await bob.post("/message/replies", json={**body, "after_seq": last_seq})).json()[
            "data"
        ]
        assert [content(m)["content"] for m in rest["messages"]] == ["a2"] and rest["more"] == 0
        wrong = await bob.post("/message/replies", json={**body, "message_id": 99999})
        assert wrong.status_code == 404
    async with user_client(node, tokens["eve"]) as eve:
        r = await eve.post(
            "/message/replies", json={"channel_id": "g1", "channel_type": GROUP, "message_id": root}
        )
        assert r.status_code == 403 and "a0" not in r.text
        r = await eve.post(
            "/message/replies", json={"channel_id": "g2", "channel_type": GROUP, "message_id": root}
        )
        assert r.status_code == 404


async def test_person_channel_replies(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob")
    r = await send(http, "alice", "bob", json.dumps({"type": 1, "content": "hi"}).encode(), PERSON)
    mid = r.json()["data"]["message_id"]
    async with online(node, tokens, "alice", "bob") as (alice, bob):
        ack = await bob.send("alice", PERSON, reply("hey", mid))
        assert ack.reason_code == ReasonCode.SUCCESS
        got = await alice.messages.get()
    assert json.loads(got.payload)["reply"]["payload"] == {"type": 1, "content": "hi"}

"""Search (``docs/conversation.md``, item 8): the caller's readable messages by text, word
prefixes, newest first, paginated; revoked messages never match, edited ones by their edit;
outsiders find nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from magpie.app import Node
from tests.api.conv_support import GROUP, PERSON, group, user_client, users
from tests.api.helpers import text

BOTH_STORES = True


async def say(
    http: httpx.AsyncClient, frm: str, channel: str, words: str, kind: int = GROUP
) -> int:
    body = {"from_uid": frm, "channel_id": channel, "channel_type": kind, "payload": text(words)}
    r = await http.post("/message/send", json=body)
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["message_id"])


async def search(c: httpx.AsyncClient, keyword: str, **kw: Any) -> httpx.Response:
    return await c.post("/message/search", json={"keyword": keyword, **kw})


def contents(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [
        json.loads(base64.b64decode(m["payload"]))["content"] for m in r.json()["data"]["messages"]
    ]


async def test_search_pages_through_readable_messages(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob", "eve")
    await group(node, "g1", "alice", "bob")
    await group(node, "g2", "eve")
    for n in range(5):
        await say(http, "alice", "g1", f"budget draft {n}")
    await say(http, "eve", "g2", "budget of eve")
    await say(http, "alice", "bob", "budget between us", PERSON)
    async with user_client(node, tokens["bob"]) as bob:
        first = await search(bob, "BUDG dra", limit=2)
        assert contents(first) == ["budget draft 4", "budget draft 3"]
        data = first.json()["data"]
        assert data["more"] == 1 and data["messages"][0]["channel_id"] == "g1"
        rest = await search(bob, "budg dra", limit=10, before_message_id=data["next"])
        assert contents(rest) == ["budget draft 2", "budget draft 1", "budget draft 0"]
        assert rest.json()["data"]["more"] == 0 and rest.json()["data"]["next"] == ""
        everything = contents(await search(bob, "budget", limit=100))
        assert "budget between us" in everything and "budget of eve" not in everything
        mine = await search(bob, "budget", channel_id="alice", channel_type=PERSON)
        assert contents(mine) == ["budget between us"]
        r = await search(bob, "budget", channel_id="g2", channel_type=GROUP)
        assert r.status_code == 403 and "eve" not in r.text
    async with user_client(node, tokens["eve"]) as eve:
        assert contents(await search(eve, "draft")) == []


async def test_revoked_and_edited_messages(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice")
    await group(node, "g1", "alice")
    gone = await say(http, "alice", "g1", "password is hunter2")
    fixed = await say(http, "alice", "g1", "meet at nine")
    async with user_client(node, tokens["alice"]) as alice:
        assert (await alice.post("/message/revoke", json={"message_id": gone})).status_code == 200
        edit = {"message_id": fixed, "content_edit": {"type": 1, "content": "meet at ten"}}
        assert (await alice.post("/message/edit", json=edit)).status_code == 200
        assert contents(await search(alice, "hunter2")) == []
        assert contents(await search(alice, "nine")) == []
        found = (await search(alice, "ten")).json()["data"]["messages"]
        assert [m["message_id"] for m in found] == [fixed]
        assert found[0]["message_extra"]["content_edit"] == {"type": 1, "content": "meet at ten"}


async def test_bad_searches(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice")
    async with user_client(node, tokens["alice"]) as alice:
        for body in (
            {"keyword": "   !!! "},
            {"keyword": ""},
            {"keyword": "x", "limit": 0},
            {"keyword": "x" * 300},
        ):
            r = await alice.post("/message/search", json=body)
            assert r.status_code in (400, 413) and r.json()["code"] in (
                "bad_request",
                "too_large",
            ), body
        r = await search(alice, "x", channel_id="g1")
        assert (r.status_code, r.json()["field"]) == (400, "channel_id")
        r = await search(alice, '" OR 1=1 -- NEAR(a b) *')
        assert r.status_code == 200, "every word is quoted: no query syntax gets through"
    r = await search(http, "x")
    assert (r.status_code, r.json()["field"]) == (400, "login_uid")

"""Reactions (``docs/conversation.md``, item 2): per (user, emoji), idempotent, a per-channel
seq, incremental sync, a CMD after commit, counts and who reacted, the distinct-emoji limit;
outsiders get nothing and bad input changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.app import Node
from magpie.domain.reactions import Reaction, ReactionKey, apply_reaction
from tests.api.conv_support import (
    GROUP,
    PERSON,
    cmds,
    group,
    next_cmd,
    online,
    user_client,
    users,
)
from tests.api.ext_support import send
from tests.support.nodes import api, running_node, settle

BOTH_STORES = True


async def react(
    c: httpx.AsyncClient, mid: int, emoji: str, action: str = "add", channel: str = "g1", **kw: Any
) -> httpx.Response:
    body = {"channel_id": channel, "channel_type": GROUP, "message_id": str(mid), "emoji": emoji}
    return await c.post("/reactions", json={**body, "action": action, **kw})


async def sync(
    c: httpx.AsyncClient, seq: int, limit: int = 100, channel: str = "g1", kind: int = GROUP
) -> httpx.Response:
    body = {"channel_id": channel, "channel_type": kind, "seq": seq, "limit": limit}
    return await c.post("/reaction/sync", json=body)


def held(
    rows: list[dict[str, Any]], state: dict[ReactionKey, Reaction] | None = None
) -> dict[ReactionKey, Reaction]:
    out = dict(state or {})
    for row in rows:
        out = apply_reaction(out, Reaction.from_json(row))
    return out


async def test_add_remove_idempotent_and_live(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob", "eve")
    await group(node, "g1", "alice", "bob")
    mid = await send(http, "alice", "g1")
    async with (
        online(node, tokens, "alice", "eve") as (alice, eve),
        user_client(node, tokens["bob"]) as bob,
    ):
        r = await react(bob, mid, "👍")
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["changed"] is True and data["seq"] == 1
        assert data["row"] == {
            "message_id": mid,
            "message_id_str": str(mid),
            "channel_id": "g1",
            "channel_type": GROUP,
            "seq": 1,
            "uid": "bob",
            "emoji": "👍",
            "is_deleted": 0,
            "created_at": data["row"]["created_at"],
        }
        assert data["reactions"] == [{"emoji": "👍", "count": 1, "users": ["bob"], "seq": 1}]
        _, cmd = await next_cmd(alice, "syncMessageReaction")
        assert cmd["param"] == {"channel_id": "g1", "channel_type": GROUP, "seq": 1}
        again = (await react(bob, mid, "👍")).json()["data"]
        assert again["changed"] is False and again["seq"] == 1, "a repeat changes nothing"
        await settle(0.2)
        assert cmds(alice, "syncMessageReaction") == [], "and sends no CMD"
        assert cmds(eve, "syncMessageReaction") == [], "an outsider hears nothing"
        gone = (await react(bob, mid, "👍", "remove")).json()["data"]
        assert gone["changed"] is True and gone["seq"] == 2 and gone["reactions"] == []
        assert gone["row"]["is_deleted"] == 1
        _, cmd = await next_cmd(alice, "syncMessageReaction")
        assert cmd["param"]["seq"] == 2
        gone_again = (await react(bob, mid, "👍", "remove")).json()["data"]
        assert gone_again["changed"] is False


async def test_counts_who_reacted_and_messagesync_summaries(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "bob", "carol")
    await group(node, "g1", "alice", "bob", "carol")
    m1, m2 = await send(http, "alice", "g1"), await send(http, "alice", "g1")
    for uid, mid, emoji in [
        ("bob", m1, "👍"),
        ("carol", m1, "👍"),
        ("carol", m1, "🎉"),
        ("bob", m2, "x"),
    ]:
        async with user_client(node, tokens[uid]) as c:
            assert (await react(c, mid, emoji)).status_code == 200
    body = {"login_uid": "alice", "channel_id": "g1", "channel_type": GROUP}
    page = (await http.post("/channel/messagesync", json=body)).json()["messages"]
    by_id = {m["message_id"]: m["reactions"] for m in page}
    assert by_id[m1] == [
        {"emoji": "👍", "count": 2, "users": ["bob", "carol"], "seq": 2},
        {"emoji": "🎉", "count": 1, "users": ["carol"], "seq": 3},
    ]
    assert by_id[m2] == [{"emoji": "x", "count": 1, "users": ["bob"], "seq": 4}]


async def test_incremental_sync_converges_with_a_fresh_full_sync(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "bob")
    await group(node, "g1", "alice", "bob")
    mids = [await send(http, "alice", "g1") for _ in range(3)]
    async with user_client(node, tokens["bob"]) as bob, user_client(node, tokens["alice"]) as alice:
        for n, mid in enumerate(mids):
            await react(bob, mid, f"e{n}")
        before = held((await sync(alice, 0)).json())
        cursor = max(r.seq for r in before.values())
        await react(bob, mids[0], "e0", "remove")
        await react(alice, mids[1], "e1")
        await react(alice, mids[2], "new")
        await react(bob, mids[2], "e2", "remove")
        await react(bob, mids[2], "e2")
        state, pages = before, 0
        while True:  # pages of 2 from the cursor
            r = await sync(alice, cursor, limit=2)
            rows = r.json()
            state, pages = held(rows, state), pages + 1
            if r.headers["x-magpie-more"] == "0":
                break
            cursor = rows[-1]["seq"]
        fresh = held((await sync(alice, 0, limit=1000)).json())
    # five changes, four rows (bob's e2 was removed and added again: one row, the newest seq)
    assert pages == 2 and state == fresh
    live = {(k[0], k[1], k[2]) for k, r in fresh.items() if not r.deleted}
    assert live == {
        (mids[1], "bob", "e1"),
        (mids[1], "alice", "e1"),
        (mids[2], "alice", "new"),
        (mids[2], "bob", "e2"),
    }


async def test_person_channels_show_the_peer(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob")
    mid = await send(http, "alice", "bob", PERSON)
    async with user_client(node, tokens["bob"]) as bob:
        r = await react(bob, mid, "👍", channel="alice", channel_type=PERSON)
        assert r.status_code == 200 and r.json()["data"]["row"]["channel_id"] == "alice"
    async with user_client(node, tokens["alice"]) as alice:
        rows = (await sync(alice, 0, channel="bob", kind=PERSON)).json()
    assert [(x["channel_id"], x["uid"]) for x in rows] == [("bob", "bob")]


@pytest.mark.parametrize(
    ("emoji", "field"),
    [
        ("", "emoji"),
        ("a b", "emoji"),
        ("x" * 33, "emoji"),
        ("\u0007", "emoji"),
        ("a\u200bb", "emoji"),
    ],
)
async def test_bad_emoji_change_nothing(
    node: Node, http: httpx.AsyncClient, emoji: str, field: str
) -> None:
    tokens = await users(node, "bob")
    await group(node, "g1", "bob")
    mid = await send(http, "bob", "g1")
    async with user_client(node, tokens["bob"]) as bob:
        r = await react(bob, mid, emoji)
        assert (r.status_code, r.json()["field"]) == (400, field), r.text
        assert (await sync(bob, 0)).json() == []


async def test_refusals_give_no_data_and_change_nothing(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "eve")
    await group(node, "g1", "alice")
    await group(node, "g2", "alice", "eve")
    mid = await send(http, "alice", "g1")
    other = await send(http, "alice", "g2")
    async with user_client(node, tokens["eve"]) as eve:
        r = await react(eve, mid, "👍")
        assert r.status_code == 403 and "alice" not in r.text
        r = await react(eve, mid, "👍", channel="g2")
        assert r.status_code == 404, "a message of another channel is not there"
        r = await sync(eve, 0)
        assert r.status_code == 403 and r.text.count("seq") == 0
    async with user_client(node, tokens["alice"]) as alice:
        assert (await react(alice, 987654321, "👍")).status_code == 404
        assert (await react(alice, mid, "👍", action="toggle")).status_code == 400
        assert (await react(alice, other, "👍", channel="g1")).status_code == 404
        assert (await sync(alice, 0)).json() == []
    async with api(node) as biz:
        r = await react(biz, mid, "👍")
        assert (r.status_code, r.json()["field"]) == (400, "login_uid")
        ok = await react(biz, mid, "👍", login_uid="alice")
        assert ok.status_code == 200 and ok.json()["data"]["row"]["uid"] == "alice"


async def test_a_revoked_message_takes_no_reactions(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice")
    await group(node, "g1", "alice")
    mid = await send(http, "alice", "g1")
    await http.post("/message/revoke", json={"message_id": mid, "revoker": "alice"})
    async with user_client(node, tokens["alice"]) as alice:
        r = await react(alice, mid, "👍")
        assert (r.status_code, r.json()["code"], r.json()["rejection"]) == (
            400,
            "invalid",
            "revoked",
        )
        assert (await sync(alice, 0)).json() == []


@pytest.fixture
async def few(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path, reaction_max_emoji=2) as n:
        yield n


async def test_the_distinct_emoji_limit_at_n_and_n_plus_1(few: Node) -> None:
    tokens = await users(few, "alice", "bob")
    await group(few, "g1", "alice", "bob")
    async with api(few) as http:
        mid = await send(http, "alice", "g1")
    async with user_client(few, tokens["alice"]) as alice, user_client(few, tokens["bob"]) as bob:
        assert (await react(alice, mid, "a")).status_code == 200
        assert (await react(alice, mid, "b")).status_code == 200  # N = 2
        r = await react(bob, mid, "c")  # N + 1
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (
            400,
            "too_many_emoji",
            "emoji",
        )
        assert (await react(bob, mid, "b")).status_code == 200, "an emoji already there"
        assert len((await sync(bob, 0)).json()) == 3


async def test_a_storm_of_reactions_is_applied_exactly(node: Node, http: httpx.AsyncClient) -> None:
    uids = [f"u{n}" for n in range(30)]
    tokens = await users(node, *uids)
    await group(node, "g1", *uids)
    mid = await send(http, "u0", "g1")

    async def one(uid: str) -> None:
        async with user_client(node, tokens[uid]) as c:
            for _ in range(2):  # each twice: the second changes nothing
                assert (await react(c, mid, "🔥")).status_code == 200

    await asyncio.gather(*(one(u) for u in uids))
    async with user_client(node, tokens["u0"]) as c:
        rows = (await sync(c, 0, limit=1000)).json()
    assert sorted(r["seq"] for r in rows) == list(range(1, 31))
    assert sorted(r["uid"] for r in rows) == sorted(uids)

"""Typing notices (``docs/conversation.md``, *Typing*): an online-only CMD to the channel's
other members, rate-limited per user and channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from magpie.app import Node
from magpie.protocol.packets import Flags
from tests.api.conv_support import GROUP, PERSON, cmds, group, next_cmd, online, user_client, users
from tests.support.nodes import api, running_node, settle

INTERVAL_MS = 400


@pytest.fixture
async def tnode(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(
        tmp_path, typing_min_interval_ms=INTERVAL_MS, typing_expire_ms=3000
    ) as n:
        yield n


async def test_typing_reaches_the_other_online_members_only(tnode: Node) -> None:
    tokens = await users(tnode, "alice", "bob", "carol", "eve")
    await group(tnode, "g1", "alice", "bob", "carol")
    async with online(tnode, tokens, "alice", "bob", "eve") as (alice, bob, eve):
        async with user_client(tnode, tokens["alice"]) as http:
            r = await http.post("/message/typing", json={"channel_id": "g1", "channel_type": GROUP})
        assert r.status_code == 200 and r.json() == {"status": 200}
        got, payload = await next_cmd(bob, "typing")
        assert payload["param"] == {
            "from_uid": "alice",
            "channel_id": "g1",
            "channel_type": GROUP,
            "expires_in_ms": 3000,
        }
        flags = got.packet.flags
        assert flags & Flags.NO_PERSIST and flags & Flags.SYNC_ONCE and not flags & Flags.RED_DOT
        await settle(0.2)
        assert cmds(alice, "typing") == [], "the typist hears nothing"
        assert cmds(eve, "typing") == [], "an outsider hears nothing"
    async with api(tnode) as biz:
        queued = await biz.post("/message/sync", json={"uid": "carol"})
    assert queued.json() == [], "online only: nothing queued for the offline member"


async def test_typing_in_a_person_channel_names_the_typist(tnode: Node) -> None:
    tokens = await users(tnode, "alice", "bob")
    async with online(tnode, tokens, "bob") as (bob,):
        async with user_client(tnode, tokens["alice"]) as http:
            r = await http.post(
                "/message/typing", json={"channel_id": "bob", "channel_type": PERSON}
            )
        assert r.status_code == 200
        got, payload = await next_cmd(bob, "typing")
        assert payload["param"]["channel_id"] == "alice" and got.packet.channel_id == "alice"


async def test_typing_is_rate_limited_per_user_and_channel(tnode: Node) -> None:
    tokens = await users(tnode, "alice", "bob")
    await group(tnode, "g1", "alice", "bob")
    await group(tnode, "g2", "alice", "bob")
    async with online(tnode, tokens, "bob") as (bob,), user_client(tnode, tokens["alice"]) as http:
        body = {"channel_id": "g1", "channel_type": GROUP}
        assert (await http.post("/message/typing", json=body)).status_code == 200
        r = await http.post("/message/typing", json=body)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert r.headers["retry-after"] == "1"
        other = {"channel_id": "g2", "channel_type": GROUP}
        assert (await http.post("/message/typing", json=other)).status_code == 200
        await settle(INTERVAL_MS / 1000 + 0.1)
        assert (await http.post("/message/typing", json=body)).status_code == 200
        await settle(0.2)
        got = cmds(bob, "typing")
        assert [p["param"]["channel_id"] for p in got] == ["g1", "g2", "g1"]


async def test_typing_refusals(tnode: Node) -> None:
    tokens = await users(tnode, "alice", "eve")
    await group(tnode, "g1", "alice")
    async with user_client(tnode, tokens["eve"]) as eve:
        r = await eve.post("/message/typing", json={"channel_id": "g1", "channel_type": GROUP})
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        r = await eve.post("/message/typing", json={"channel_id": "g1"})
        assert r.status_code == 400 and r.json()["field"] == "channel_type"
        r = await eve.post(
            "/message/typing", json={"login_uid": "alice", "channel_id": "g1", "channel_type": 2}
        )
        assert r.status_code == 403
    async with api(tnode) as biz:
        r = await biz.post("/message/typing", json={"channel_id": "g1", "channel_type": GROUP})
        assert r.status_code == 400 and r.json()["field"] == "login_uid"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{tnode.api_port}") as anon:
        r = await anon.post("/message/typing", json={"channel_id": "g1", "channel_type": GROUP})
        assert r.status_code == 401

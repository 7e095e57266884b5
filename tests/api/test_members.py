"""Member roles and the member list (``docs/conversation.md``, *Roles*)."""

from __future__ import annotations

import httpx
import pytest

from magpie.app import Node
from tests.api.conv_support import GROUP, PERSON, group, online, state, user_client, users

BOTH_STORES = True


async def test_roles_are_set_by_the_business_key_and_listed_to_members(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "bob", "carol", "eve")
    await group(node, "g1", "alice", "bob", "carol")
    r = await http.post(
        "/channel/subscriber_role",
        json={"channel_id": "g1", "channel_type": GROUP, "uids": ["alice"], "role": 1},
    )
    assert r.status_code == 200 and r.json() == {"status": 200, "data": {"changed": 1}}
    await http.post(
        "/channel/subscriber_role",
        json={"channel_id": "g1", "channel_type": GROUP, "uids": ["bob"], "role": 2},
    )
    async with user_client(node, tokens["carol"]) as carol:
        r = await carol.post("/channel/members", json={"channel_id": "g1", "channel_type": GROUP})
    assert r.status_code == 200
    assert r.json() == [
        {"uid": "alice", "role": 1, "channel_id": "g1", "channel_type": GROUP},
        {"uid": "bob", "role": 2, "channel_id": "g1", "channel_type": GROUP},
        {"uid": "carol", "role": 0, "channel_id": "g1", "channel_type": GROUP},
    ]
    async with user_client(node, tokens["eve"]) as eve:
        r = await eve.post("/channel/members", json={"channel_id": "g1", "channel_type": GROUP})
    assert r.status_code == 403 and "uid" not in r.text


async def test_person_channel_members_are_the_two_parties(node: Node) -> None:
    tokens = await users(node, "alice", "bob")
    async with user_client(node, tokens["alice"]) as alice:
        r = await alice.post("/channel/members", json={"channel_id": "bob", "channel_type": PERSON})
    assert r.status_code == 200
    assert [m["uid"] for m in r.json()] == ["alice", "bob"]
    assert {m["channel_id"] for m in r.json()} == {"bob"}


@pytest.mark.parametrize(
    "body",
    [
        {"channel_id": "g1", "channel_type": GROUP, "uids": ["alice", "erin"], "role": 2},
        {"channel_id": "g1", "channel_type": GROUP, "uids": ["alice"], "role": 3},
        {"channel_id": "g1", "channel_type": GROUP, "uids": [], "role": 2},
        {"channel_id": "alice", "channel_type": PERSON, "uids": ["alice"], "role": 2},
        {"channel_id": "g1", "channel_type": GROUP, "uids": ["a b"], "role": 2},
    ],
)
async def test_bad_role_requests_change_nothing(
    node: Node, http: httpx.AsyncClient, body: dict[str, object]
) -> None:
    await users(node, "alice")
    await group(node, "g1", "alice", "bob")
    before = await http.post("/channel/members", json={"login_uid": "alice", **body})
    r = await http.post("/channel/subscriber_role", json=body)
    assert r.status_code in (400, 404), r.text
    assert r.json()["code"] in ("bad_request", "not_found")
    after = await http.post("/channel/members", json={"login_uid": "alice", **body})
    assert before.json() == after.json()


async def test_a_user_token_cannot_set_roles(node: Node) -> None:
    tokens = await users(node, "alice")
    await group(node, "g1", "alice")
    async with user_client(node, tokens["alice"]) as alice:
        r = await alice.post(
            "/channel/subscriber_role",
            json={"channel_id": "g1", "channel_type": GROUP, "uids": ["alice"], "role": 1},
        )
    assert r.status_code == 401
    if node.settings.sqlite_path is not None:
        assert tuple(state(node, "subscribers")["subscribers"]) == (("g1", GROUP, "alice", 0),)


async def test_online_lists_members_with_their_connected_devices(node: Node) -> None:
    tokens = await users(node, "alice", "bob", "carol", "eve")
    await group(node, "g1", "alice", "bob", "carol")
    body = {"channel_id": "g1", "channel_type": GROUP}
    async with user_client(node, tokens["alice"]) as alice:
        r = await alice.post("/channel/online", json=body)
        assert r.status_code == 200, r.text
        assert [m["online"] for m in r.json()] == [0, 0, 0]
        async with online(node, tokens, "bob"):
            r = await alice.post("/channel/online", json=body)
            assert r.json()[1] == {"uid": "bob", "online": 1, "device_flags": [1]}
            assert [m["online"] for m in r.json()] == [0, 1, 0]
            r = await alice.post("/channel/online", json={"channel_id": "bob", "channel_type": 1})
            assert [(m["uid"], m["online"]) for m in r.json()] == [("alice", 0), ("bob", 1)]
        r = await alice.post("/channel/online", json=body)
        assert [m["online"] for m in r.json()] == [0, 0, 0]
    async with user_client(node, tokens["eve"]) as eve:
        r = await eve.post("/channel/online", json=body)
    assert r.status_code == 403 and "bob" not in r.text


@pytest.mark.parametrize(
    "body",
    [
        {"channel_type": GROUP},
        {"channel_id": "g1", "channel_type": "two"},
        {"channel_id": "g 1", "channel_type": GROUP},
        {"login_uid": "a b", "channel_id": "g1", "channel_type": GROUP},
    ],
)
async def test_online_refuses_bad_input(node: Node, body: dict[str, object]) -> None:
    tokens = await users(node, "alice")
    await group(node, "g1", "alice")
    async with user_client(node, tokens["alice"]) as alice:
        r = await alice.post("/channel/online", json=body)
    assert r.status_code == 400 and r.json()["code"] == "bad_request", r.text

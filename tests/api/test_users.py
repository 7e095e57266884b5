"""``/user/*`` and ``/route``, and who may call what (business key vs user token)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from magpie.app import Node
from magpie.core.auth import token_matches
from magpie.protocol.packets import Disconnect, ReasonCode
from tests.api.helpers import as_user, db_dump
from tests.support.nodes import API_KEY, add_user, connect, settle, time_scale

T = 5 * time_scale()


async def test_user_token_stores_only_a_digest(node: Node, http: httpx.AsyncClient) -> None:
    body = {"uid": "alice", "token": "secret-1", "device_flag": 1, "device_level": 0}
    r = await http.post("/user/token", json=body)
    assert (r.status_code, r.json()) == (200, {"status": 200})
    row = await node.store.get_token("alice", 1)
    assert row is not None and row.device_level == 0 and token_matches("secret-1", row.token_hash)
    assert b"secret-1" not in repr(db_dump(node)).encode()


async def test_token_header_works_like_bearer(node: Node, anon: httpx.AsyncClient) -> None:
    body = {"uid": "alice", "token": "t"}
    r = await anon.post("/user/token", json=body, headers={"token": API_KEY})
    assert r.status_code == 200
    assert await node.store.get_token("alice", 0) is not None  # device_flag defaults to 0


async def test_master_token_kicks_same_flag_connections(
    node: Node, http: httpx.AsyncClient
) -> None:
    token = await add_user(node, "alice", level=1)
    old = await connect(node, "alice", token, device_flag=1)
    other_flag = await connect(node, "alice", token, device_flag=0)
    body = {"uid": "alice", "token": "new", "device_flag": 1, "device_level": 1}
    assert (await http.post("/user/token", json=body)).status_code == 200
    kicked = await asyncio.wait_for(old.packets.get(), T)
    assert isinstance(kicked, Disconnect) and kicked.reason_code == ReasonCode.CONNECT_KICK
    await asyncio.wait_for(old.closed.wait(), T)
    assert other_flag.packets.empty() and not other_flag.closed.is_set()
    await other_flag.close()


async def test_slave_token_kicks_nobody(node: Node, http: httpx.AsyncClient) -> None:
    token = await add_user(node, "alice")
    client = await connect(node, "alice", token, device_flag=1)
    body = {"uid": "alice", "token": "another", "device_flag": 1, "device_level": 0}
    assert (await http.post("/user/token", json=body)).status_code == 200
    await settle(0.2)
    assert client.packets.empty() and not client.closed.is_set()
    await client.close()


@pytest.mark.parametrize(("flag", "cleared"), [(1, {1}), (-1, {0, 1, 2})])
async def test_device_quit_clears_tokens_and_kicks(
    node: Node, http: httpx.AsyncClient, flag: int, cleared: set[int]
) -> None:
    token = await add_user(node, "alice")
    client = await connect(node, "alice", token, device_flag=1)
    r = await http.post("/user/device_quit", json={"uid": "alice", "device_flag": flag})
    assert (r.status_code, r.json()) == (200, {"status": 200})
    kicked = await asyncio.wait_for(client.packets.get(), T)
    assert isinstance(kicked, Disconnect)
    for f in (0, 1, 2):
        assert (await node.store.get_token("alice", f) is None) == (f in cleared)


async def test_onlinestatus_lists_online_device_flags(node: Node, http: httpx.AsyncClient) -> None:
    token = await add_user(node, "alice")
    web = await connect(node, "alice", token, device_flag=1)
    web2 = await connect(node, "alice", token, device_flag=1)
    app = await connect(node, "alice", token, device_flag=0)
    r = await http.post("/user/onlinestatus", json=["alice", "bob", "alice"])
    assert r.status_code == 200
    assert r.json() == [
        {"uid": "alice", "device_flag": 0, "online": 1},
        {"uid": "alice", "device_flag": 1, "online": 1},
    ]
    for c in (web, web2, app):
        await c.close()


async def test_route_gives_the_ws_and_tcp_addresses(node: Node, anon: httpx.AsyncClient) -> None:
    r = await anon.get("/route", params={"uid": "alice"})
    assert r.status_code == 200
    assert node.tcp_port > 0
    assert r.json() == {
        "tcp_addr": f"127.0.0.1:{node.tcp_port}",
        "ws_addr": f"ws://127.0.0.1:{node.ws_port}",
        "wss_addr": "",
    }
    bad = await anon.get("/route", params={"uid": "a b"})
    assert (bad.status_code, bad.json()["field"]) == (400, "uid")
    missing = await anon.get("/route")
    assert (missing.status_code, missing.json()["field"]) == (400, "uid")


BUSINESS_ONLY = [
    ("/user/token", {"uid": "mallory", "token": "x"}),
    ("/user/device_quit", {"uid": "alice", "device_flag": -1}),
    ("/user/onlinestatus", ["alice"]),
    ("/channel", {"channel_id": "g9", "channel_type": 2, "subscribers": ["alice"]}),
    ("/channel/info", {"channel_id": "g9", "channel_type": 2}),
    ("/channel/delete", {"channel_id": "g9", "channel_type": 2}),
    ("/channel/subscriber_add", {"channel_id": "g9", "channel_type": 2, "subscribers": ["x"]}),
    ("/channel/subscriber_remove", {"channel_id": "g9", "channel_type": 2, "subscribers": ["x"]}),
    (
        "/message/send",
        {"from_uid": "alice", "channel_id": "bob", "channel_type": 1, "payload": "e30="},
    ),
    ("/message/sendbatch", {"from_uid": "alice", "subscribers": ["bob"], "payload": "e30="}),
    ("/message/sync", {"uid": "alice"}),
    ("/message/syncack", {"uid": "alice", "last_message_seq": 1}),
]


@pytest.mark.parametrize(("path", "body"), BUSINESS_ONLY, ids=[p for p, _ in BUSINESS_ONLY])
async def test_business_endpoints_refuse_user_tokens_and_no_credential(
    node: Node, anon: httpx.AsyncClient, path: str, body: object
) -> None:
    token = await add_user(node, "alice")
    before = db_dump(node)
    async with as_user(node, token) as user:
        r = await user.post(path, json=body)
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    r = await anon.post(path, json=body)
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    r = await anon.post(path, json=body, headers={"Authorization": "Bearer wrong-key"})
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    assert db_dump(node) == before

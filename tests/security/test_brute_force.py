"""Guessing credentials is throttled per address and per uid, on both ports, while other
clients are served at the same time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from magpie.app import Node
from magpie.protocol.packets import ReasonCode
from tests.security.throttle_support import (
    ABUSER,
    NORMAL,
    connect_outcome,
    http_client,
    refused,
    text,
    ws_client,
)
from tests.support.nodes import API_KEY, add_user, running_node

BURST = 5


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(
        tmp_path,
        auth_fail_ip_burst=BURST,
        auth_fail_ip_rate=0.01,
        auth_fail_uid_burst=50,
        auth_fail_uid_rate=0.01,
    ) as n:
        for uid in ("alice", "victim"):
            await add_user(n, uid)
        yield n


async def test_connect_token_guessing_is_refused_per_address(node: Node) -> None:
    outcomes = [
        await connect_outcome(ws_client(node, "victim", f"guess-{i}", ABUSER))
        for i in range(BURST + 3)
    ]
    assert outcomes == [ReasonCode.AUTH_FAIL] * BURST + ["close 1013"] * 3
    # Blocked means blocked: even the right token is not checked from that address now.
    assert await connect_outcome(ws_client(node, "victim", "tok-victim", ABUSER)) == "close 1013"
    # Meanwhile, from another address, the victim and others connect and chat.
    alice = ws_client(node, "alice", "tok-alice", NORMAL)
    assert await connect_outcome(alice) == "ok"
    victim = ws_client(node, "victim", "tok-victim", NORMAL)
    assert await connect_outcome(victim) == "ok"
    ack = await alice.send("victim", 1, text("hi"))
    assert ack.reason_code == ReasonCode.SUCCESS
    assert refused(node, "ws", "auth_fail_ip") == 4
    await alice.close()
    await victim.close()


async def test_guessing_one_uid_from_many_addresses_is_refused_per_uid(tmp_path: Path) -> None:
    async with running_node(
        tmp_path, auth_fail_uid_burst=4, auth_fail_uid_rate=0.01, auth_fail_ip_burst=100
    ) as node:
        await add_user(node, "victim")
        await add_user(node, "alice")
        outcomes = [
            await connect_outcome(ws_client(node, "victim", "guess", f"127.0.0.{10 + i}"))
            for i in range(6)
        ]
        assert outcomes == [ReasonCode.AUTH_FAIL] * 4 + ["close 1013"] * 2
        assert await connect_outcome(ws_client(node, "alice", "tok-alice", "127.0.0.30")) == "ok"
        assert refused(node, "ws", "auth_fail_uid") == 2


async def test_api_key_guessing_gets_429_while_the_business_server_is_served(
    node: Node,
) -> None:
    body = {"uid": "mallory", "token": "t", "device_flag": 1}
    async with http_client(node, ABUSER, "not-the-key") as abuser:
        statuses = [(await abuser.post("/user/token", json=body)).status_code for _ in range(8)]
        assert statuses == [401] * BURST + [429] * 3
        r = await abuser.post("/user/token", json=body)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
    async with http_client(node, NORMAL, API_KEY) as business:
        assert (await business.post("/user/token", json=body)).status_code == 200
    async with http_client(node, ABUSER, API_KEY) as right_key:
        # The key itself is never refused for the failures of its address: the attacker
        # still could not guess it (each guess is refused before being checked).
        assert (await right_key.post("/user/token", json=body)).status_code == 200
    assert refused(node, "http", "auth_fail_ip") == 4


async def test_user_token_guessing_over_http_counts_as_failures(node: Node) -> None:
    body = {"uid": "victim", "version": 0, "msg_count": 1}
    async with http_client(node, ABUSER, "guess") as abuser:
        statuses = [
            (await abuser.post("/conversation/sync", json=body)).status_code for _ in range(7)
        ]
    assert statuses == [401] * BURST + [429] * 2
    async with http_client(node, NORMAL, "tok-victim") as victim:
        assert (await victim.post("/conversation/sync", json=body)).status_code == 200


async def test_failures_are_shared_between_the_ports(node: Node) -> None:
    async with http_client(node, ABUSER, "not-the-key") as abuser:
        for _ in range(BURST):
            assert (await abuser.post("/user/token", json={})).status_code == 401
    assert await connect_outcome(ws_client(node, "victim", "tok-victim", ABUSER)) == "close 1013"


async def test_a_real_user_token_on_a_business_endpoint_is_no_guess(node: Node) -> None:
    async with http_client(node, ABUSER, "tok-alice") as alice:
        for _ in range(BURST + 3):
            r = await alice.post("/user/token", json={"uid": "x", "token": "t"})
            assert r.status_code == 401
    assert refused(node, "http", "auth_fail_ip") == 0
    alice_ws = ws_client(node, "alice", "tok-alice", ABUSER)
    assert await connect_outcome(alice_ws) == "ok"
    await alice_ws.close()

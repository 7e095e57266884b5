"""Floods are refused for the abuser while a well-behaved client is served at the same time:
SENDs over the rate, HTTP requests over the rate (per address, token, key), requests in flight
per token, CONNECTs over the rate, and connections over the caps on both ports."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from magpie.app import Node
from magpie.client.raw import RawClient
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
from tests.support.nodes import API_KEY, add_user, api, make_group, running_node, time_scale

T = 10 * time_scale()


async def _count_messages(node: Node, uid: str, peer: str) -> int:
    async with api(node) as http:
        r = await http.post(
            "/channel/messagesync",
            json={"login_uid": uid, "channel_id": peer, "channel_type": 1, "limit": 1000},
        )
        assert r.status_code == 200, r.text
        return len(r.json()["messages"])


async def test_a_send_flood_gets_rate_limit_acks_then_is_closed(tmp_path: Path) -> None:
    async with running_node(tmp_path, send_rate=5.0, send_burst=20, send_refusals_close=30) as node:
        for uid in ("spammer", "alice", "bob"):
            await add_user(node, uid)
        spammer = ws_client(node, "spammer", "tok-spammer")
        alice = ws_client(node, "alice", "tok-alice")
        assert await connect_outcome(spammer) == "ok" and await connect_outcome(alice) == "ok"

        async def normal_chat() -> list[int]:
            reasons = []
            for i in range(6):
                reasons.append((await alice.send("bob", 1, text(f"hello {i}"))).reason_code)
                await asyncio.sleep(0.25)
            return reasons

        async def flood() -> Counter[object]:
            async def one(i: int) -> object:
                try:
                    return (await spammer.send("bob", 1, text(f"spam {i}"))).reason_code
                except ConnectionError:
                    return "closed"

            return Counter(await asyncio.gather(*(one(i) for i in range(100))))

        chat, flooded = await asyncio.gather(normal_chat(), flood())
        assert chat == [ReasonCode.SUCCESS] * 6, "the well-behaved client never noticed"
        assert 20 <= flooded[ReasonCode.SUCCESS] <= 22, flooded
        assert flooded[ReasonCode.RATE_LIMIT] >= 30 - 1, flooded
        await asyncio.wait_for(spammer.closed.wait(), T)
        assert flooded["closed"] > 0, "closed after 30 refusals in a row"
        stored = await _count_messages(node, "spammer", "bob")
        assert stored == flooded[ReasonCode.SUCCESS], "nothing stored for a refused SEND"
        assert refused(node, "ws", "send_flood") == 1
        assert refused(node, "ws", "send_rate") == flooded[ReasonCode.RATE_LIMIT]
        await alice.close()


async def test_sends_at_the_rate_are_never_refused(tmp_path: Path) -> None:
    async with running_node(tmp_path, send_rate=20.0, send_burst=5) as node:
        await add_user(node, "alice")
        await make_group(node, "g", ["alice"])
        alice = ws_client(node, "alice", "tok-alice")
        assert await connect_outcome(alice) == "ok"
        for i in range(40):  # 2 s at 20/s, beyond the burst
            ack = await alice.send("g", 2, text(f"m{i}"))
            assert ack.reason_code == ReasonCode.SUCCESS, i
            await asyncio.sleep(0.05)
        await alice.close()


async def test_http_flood_per_address_gets_429_while_others_are_served(tmp_path: Path) -> None:
    async with running_node(tmp_path, http_ip_rate=1.0, http_ip_burst=10) as node:
        async with http_client(node, ABUSER) as abuser, http_client(node, NORMAL) as normal:
            statuses = Counter()
            for i in range(20):
                statuses[(await abuser.get("/health")).status_code] += 1
                if i % 4 == 0:  # the other client, at its own moderate pace
                    assert (await normal.get("/health")).status_code == 200
            assert statuses == {200: 10, 429: 10}
            r = await abuser.get("/health")
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
        async with http_client(node, ABUSER, API_KEY) as business:
            # The business key is not counted per address.
            assert (await business.post("/user/token", json={"uid": "u", "token": "t"})).is_success


async def test_http_rate_per_token_and_per_key(tmp_path: Path) -> None:
    async with running_node(
        tmp_path, http_token_rate=0.5, http_token_burst=5, http_key_rate=1.0, http_key_burst=8
    ) as node:
        await add_user(node, "alice")
        await add_user(node, "bob")
        body = {"uid": "alice", "version": 0, "msg_count": 1}
        async with http_client(node, NORMAL, "tok-alice") as alice:
            got = [
                (await alice.post("/conversation/sync", json=body)).status_code for _ in range(7)
            ]
            assert got == [200] * 5 + [429] * 2
        async with http_client(node, NORMAL, "tok-bob") as bob:
            r = await bob.post("/conversation/sync", json={**body, "uid": "bob"})
            assert r.status_code == 200, "another token has its own budget"
        async with http_client(node, NORMAL, API_KEY) as business:
            # add_user spent 6 of the key's 8 (two users, three device flags each)
            got = [(await business.get("/health")).status_code for _ in range(3)]
            assert got == [200, 200, 429]
        assert refused(node, "http", "http_rate_token") == 2
        assert refused(node, "http", "http_rate_key") == 1


async def test_requests_in_flight_per_token_are_capped(tmp_path: Path) -> None:
    async with running_node(tmp_path, http_max_inflight_per_token=2) as node:
        await add_user(node, "alice")
        release = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield b'{"uid": "alice", '
            await release.wait()
            yield b'"version": 0, "msg_count": 1}'

        async def slow_request(http: httpx.AsyncClient) -> int:
            r = await http.post(
                "/conversation/sync",
                content=slow_body(),
                headers={"Content-Type": "application/json"},
            )
            return r.status_code

        async with http_client(node, NORMAL, "tok-alice") as alice:
            slow = [asyncio.create_task(slow_request(alice)) for _ in range(2)]
            await asyncio.sleep(0.5 * time_scale())
            body = {"uid": "alice", "version": 0, "msg_count": 1}
            third = await alice.post("/conversation/sync", json=body)
            assert third.status_code == 429
            release.set()
            assert await asyncio.gather(*slow) == [200, 200]
            assert (await alice.post("/conversation/sync", json=body)).status_code == 200
        assert refused(node, "http", "inflight_token") == 1


async def test_a_connect_flood_from_one_address_is_throttled(tmp_path: Path) -> None:
    async with running_node(
        tmp_path, token_auth=False, connect_ip_burst=5, connect_ip_rate=0.01
    ) as node:
        flood = [ws_client(node, f"u{i}", "t", ABUSER) for i in range(8)]
        outcomes = [await connect_outcome(c) for c in flood]
        assert outcomes == ["ok"] * 5 + ["close 1013"] * 3
        normal = ws_client(node, "alice", "t", NORMAL)
        assert await connect_outcome(normal) == "ok"
        for c in [*flood[:5], normal]:
            await c.close()


async def test_connects_of_one_uid_are_throttled(tmp_path: Path) -> None:
    async with running_node(
        tmp_path, token_auth=False, connect_uid_burst=3, connect_uid_rate=0.01
    ) as node:
        outcomes = []
        for _ in range(5):
            client = ws_client(node, "flapper", "t")
            outcomes.append(await connect_outcome(client))
            await client.close()
        assert outcomes == ["ok"] * 3 + ["close 1013"] * 2
        other = ws_client(node, "steady", "t")
        assert await connect_outcome(other) == "ok"
        await other.close()


async def _held_or_refused(url: str, source: str) -> tuple[object | None, int | None]:
    """Open a bare WebSocket from ``source``: the connection if the gateway keeps it, or the
    close code it was refused with."""
    ws = await ws_connect(url, local_addr=(source, 0), open_timeout=T)
    try:
        await asyncio.wait_for(ws.recv(), 0.5 * time_scale())
    except TimeoutError:
        return ws, None  # admitted: the gateway waits for a CONNECT
    except ConnectionClosed as exc:
        return None, exc.rcvd.code if exc.rcvd else None
    raise AssertionError("the gateway sent something before CONNECT")


async def test_gateway_connections_per_address_and_in_all_are_capped(tmp_path: Path) -> None:
    async with running_node(
        tmp_path, ws_max_connections_per_ip=4, ws_max_connections=6, token_auth=False
    ) as node:
        url = f"ws://127.0.0.1:{node.ws_port}"
        outcomes = [await _held_or_refused(url, ABUSER) for _ in range(6)]
        held = [ws for ws, _ in outcomes if ws is not None]
        assert [code for _, code in outcomes] == [None] * 4 + [1013] * 2
        normal = ws_client(node, "alice", "t", NORMAL)
        assert await connect_outcome(normal) == "ok"
        other = ws_client(node, "bob", "t", "127.0.0.3")
        assert await connect_outcome(other) == "ok"  # 6 in all now
        third = ws_client(node, "carol", "t", "127.0.0.4")
        assert await connect_outcome(third) == "close 1013"
        assert refused(node, "ws", "conn_per_ip") == 2
        assert refused(node, "ws", "conn_total") == 1
        await held[0].close()  # type: ignore[attr-defined]
        await asyncio.sleep(0.2 * time_scale())
        again = ws_client(node, "carol", "t", "127.0.0.4")
        assert await connect_outcome(again) == "ok"
        for ws in held[1:]:
            await ws.close()  # type: ignore[attr-defined]
        for c in (normal, other, again):
            await c.close()


async def test_tcp_connections_count_in_the_same_caps(tmp_path: Path) -> None:
    async with running_node(tmp_path, ws_max_connections_per_ip=2, token_auth=False) as node:
        url = f"tcp://127.0.0.1:{node.tcp_port}"
        clients = [RawClient(url, f"u{i}", "t", local_addr=(ABUSER, 0)) for i in range(3)]
        outcomes = [await connect_outcome(c) for c in clients]
        assert outcomes[:2] == ["ok", "ok"] and outcomes[2] != "ok"
        assert refused(node, "ws", "conn_per_ip") == 1
        assert await connect_outcome(ws_client(node, "alice", "t", NORMAL)) == "ok"
        for c in clients[:2]:
            await c.close()


async def test_connections_of_one_uid_are_capped(tmp_path: Path) -> None:
    async with running_node(tmp_path, ws_max_connections_per_uid=3) as node:
        await add_user(node, "alice")  # device level 0: several devices coexist
        await add_user(node, "bob")
        clients = [ws_client(node, "alice", "tok-alice", device_flag=i % 3) for i in range(4)]
        outcomes = [await connect_outcome(c) for c in clients]
        assert outcomes == ["ok"] * 3 + ["close 1013"]
        bob = ws_client(node, "bob", "tok-bob")
        assert await connect_outcome(bob) == "ok"
        await clients[0].close()
        await asyncio.sleep(0.2)
        again = ws_client(node, "alice", "tok-alice")
        assert await connect_outcome(again) == "ok"
        for c in [*clients[1:3], again, bob]:
            await c.close()
        assert refused(node, "ws", "conn_per_uid") == 1


async def test_a_master_device_reconnecting_at_the_cap_replaces_its_old_session(
    tmp_path: Path,
) -> None:
    async with running_node(tmp_path, ws_max_connections_per_uid=2) as node:
        await add_user(node, "alice", level=1)  # master devices: a new login kicks the old
        first = ws_client(node, "alice", "tok-alice", device_flag=0)
        second = ws_client(node, "alice", "tok-alice", device_flag=1)
        assert await connect_outcome(first) == "ok" and await connect_outcome(second) == "ok"
        again = ws_client(node, "alice", "tok-alice", device_flag=0)
        assert await connect_outcome(again) == "ok"
        await asyncio.wait_for(first.closed.wait(), T)
        await second.close()
        await again.close()


async def test_http_connections_per_address_are_capped(tmp_path: Path) -> None:
    async with running_node(tmp_path, http_max_connections_per_ip=3) as node:
        conns = []
        for _ in range(5):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", node.api_port, local_addr=(ABUSER, 0)
            )
            conns.append((reader, writer))
        answers = []
        for reader, _ in conns[3:]:
            answers.append(await asyncio.wait_for(reader.read(), T))
        assert all(a.startswith(b"HTTP/1.1 503") for a in answers), answers
        assert all(b"retry-after: 1" in a for a in answers)
        async with http_client(node, NORMAL) as normal:
            assert (await normal.get("/health")).status_code == 200
        for _, writer in conns:
            writer.close()
        assert refused(node, "http", "conn_per_ip") == 2

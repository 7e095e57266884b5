"""Outages of the store and the bus, as one node sees them.

PostgreSQL unreachable (a TCP proxy between the node and the shared server is cut, as a
database restart looks from the node): SEND is answered with SENDACK reason 15 (system
error) and the connection stays open, the HTTP API answers 503 ``store_unavailable`` with
``Retry-After``, ``/ready`` is 503 naming the store, nothing is half-written, and once the
proxy passes again the node serves by itself — the same ``client_msg_no`` is stored once and
the channel's seqs have no gap. The same through a real restart of a private PostgreSQL
(``pg_ctl stop -m fast``, then ``start``). Redis down: local deliveries go on, ``/ready`` is 200 and
``degraded``, remote deliveries resume after the bus reconnects."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from magpie.protocol.packets import ReasonCode
from tests.support.cluster import Proxy
from tests.support.nodes import add_user, api, connect, make_group, running_node, time_scale
from tests.support.pgserver import PrivatePostgres
from tests.support.postgres import new_schema
from tests.support.redis import RedisServer, run_prefix

T = 10 * time_scale()


def text(s: str) -> bytes:
    return json.dumps({"type": 1, "content": s}).encode()


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    netloc_new = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
    return urlunsplit(parts._replace(netloc=netloc_new))


async def eventually(check: object, timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_postgres_down_refuses_sends_cleanly_and_recovers_by_itself(
    tmp_path: Path, pg_database: str
) -> None:
    url = new_schema(pg_database, "down")
    target = urlsplit(url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    try:
        async with running_node(
            tmp_path, store_url=through(url, proxy.port), store_pool_size=3, node_lease=3.0
        ) as node:
            tokens = {u: await add_user(node, u) for u in ("alice", "bob")}
            await make_group(node, "g", ["alice", "bob"])
            alice = await connect(node, "alice", tokens["alice"])
            bob = await connect(node, "bob", tokens["bob"])
            ack = await alice.send("g", 2, text("before"), client_msg_no="m1")
            assert (ack.reason_code, ack.message_seq) == (ReasonCode.SUCCESS, 1)
            await asyncio.wait_for(bob.messages.get(), T)

            await proxy.cut()
            ack = await alice.send("g", 2, text("during"), client_msg_no="m2")
            assert ack.reason_code == ReasonCode.SYSTEM_ERROR and ack.message_id == 0
            assert not alice.closed.is_set(), "the connection stays open"
            async with api(node) as http:
                body = {"from_uid": "alice", "channel_id": "g", "channel_type": 2,
                        "client_msg_no": "h1",
                        "payload": base64.b64encode(text("http")).decode()}  # fmt: skip
                r = await http.post("/message/send", json=body)
                assert (r.status_code, r.json()["code"]) == (503, "store_unavailable"), r.text
                assert r.headers["retry-after"] == "2"
                ready = await http.get("/ready")
                assert ready.status_code == 503 and ready.json()["store"] == "unreachable"
                assert str(proxy.port) not in ready.text
                assert (await http.get("/health")).status_code == 200

                await proxy.restore()

                async def sends_again() -> bool:
                    r = await http.post("/message/send", json=body)
                    return r.status_code == 200

                await eventually(sends_again)
                assert (await http.get("/ready")).status_code == 200
            ack = await alice.send("g", 2, text("during"), client_msg_no="m2")
            assert ack.reason_code == ReasonCode.SUCCESS
            again = await alice.send("g", 2, text("during"), client_msg_no="m2")
            assert again.message_id == ack.message_id, "a resend is stored once"
            async with api(node) as http:
                r = await http.post("/channel/messagesync", json={"login_uid": "bob",
                                    "channel_id": "g", "channel_type": 2, "limit": 50})  # fmt: skip
                seqs = [m["message_seq"] for m in r.json()["messages"]]
                nos = [m["client_msg_no"] for m in r.json()["messages"]]
            assert seqs == list(range(1, len(seqs) + 1)), "no gap, nothing half-written"
            assert sorted(nos) == ["h1", "m1", "m2"]
            for c in (alice, bob):
                await c.close()
    finally:
        await proxy.stop()


async def test_redis_down_keeps_local_deliveries_and_resumes_remote_ones(
    tmp_path: Path, pg_database: str
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    url = new_schema(pg_database, "redis")
    common = {"store_url": url, "store_pool_size": 3, "bus_url": server.url,
              "cluster_name": f"{run_prefix()}-out", "bus_timeout": 0.5}  # fmt: skip
    try:
        async with (
            running_node(tmp_path / "a", **common) as one,
            running_node(tmp_path / "b", **common) as two,
        ):
            tokens = {u: await add_user(one, u) for u in ("alice", "bob", "carol")}
            await make_group(one, "g", ["alice", "bob", "carol"])
            alice = await connect(one, "alice", tokens["alice"])
            bob = await connect(one, "bob", tokens["bob"])  # same node as alice
            carol = await connect(two, "carol", tokens["carol"])  # the other node
            await alice.send("g", 2, text("up"))
            for c in (bob, carol):
                assert json.loads((await asyncio.wait_for(c.messages.get(), T)).payload)
            server.stop()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{one.api_port}") as http:

                async def degraded() -> bool:
                    r = await http.get("/ready")
                    return r.status_code == 200 and r.json()["degraded"]

                await eventually(degraded)
                ack = await alice.send("g", 2, text("local"))
                assert ack.reason_code == ReasonCode.SUCCESS, "the store still takes sends"
                got = await asyncio.wait_for(bob.messages.get(), T)
                assert json.loads(got.payload)["content"] == "local", "local delivery goes on"
                server.start()

                async def healthy() -> bool:
                    r = await http.get("/ready")
                    return r.status_code == 200 and r.json()["bus"] == "up"

                await eventually(healthy, 3 * T)

            async def crossed() -> bool:
                await alice.send("g", 2, text("remote"))
                try:
                    while True:
                        got = await asyncio.wait_for(carol.messages.get(), 0.5)
                        if json.loads(got.payload)["content"] == "remote":
                            return True
                except TimeoutError:
                    return False

            await eventually(crossed, 3 * T)
            for c in (alice, bob, carol):
                await c.close()
    finally:
        server.stop()


async def test_a_postgres_restart_is_retryable_and_the_node_recovers(tmp_path: Path) -> None:
    """A private PostgreSQL stopped (``pg_ctl stop -m fast``: the server ends every session)
    and started again with its data: refusals while it is away, service again after."""
    server = PrivatePostgres()
    try:
        await asyncio.to_thread(server.init)
        await asyncio.to_thread(server.start)
        async with running_node(tmp_path, store_url=server.url, store_pool_size=3) as node:
            token = await add_user(node, "alice")
            await add_user(node, "bob")
            alice = await connect(node, "alice", token)
            ack = await alice.send("bob", 1, text("one"), client_msg_no="r1")
            assert ack.reason_code == ReasonCode.SUCCESS
            await asyncio.to_thread(server.stop)
            ack = await alice.send("bob", 1, text("two"), client_msg_no="r2")
            assert ack.reason_code == ReasonCode.SYSTEM_ERROR
            async with api(node) as http:
                r = await http.get("/ready")
                assert (r.status_code, r.json()["store"]) == (503, "unreachable")
                r = await http.post("/user/token", json={"uid": "carol", "token": "t"})
                assert (r.status_code, r.json()["code"]) == (503, "store_unavailable")
                await asyncio.to_thread(server.start)

                async def ready() -> bool:
                    return (await http.get("/ready")).status_code == 200

                await eventually(ready, 3 * T)
            ack = await alice.send("bob", 1, text("two"), client_msg_no="r2")
            assert (ack.reason_code, ack.message_seq) == (ReasonCode.SUCCESS, 2)
            await alice.close()
    finally:
        await asyncio.to_thread(server.remove)

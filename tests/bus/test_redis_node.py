"""Nodes running on the Redis bus: settings, start-up errors, the gateway's presence
reports, ``/ready`` through an outage, and a message crossing from one node to another."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from magpie.app import Node
from magpie.bus.memory import MemoryBus
from magpie.bus.redis import RedisBus
from magpie.config import load_settings, redact_url
from magpie.errors import ConfigError
from magpie.protocol.packets import Disconnect, ReasonCode
from tests.support.nodes import add_user, connect, running_node, settle, time_scale
from tests.support.redis import RedisServer, free_port, require_redis, run_prefix

T = 5 * time_scale()


def text(s: str) -> bytes:
    return json.dumps({"type": 1, "content": s}).encode()


# --- settings ----------------------------------------------------------------------------


def test_bus_settings_from_the_environment() -> None:
    s = load_settings(
        environ={"MAGPIE_BUS_URL": "redis://10.0.0.5:6380/2", "MAGPIE_CLUSTER_NAME": "prod-eu"}
    )
    assert (s.bus_url, s.cluster_name) == ("redis://10.0.0.5:6380/2", "prod-eu")
    default = load_settings(environ={})
    assert (default.bus_url, default.cluster_name) == ("memory://", "magpie")


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"MAGPIE_BUS_URL": "nats://127.0.0.1:4222"}, "bus_url"),
        ({"MAGPIE_BUS_URL": "redis://"}, "bus_url"),
        ({"MAGPIE_BUS_URL": "redis://127.0.0.1:99999/0"}, "bus_url"),
        ({"MAGPIE_BUS_URL": "redis://127.0.0.1:6379/db"}, "bus_url"),
        ({"MAGPIE_BUS_URL": "127.0.0.1:6379"}, "bus_url"),
        ({"MAGPIE_CLUSTER_NAME": ""}, "cluster_name"),
        ({"MAGPIE_CLUSTER_NAME": "a:b"}, "cluster_name"),
        ({"MAGPIE_CLUSTER_NAME": "x" * 65}, "cluster_name"),
        ({"MAGPIE_BUS_PRESENCE_TTL": "0"}, "bus_presence_ttl"),
        ({"MAGPIE_BUS_QUEUE_MAX": "0"}, "bus_queue_max"),
        ({"MAGPIE_BUS_TIMEOUT": "-1"}, "bus_timeout"),
    ],
)
def test_bad_bus_settings_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env)
    assert err.value.key == key and "\n" not in str(err.value)


def test_limits_at_n_and_below() -> None:
    assert load_settings(environ={"MAGPIE_BUS_QUEUE_MAX": "1"}).bus_queue_max == 1
    assert load_settings(environ={"MAGPIE_CLUSTER_NAME": "x" * 64}).cluster_name == "x" * 64


def test_a_password_never_appears_in_messages() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"MAGPIE_BUS_URL": "redis://:hunter2@127.0.0.1:6379/x"})
    assert "hunter2" not in str(err.value) and "***" in str(err.value)
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    clean.update(MAGPIE_DATA_DIR=str(tmp_path), MAGPIE_WS_PORT="0", MAGPIE_API_PORT="0")
    clean.update(MAGPIE_TCP_PORT="0", **env)
    return subprocess.run(
        [sys.executable, "-m", "magpie.cli", "serve"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60 * time_scale(),
    )


def test_serve_refuses_a_bad_bus_url_in_one_line(tmp_path: Path) -> None:
    proc = _serve(tmp_path, MAGPIE_BUS_URL="redis//nowhere")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "bus_url" in proc.stderr


def test_serve_refuses_an_unreachable_redis_in_one_line(tmp_path: Path) -> None:
    url = f"redis://:pw@127.0.0.1:{free_port()}/0"
    proc = _serve(tmp_path, MAGPIE_BUS_URL=url, MAGPIE_BUS_TIMEOUT="1")
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert line.count("\n") == 0 and "bus_url" in line and "cannot reach Redis" in line
    assert ":pw@" not in line


# --- nodes on the Redis bus --------------------------------------------------------------


async def test_the_embedded_default_uses_the_memory_bus(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        bus = node.bus
        assert isinstance(bus, MemoryBus)
        tok = await add_user(node, "bob")
        bob = await connect(node, "bob", tok)
        assert bus.connections("bob") == 1
        await bob.close()
        await _until(lambda: bus.connections("bob") == 0)


async def _until(check: Callable[[], bool], timeout: float = T) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def test_the_gateway_reports_connects_and_disconnects(tmp_path: Path) -> None:
    url, cluster = require_redis(), f"{run_prefix()}-gw"
    async with running_node(tmp_path, bus_url=url, cluster_name=cluster, node_id=11) as node:
        bus = node.bus
        assert isinstance(bus, RedisBus)
        tok = await add_user(node, "bob")
        async with aioredis.Redis.from_url(url) as r:
            b1 = await connect(node, "bob", tok, device_flag=1)
            # visible to every node as soon as the client has its CONNACK
            assert await r.hget(f"{cluster}:presence", "bob") == b"11"
            b2 = await connect(node, "bob", tok, device_flag=0)
            await b1.close()
            await _until(lambda: bus.connections("bob") == 1)
            assert await r.hget(f"{cluster}:presence", "bob") == b"11"
            await b2.close()
            await _until(lambda: bus.connections("bob") == 0)

            async def gone() -> bool:
                return await r.hget(f"{cluster}:presence", "bob") is None

            for _ in range(int(50 * time_scale())):
                if await gone():
                    break
                await asyncio.sleep(0.05)
            assert await gone()


async def test_ready_reports_the_bus_degraded_through_a_redis_outage(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        async with (
            running_node(
                tmp_path / "node", bus_url=server.url, cluster_name="ready", bus_timeout=0.5
            ) as node,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.api_port}") as http,
        ):
            r = await http.get("/ready")
            assert r.status_code == 200 and (r.json()["bus"], r.json()["degraded"]) == ("up", False)
            server.stop()
            for _ in range(int(100 * time_scale())):
                r = await http.get("/ready")
                if r.json()["degraded"]:
                    break
                await asyncio.sleep(0.05)
            # degraded, not unready: local deliveries go on without Redis
            assert r.status_code == 200 and r.json()["bus"] == "down", r.text
            assert r.json()["store"] == "up"
            assert str(server.port) not in r.text, "no internal address for outsiders"
            assert (await http.get("/health")).status_code == 200
            server.start()
            for _ in range(int(200 * time_scale())):
                if not (await http.get("/ready")).json()["degraded"]:
                    break
                await asyncio.sleep(0.05)
            assert (await http.get("/ready")).json()["bus"] == "up"
    finally:
        server.stop()


async def test_a_message_crosses_from_one_node_to_another(tmp_path: Path) -> None:
    """Two nodes share one SQLite file and one Redis: alice sends on node 1, bob receives
    on node 2; bob's other device on node 1 and carol's on node 2 get it too."""
    url, cluster = require_redis(), f"{run_prefix()}-two"
    common = {"bus_url": url, "cluster_name": cluster, "db_file": str(tmp_path / "shared.db")}
    async with (
        running_node(tmp_path / "n1", node_id=1, **common) as n1,
        running_node(tmp_path / "n2", node_id=2, **common) as n2,
    ):
        tok = {uid: await add_user(n1, uid) for uid in ("alice", "bob")}
        alice = await connect(n1, "alice", tok["alice"])
        bob2 = await connect(n2, "bob", tok["bob"], device_flag=1)
        bob1 = await connect(n1, "bob", tok["bob"], device_flag=0)
        ack = await alice.send("bob", 1, text("across"))
        assert ack.reason_code == ReasonCode.SUCCESS
        for client in (bob2, bob1):
            got = await asyncio.wait_for(client.messages.get(), T)
            assert got.packet.message_id == ack.message_id and got.packet.channel_id == "alice"
            assert json.loads(got.payload)["content"] == "across"
        await settle(0.2)
        assert bob2.messages.empty() and bob1.messages.empty(), "exactly once per device"
        for c in (alice, bob1, bob2):
            await c.close()


async def test_a_master_login_on_one_node_kicks_the_device_on_another(tmp_path: Path) -> None:
    url, cluster = require_redis(), f"{run_prefix()}-kick"
    common = {"bus_url": url, "cluster_name": cluster, "db_file": str(tmp_path / "shared.db")}
    async with (
        running_node(tmp_path / "n1", node_id=1, **common) as n1,
        running_node(tmp_path / "n2", node_id=2, **common) as n2,
    ):
        tok = await add_user(n1, "bob", level=1)
        old = await connect(n1, "bob", tok, device_flag=0)
        new = await connect(n2, "bob", tok, device_flag=0)
        kicked = await asyncio.wait_for(old.packets.get(), T)
        assert isinstance(kicked, Disconnect) and kicked.reason_code == ReasonCode.CONNECT_KICK
        await asyncio.wait_for(old.closed.wait(), T)
        assert not new.closed.is_set()
        await new.close()


async def test_two_nodes_with_one_node_id_refuse_the_second(tmp_path: Path) -> None:
    url, cluster = require_redis(), f"{run_prefix()}-dup"
    common: dict[str, Any] = {"bus_url": url, "cluster_name": cluster, "bus_presence_ttl": 0.3}
    async with running_node(tmp_path / "n1", node_id=3, **common):
        settings = load_settings(
            environ={},
            data_dir=str(tmp_path / "n2"),
            ws_port=0,
            api_port=0,
            node_id=3,
            **common,
        )
        second = Node(settings)
        with pytest.raises(ConfigError) as err:
            await second.start()
        assert err.value.key == "node_id"

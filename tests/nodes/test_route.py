"""``/route?uid=`` in a cluster: every node gives the same live node for a uid (rendezvous
hashing over the leased nodes' ``ws_public_url``), users are spread over the nodes, a
stopped node's users move to the live ones and nobody else moves; ``ws_public_url`` and its
deprecated alias ``ws_public_addr`` are validated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from magpie.app import Node
from magpie.config import load_settings
from magpie.errors import ConfigError
from tests.support.nodes import running_node, time_scale
from tests.support.postgres import new_schema

UIDS = [f"user{i}" for i in range(60)]


@asynccontextmanager
async def public_nodes(tmp_path: Path, url: str, n: int) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        out = []
        for i in range(n):
            node = running_node(
                tmp_path / f"n{i}",
                store_url=url,
                store_pool_size=3,
                ws_public_url=f"wss://chat.example.com/ws{i}",
                tcp_public_addr=f"tcp{i}.example.com:5100",
            )
            out.append(await stack.enter_async_context(node))
        yield out


async def routes(node: Node) -> dict[str, tuple[str, str, str]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.api_port}") as http:
        out = {}
        for uid in UIDS:
            r = await http.get("/route", params={"uid": uid})
            assert r.status_code == 200, r.text
            body = r.json()
            out[uid] = (body["ws_addr"], body["tcp_addr"], body["wss_addr"])
        return out


async def settled(nodes: list[Node]) -> list[dict[str, tuple[str, str, str]]]:
    """The routes of every node once their cached live sets agree (cache: 1 s)."""
    deadline = asyncio.get_running_loop().time() + 10 * time_scale()
    while True:
        answers = [await routes(n) for n in nodes]
        if all(a == answers[0] for a in answers):
            return answers
        assert asyncio.get_running_loop().time() < deadline, "the nodes never agreed"
        await asyncio.sleep(0.2)


async def test_every_node_routes_a_user_to_the_same_live_node(
    tmp_path: Path, pg_database: str
) -> None:
    url = new_schema(pg_database, "route")
    async with public_nodes(tmp_path, url, 3) as nodes:
        await asyncio.sleep(1.1)  # past the directory's cache of the first answers
        first = (await settled(nodes))[0]
        used = {ws for ws, _, _ in first.values()}
        assert used <= {f"wss://chat.example.com/ws{i}" for i in range(3)}
        assert len(used) == 3, "60 users are spread over the three nodes"
        for ws, tcp, wss in first.values():
            i = ws.removeprefix("wss://chat.example.com/ws")
            assert (tcp, wss) == (f"tcp{i}.example.com:5100", ws)
        gone = "wss://chat.example.com/ws2"
        await nodes[2].stop()  # releases its lease: its users move, nobody else does
        await asyncio.sleep(1.1)
        after = (await settled(nodes[:2]))[0]
        for uid in UIDS:
            if first[uid][0] != gone:
                assert after[uid] == first[uid], uid
            else:
                assert after[uid][0] != gone


def test_ws_public_url_is_validated_and_ws_public_addr_is_its_alias() -> None:
    s = load_settings(environ={"MAGPIE_WS_PUBLIC_URL": "wss://chat.example.com/ws"})
    assert s.ws_public_url == "wss://chat.example.com/ws"
    old = load_settings(environ={"MAGPIE_WS_PUBLIC_ADDR": "ws://10.0.0.1:5200"})
    assert old.ws_public_url == "ws://10.0.0.1:5200"
    for bad in ("http://x:1", "ws://", "chat.example.com:5200", "ws://h:0", "ws://h:99999",
                "wss://h/ws?x=1"):  # fmt: skip
        with pytest.raises(ConfigError) as err:
            load_settings(environ={"MAGPIE_WS_PUBLIC_URL": bad})
        assert err.value.key == "ws_public_url", bad
    with pytest.raises(ConfigError) as err:
        load_settings(
            environ={"MAGPIE_WS_PUBLIC_ADDR": "ws://a:1", "MAGPIE_WS_PUBLIC_URL": "ws://b:1"}
        )
    assert err.value.key == "ws_public_addr"
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"MAGPIE_WS_PUBLIC_ADDR": "nonsense"})
    assert err.value.key == "ws_public_addr"
    for bad in ("host", "host:", ":5100", "host:0", "host:x"):
        with pytest.raises(ConfigError) as err:
            load_settings(environ={"MAGPIE_TCP_PUBLIC_ADDR": bad})
        assert err.value.key == "tcp_public_addr", bad


def test_node_id_and_node_lease_settings() -> None:
    assert load_settings(environ={}).node_id is None
    assert load_settings(environ={"MAGPIE_NODE_ID": ""}).node_id is None
    assert load_settings(environ={"MAGPIE_NODE_ID": "1023"}).node_id == 1023
    assert load_settings(environ={"MAGPIE_NODE_ID": "0"}).node_id == 0
    for bad in ("-1", "1024", "x"):
        with pytest.raises(ConfigError) as err:
            load_settings(environ={"MAGPIE_NODE_ID": bad})
        assert err.value.key == "MAGPIE_NODE_ID" or err.value.key == "node_id", bad
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"MAGPIE_NODE_LEASE": "0"})
    assert err.value.key == "node_lease"


async def test_a_lone_node_routes_to_itself(tmp_path: Path) -> None:
    async with running_node(tmp_path, ws_public_url="ws://10.1.2.3:5200") as node:
        answers = await routes(node)
        assert {a for a in answers.values()} == {
            ("ws://10.1.2.3:5200", f"127.0.0.1:{node.tcp_port}", "")
        }

"""Node ids leased from the store (``magpie.core.nodes``): unset ids are leased free ones,
a named id held by a live node is refused naming ``node_id``, message ids carry the leased
id, a stopped node frees its id, and a node whose lease lapsed issues no id."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from magpie.app import Node
from magpie.core.messaging import SendRequest
from magpie.domain.channels import fake_channel_id
from magpie.domain.nodes import MAX_NODE_ID
from magpie.errors import ConfigError, StoreUnavailable
from magpie.protocol.packets import Flags
from magpie.store.interface import Store
from tests.support.nodes import api, running_node, time_scale
from tests.support.postgres import new_schema

NODE_BITS = (1 << 10) - 1


def node_of(message_id: int) -> int:
    return (message_id >> 12) & NODE_BITS


@asynccontextmanager
async def pg_nodes(tmp_path: Path, url: str, n: int, **kw: Any) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        out = []
        for i in range(n):
            node = running_node(tmp_path / f"n{i}", store_url=url, store_pool_size=3, **kw)
            out.append(await stack.enter_async_context(node))
        yield out


async def _send(node: Node, text: str) -> int:
    body = json.dumps({"type": 1, "content": text}).encode()
    req = SendRequest("alice", "bob", 1, body, f"c-{text}", Flags.RED_DOT, from_api=True)
    result = await node.messaging.send(req)
    return result.message_id


async def test_unset_node_ids_are_distinct_leases_and_in_the_message_ids(
    tmp_path: Path, pg_database: str
) -> None:
    url = new_schema(pg_database, "ids")
    async with pg_nodes(tmp_path, url, 3) as nodes:
        ids = [n.node_id for n in nodes]
        assert len(set(ids)) == 3 and all(MAX_NODE_ID - 3 < i <= MAX_NODE_ID for i in ids)
        assert [n.bus.node_id for n in nodes] == ids
        sent = await asyncio.gather(*(_send(n, f"m{k}") for k, n in enumerate(nodes)))
        assert [node_of(m) for m in sent] == ids
        live = await nodes[0].store.live_nodes()
        assert sorted(r.node_id for r in live) == sorted(ids)
        assert {r.instance for r in live} == {n.instance for n in nodes}
    async with pg_nodes(tmp_path, url, 1) as (again,):
        assert again.node_id == MAX_NODE_ID, "a stopped node released its id"


async def test_a_named_id_of_a_live_node_is_refused_naming_node_id(
    tmp_path: Path, pg_database: str
) -> None:
    url = new_schema(pg_database, "named")
    async with pg_nodes(tmp_path, url, 1, node_id=5, node_lease=1.0) as (first,):
        assert first.node_id == 5
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConfigError) as err:
            async with pg_nodes(tmp_path / "b", url, 1, node_id=5, node_lease=1.0):
                pass
        waited = asyncio.get_running_loop().time() - started
        assert err.value.key == "node_id" and "node id 5 is held" in err.value.message
        assert waited >= 1.0, "it waited one lease for a crashed holder's to run out"
        assert first.node_id == 5 and first.lease.valid(), "the first node keeps its id"


async def test_a_crashed_nodes_named_id_is_taken_over_after_its_lease(
    tmp_path: Path, pg_database: str
) -> None:
    url = new_schema(pg_database, "crash")
    async with pg_nodes(tmp_path, url, 1, node_id=6, node_lease=1.0) as (first,):
        await _crash(first)  # stops renewing without releasing, as kill -9 would
        async with pg_nodes(tmp_path / "b", url, 1, node_id=6, node_lease=1.0) as (second,):
            assert second.node_id == 6


async def _crash(node: Node) -> None:
    task, node.lease._task = node.lease._task, None
    assert task is not None
    task.cancel()
    node.lease._id = None


async def test_sqlite_leases_a_node_id_too(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        assert node.node_id == MAX_NODE_ID
        assert node_of(await _send(node, "x")) == MAX_NODE_ID
    async with running_node(tmp_path, node_id=0) as node:
        assert node.node_id == 0 and node_of(await _send(node, "y")) == 0


class _Down:
    """A store whose node methods fail (the rest is the real store)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name in ("renew_node", "claim_node") and self.down:

            async def fail(*_: Any, **__: Any) -> Any:
                raise StoreUnavailable("the database is unavailable (test)")

            return fail
        return attr


async def test_no_message_id_is_issued_while_the_lease_is_not_renewed(tmp_path: Path) -> None:
    async with running_node(tmp_path, node_lease=0.6) as node:
        lease = node.lease
        down = _Down(lease._store)
        lease._store = down  # type: ignore[assignment]
        down.down = True
        await asyncio.sleep(0.6 * time_scale())  # more than two thirds of the lease
        assert not lease.valid()
        result = await _try_send(node)
        assert result == "refused"
        down.down = False
        await lease.renew()
        assert lease.valid() and await _try_send(node) == "sent"


async def _try_send(node: Node) -> str:
    try:
        await _send(node, f"t{asyncio.get_running_loop().time()}")
    except StoreUnavailable:
        return "refused"
    return "sent"


async def test_a_lost_id_stops_the_node(tmp_path: Path, pg_database: str) -> None:
    url = new_schema(pg_database, "lost")
    async with pg_nodes(tmp_path, url, 1, node_id=8, node_lease=0.6) as (node,):
        task, node.lease._task = node.lease._task, None
        assert task is not None
        task.cancel()
        await asyncio.sleep(0.8)
        async with pg_nodes(tmp_path / "b", url, 1, node_id=8, node_lease=30.0) as (other,):
            assert other.node_id == 8
            assert not await node.lease.renew()
            assert node.fatal.is_set() and "node id 8 was leased by another" in node.fatal_reason
            assert not node.lease.valid()


async def test_the_hlc_stays_monotonic_across_nodes_with_skewed_clocks(
    tmp_path: Path, pg_database: str
) -> None:
    """Node two's clock runs a minute behind; changes of one message made alternately on
    both nodes still get strictly increasing ``updated_at`` stamps (each stamp is after the
    stored one, inside the change's transaction)."""
    url = new_schema(pg_database, "hlc")
    async with pg_nodes(tmp_path, url, 2) as (one, two):
        behind = time.time_ns() // 1_000_000 - 60_000
        two.ext.hlc._clock_ms = lambda: behind
        mid = await _send(one, "hlc")
        stamps = []
        for i in range(10):
            node = (one, two)[i % 2]
            async with api(node) as http:
                r = await http.post(
                    "/message/extra/update",
                    json={"message_id": mid, "channel_id": fake_channel_id("alice", "bob"),
                          "channel_type": 1, "action_id": f"a{i}", "mode": "cas",
                          "expected_version": i, "status": f"s{i}"},
                )  # fmt: skip
                assert r.status_code == 200, r.text
                stamps.append(int(r.json()["data"]["updated_at"]))
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), stamps

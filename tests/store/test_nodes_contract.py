"""The store contract for node id leases (``magpie.domain.nodes``), on every backend of the
store contract suite: a named id is claimed once while its lease lives, any free id is
handed out once, renewals keep an id and publish addresses, a lapsed lease can be claimed
by another process (and then the old holder's renewal fails), release frees the id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from magpie.domain.nodes import MAX_NODE_ID, NodeClaim
from magpie.store.interface import Store
from tests.store.test_store_contract import BACKENDS, Backend, opened

LEASE = 30_000


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every backend of the store contract suite."""
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with opened(backend) as s:
        yield s


async def test_a_named_id_is_held_by_one_instance_at_a_time(store: Store) -> None:
    first = await store.claim_node(NodeClaim("A", LEASE, 7))
    assert first is not None and (first.node_id, first.instance) == (7, "A")
    assert first.expires_at_ms > first.started_at_ms
    assert await store.claim_node(NodeClaim("B", LEASE, 7)) is None, "a live lease is taken"
    assert await store.claim_node(NodeClaim("A", LEASE, 7)) is None, "even by its holder"
    assert await store.release_node(7, "B") is False, "only the holder releases"
    assert await store.release_node(7, "A") is True
    again = await store.claim_node(NodeClaim("B", LEASE, 7))
    assert again is not None and again.instance == "B"


async def test_free_ids_are_handed_out_once_highest_first(store: Store) -> None:
    await store.claim_node(NodeClaim("named", LEASE, MAX_NODE_ID - 1))
    got = await asyncio.gather(*(store.claim_node(NodeClaim(f"i{n}", LEASE)) for n in range(6)))
    ids = [row.node_id for row in got if row is not None]
    assert len(ids) == 6 and len(set(ids)) == 6, "concurrent claims never share an id"
    assert MAX_NODE_ID in ids and MAX_NODE_ID - 1 not in ids
    assert min(ids) >= MAX_NODE_ID - 6


async def test_renewal_keeps_the_id_and_publishes_the_addresses(store: Store) -> None:
    row = await store.claim_node(NodeClaim("A", LEASE, 3))
    assert row is not None and row.ws_url == ""
    assert [n.node_id for n in await store.live_nodes()] == [3]
    assert await store.renew_node(3, "A", LEASE, "ws://10.0.0.1:5200", "10.0.0.1:5100")
    assert not await store.renew_node(3, "B", LEASE, "ws://evil:1", ""), "not B's"
    (live,) = await store.live_nodes()
    assert (live.node_id, live.instance, live.ws_url, live.tcp_addr) == (
        3, "A", "ws://10.0.0.1:5200", "10.0.0.1:5100",
    )  # fmt: skip


async def test_a_lapsed_lease_is_free_and_its_old_holder_loses_it(store: Store) -> None:
    assert await store.claim_node(NodeClaim("A", 1, 5)) is not None  # 1 ms
    await asyncio.sleep(0.05)
    assert await store.live_nodes() == [], "a lapsed lease is not live"
    taken = await store.claim_node(NodeClaim("B", LEASE, 5))
    assert taken is not None and taken.instance == "B" and taken.ws_url == ""
    assert not await store.renew_node(5, "A", LEASE, "ws://a:1", ""), "A lost it"
    assert await store.release_node(5, "A") is False
    assert [n.instance for n in await store.live_nodes()] == ["B"]


async def test_an_unclaimed_lapsed_lease_can_be_renewed_by_its_holder(store: Store) -> None:
    assert await store.claim_node(NodeClaim("A", 1, 9)) is not None
    await asyncio.sleep(0.05)
    assert await store.renew_node(9, "A", LEASE, "ws://a:1", "")
    assert [n.node_id for n in await store.live_nodes()] == [9]


async def test_a_lapsed_id_is_reused_only_after_never_used_ones(store: Store) -> None:
    assert await store.claim_node(NodeClaim("A", 1, MAX_NODE_ID)) is not None
    await asyncio.sleep(0.05)
    row = await store.claim_node(NodeClaim("B", LEASE))
    assert row is not None and row.node_id == MAX_NODE_ID - 1

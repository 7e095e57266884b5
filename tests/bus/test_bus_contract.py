"""The bus contract: every backend must pass this suite (STYLE habit 9).

Backends plug in through ``BACKENDS`` (name -> factory of a :class:`Backend`). Tests about one
node run on every backend; tests about several nodes run on the backends that have nodes to
talk to (``multi_node``) — two bus instances are two nodes, against the same real Redis, under
a fresh cluster name per test (all under the run's random prefix, deleted at the end).

"Nothing arrived" is checked with a barrier, not a sleep: events from one node reach another
in publication order, so when a later event to the same node has arrived, an earlier one
that was due there would have arrived first.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis.asyncio as aioredis

from magpie.bus.interface import Bus, BusEvent, Delivery, Kick
from magpie.bus.memory import MemoryBus
from magpie.bus.redis import RedisBus, RedisBusConfig
from magpie.errors import ConfigError
from magpie.metrics import Metrics
from magpie.store.interface import StoredMessage
from tests.support.nodes import time_scale
from tests.support.redis import RedisServer, free_port, require_redis, run_prefix

T = 5 * time_scale()
#: Presence TTL in tests: a dead node is forgotten within 0.6 s (heartbeats every 0.2 s).
TTL = 0.6
ROOT = Path(__file__).resolve().parents[2]

_clusters = itertools.count(1)


def message(mid: int, channel: str = "g1", seq: int = 0) -> StoredMessage:
    return StoredMessage(mid, seq or mid, f"c{mid}", "alice", channel, 2, 1_700_000_000, b"{}")


def delivery(mid: int, *recipients: str, **kw: Any) -> Delivery:
    return Delivery(message(mid), tuple(recipients), **kw)


class Counting(Protocol):
    def connections(self, uid: str) -> int: ...


@dataclass
class Member:
    """One node of a test cluster: its bus, its metrics and what its handlers saw."""

    bus: Bus
    metrics: Metrics
    events: asyncio.Queue[BusEvent] = field(default_factory=asyncio.Queue)

    async def next(self, timeout: float = T) -> BusEvent:
        return await asyncio.wait_for(self.events.get(), timeout)

    def count(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


class Backend(Protocol):
    multi_node: bool

    def new_bus(self, node_id: int, metrics: Metrics, **settings: Any) -> Bus: ...


class MemoryBackend:
    multi_node = False

    def new_bus(self, node_id: int, metrics: Metrics, **settings: Any) -> Bus:
        return MemoryBus(node_id)


class RedisBackend:
    multi_node = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.cluster = f"{run_prefix()}-{next(_clusters)}"

    def config(self, node_id: int, **settings: Any) -> RedisBusConfig:
        settings.setdefault("presence_ttl", TTL)
        settings.setdefault("timeout", 2.0 * time_scale())
        return RedisBusConfig(self.url, self.cluster, node_id, **settings)

    def new_bus(self, node_id: int, metrics: Metrics, **settings: Any) -> Bus:
        return RedisBus(self.config(node_id, **settings), metrics)


def _redis() -> Backend:
    return RedisBackend(require_redis())


BACKENDS: dict[str, Callable[[], Backend]] = {"memory": MemoryBackend, "redis": _redis}


class Cluster:
    """Builds started members on one backend; closes them all at the end."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.members: list[Member] = []

    async def node(self, node_id: int, **settings: Any) -> Member:
        metrics = Metrics()
        bus = self.backend.new_bus(node_id, metrics, **settings)
        member = Member(bus, metrics)
        bus.subscribe(member.events.put_nowait)
        await bus.start()
        self.members.append(member)
        return member

    async def close(self) -> None:
        for member in self.members:
            await member.bus.close()


@pytest.fixture(params=sorted(BACKENDS))
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    c = Cluster(BACKENDS[request.param]())
    yield c
    await c.close()


@pytest.fixture(params=[name for name in sorted(BACKENDS) if name != "memory"])
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    """A cluster on each backend that has other nodes to talk to."""
    c = Cluster(BACKENDS[request.param]())
    assert c.backend.multi_node
    yield c
    await c.close()


async def eventually(check: Callable[[], Any], timeout: float = T, what: str = "") -> None:
    """Wait until ``check()`` is truthy (awaiting it if it returns an awaitable)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


# --- one node: every backend ----------------------------------------------------------------


async def test_own_handlers_see_an_event_before_publish_returns(cluster: Cluster) -> None:
    a = await cluster.node(1)
    event = delivery(1, "bob", exclude_conn="c7")
    await a.bus.publish(event)
    assert a.events.get_nowait() == event, "the publishing node delivers locally, in full"
    kick = Kick("bob", 1, 12, "login in other device", keep_conn="c9")
    await a.bus.publish(kick)
    assert a.events.get_nowait() == kick


async def test_a_failing_handler_does_not_stop_the_others(cluster: Cluster) -> None:
    a = await cluster.node(1)

    def broken(_: BusEvent) -> None:
        raise RuntimeError("handler bug")

    a.bus.subscribe(broken)
    seen: list[BusEvent] = []
    a.bus.subscribe(seen.append)
    await a.bus.publish(delivery(1, "bob"))
    assert len(seen) == 1 and a.events.qsize() == 1


async def test_healthy_after_start_and_node_id_kept(cluster: Cluster) -> None:
    a = await cluster.node(7)
    assert a.bus.health().ok, a.bus.health().detail
    assert a.bus.node_id == 7


async def test_registrations_are_counted_per_connection(cluster: Cluster) -> None:
    a = await cluster.node(1)
    bus: Counting = a.bus  # type: ignore[assignment]
    await a.bus.register("bob")
    await a.bus.register("bob")
    a.bus.unregister("bob")
    assert bus.connections("bob") == 1
    a.bus.unregister("bob")
    a.bus.unregister("bob")  # an extra departure is ignored, never negative
    assert bus.connections("bob") == 0


# --- several nodes ---------------------------------------------------------------------------


async def test_delivery_reaches_only_the_nodes_holding_recipients(nodes: Cluster) -> None:
    a, b, c = await nodes.node(1), await nodes.node(2), await nodes.node(3)
    await b.bus.register("bob")
    await c.bus.register("carol")
    await a.bus.publish(delivery(1, "alice", "bob", "dave"))
    got = await b.next()
    assert isinstance(got, Delivery)
    assert got.message == message(1) and got.recipients == ("bob",)
    await a.bus.publish(delivery(2, "carol"))  # barrier: C would have had message 1 first
    got = await c.next()
    assert isinstance(got, Delivery) and got.message.message_id == 2
    assert got.recipients == ("carol",)
    assert a.count("magpie_bus_frames_total") == 2, "one frame per event and holding node"


async def test_a_uid_on_two_nodes_reaches_both(nodes: Cluster) -> None:
    a, b, c = await nodes.node(1), await nodes.node(2), await nodes.node(3)
    await b.bus.register("bob")
    await c.bus.register("bob")
    await a.bus.register("bob")  # the publisher's own share is delivered locally only
    await a.bus.publish(delivery(1, "bob", "carol"))
    for member in (b, c):
        got = await member.next()
        assert isinstance(got, Delivery) and got.recipients == ("bob",)
    assert a.events.qsize() == 1
    assert a.count("magpie_bus_frames_total") == 2


async def test_connection_ids_stay_on_the_publishing_node(nodes: Cluster) -> None:
    a, b = await nodes.node(1), await nodes.node(2)
    await b.bus.register("bob")
    await a.bus.publish(delivery(1, "bob", exclude_conn="c1"))
    await a.bus.publish(Kick("bob", 0, 12, "login in other device", keep_conn="c1"))
    got = await b.next()
    assert isinstance(got, Delivery) and got.exclude_conn == ""
    assert await b.next() == Kick("bob", 0, 12, "login in other device")


async def test_kicks_cross_nodes_to_the_holders_only(nodes: Cluster) -> None:
    a, b, c = await nodes.node(1), await nodes.node(2), await nodes.node(3)
    await b.bus.register("bob")
    await c.bus.register("carol")
    await a.bus.publish(Kick("bob", None, 12, "bye"))
    assert await b.next() == Kick("bob", None, 12, "bye")
    await a.bus.publish(Kick("carol", 2, 12, "bye"))
    assert await c.next() == Kick("carol", 2, 12, "bye"), "C never had bob's kick"


async def test_queue_seqs_travel_with_the_recipients_of_each_node(nodes: Cluster) -> None:
    a, b, c = await nodes.node(1), await nodes.node(2), await nodes.node(3)
    await b.bus.register("bob")
    await c.bus.register("carol")
    await c.bus.register("dave")
    seqs = {"bob": 5, "carol": 9, "dave": 2**40}
    await a.bus.publish(delivery(1, "bob", "carol", "dave", queue_seqs=seqs))
    got_b, got_c = await b.next(), await c.next()
    assert isinstance(got_b, Delivery) and isinstance(got_c, Delivery)
    assert dict(got_b.queue_seqs) == {"bob": 5}
    assert got_c.recipients == ("carol", "dave")
    assert dict(got_c.queue_seqs) == {"carol": 9, "dave": 2**40}


async def test_big_recipient_lists_and_long_uids_are_routed_exactly(nodes: Cluster) -> None:
    """Lookups go in chunks and a big recipient list is split over routing calls (a node
    may then get one event as several frames, with disjoint recipients): uids at chunk edges,
    past a split, and 128 characters long still reach exactly their node, once each."""
    a, b, c = await nodes.node(1), await nodes.node(2), await nodes.node(3)
    members = [f"member{i:05d}" for i in range(12_000)]
    long_uid = "L" * 128
    on_b = [members[0], members[499], members[500], members[5_000], members[-1], long_uid]
    for uid in on_b:
        await b.bus.register(uid)
    await c.bus.register(members[7_777])
    seqs = {uid: i + 1 for i, uid in enumerate([*members, long_uid])}
    for mid in (1, 2):
        await a.bus.publish(delivery(mid, *members, long_uid, queue_seqs=seqs))
    for mid in (1, 2):
        got_b: list[str] = []
        got_seqs: dict[str, int] = {}
        while len(got_b) < len(on_b):
            got = await b.next()
            assert isinstance(got, Delivery) and got.message.message_id == mid
            got_b += got.recipients
            got_seqs.update(got.queue_seqs)
        assert got_b == on_b, "each recipient once, in order"
        assert got_seqs == {uid: seqs[uid] for uid in on_b}
        got = await c.next()
        assert isinstance(got, Delivery) and got.recipients == (members[7_777],)


async def test_events_from_one_node_arrive_in_order(nodes: Cluster) -> None:
    a, b = await nodes.node(1), await nodes.node(2)
    await b.bus.register("bob")
    for mid in range(1, 301):
        await a.bus.publish(delivery(mid, "bob"))
    got = [await b.next() for _ in range(300)]
    assert [e.message.message_id for e in got if isinstance(e, Delivery)] == list(range(1, 301))


async def test_register_returns_once_other_nodes_route_to_it(nodes: Cluster) -> None:
    a, b = await nodes.node(1), await nodes.node(2)
    for i in range(30):
        await b.bus.register(f"user{i}")
        await a.bus.publish(delivery(i, f"user{i}"))
        got = await b.next()
        assert isinstance(got, Delivery) and got.message.message_id == i


async def test_the_last_departure_stops_routing(nodes: Cluster) -> None:
    a, b = await nodes.node(1), await nodes.node(2)
    await b.bus.register("bob")
    await b.bus.register("bob")
    await b.bus.register("carol")
    b.bus.unregister("bob")
    await a.bus.publish(delivery(1, "bob"))
    assert (await b.next()).message.message_id == 1  # type: ignore[union-attr]
    b.bus.unregister("bob")
    await b.bus.register("carol")  # a round trip after the departure was written
    await a.bus.publish(delivery(2, "bob"))
    await a.bus.publish(delivery(3, "carol"))
    got = await b.next()
    assert isinstance(got, Delivery) and got.message.message_id == 3


async def test_a_closed_node_withdraws_its_registrations_and_lease(nodes: Cluster) -> None:
    a, b = await nodes.node(1), await nodes.node(2)
    await b.bus.register("bob")
    backend = nodes.backend
    assert isinstance(backend, RedisBackend)
    await b.bus.close()
    async with aioredis.Redis.from_url(backend.url) as r:
        assert await r.hget(f"{backend.cluster}:presence", "bob") is None
        assert not await r.exists(f"{backend.cluster}:node:2")
    assert not b.bus.health().ok
    await a.bus.publish(delivery(1, "bob"))
    await a.bus.close()
    assert a.count("magpie_bus_frames_total") == 0


async def test_clusters_sharing_one_redis_do_not_mix(nodes: Cluster) -> None:
    other = Cluster(BACKENDS["redis"]())
    try:
        a, b = await nodes.node(1), await nodes.node(2)
        b2 = await other.node(2)  # the same node id in another cluster
        await b.bus.register("bob")
        await b2.bus.register("bob")
        await a.bus.publish(delivery(1, "bob"))
        assert (await b.next()).message.message_id == 1  # type: ignore[union-attr]
        a2 = await other.node(1)
        await a2.bus.publish(delivery(2, "bob"))
        got = await b2.next()
        assert isinstance(got, Delivery) and got.message.message_id == 2
    finally:
        await other.close()


async def test_queue_bound_at_n_and_n_plus_1(nodes: Cluster) -> None:
    a, b = await nodes.node(1, queue_max=5), await nodes.node(2)
    await b.bus.register("bob")
    # publish() never suspends, so the pump cannot empty the queue between these calls.
    for mid in range(1, 6):
        await a.bus.publish(delivery(mid, "bob"))
    assert a.count("magpie_bus_dropped_total", reason="overflow") == 0
    await a.bus.publish(delivery(6, "bob"))
    assert a.count("magpie_bus_dropped_total", reason="overflow") == 1
    assert a.events.qsize() == 6, "local deliveries are never dropped"
    got = [await b.next() for _ in range(5)]
    assert [e.message.message_id for e in got if isinstance(e, Delivery)] == [1, 2, 3, 4, 5]
    await a.bus.publish(delivery(7, "bob"))
    assert (await b.next()).message.message_id == 7  # type: ignore[union-attr]


async def test_undecodable_frames_are_dropped_and_counted(nodes: Cluster) -> None:
    a, b = await nodes.node(1), await nodes.node(2)
    await b.bus.register("bob")
    backend = nodes.backend
    assert isinstance(backend, RedisBackend)
    async with aioredis.Redis.from_url(backend.url) as r:
        await r.publish(f"{backend.cluster}:events:2", b"\x00\x00\x00\x05garbage")
    await a.bus.publish(delivery(1, "bob"))
    assert (await b.next()).message.message_id == 1  # type: ignore[union-attr]
    assert b.count("magpie_bus_dropped_total", reason="undecodable") == 1


async def test_a_live_node_id_is_refused(nodes: Cluster) -> None:
    await nodes.node(4)
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        await nodes.node(4)
    assert err.value.key == "node_id" and "node 4 is live" in err.value.message
    assert time.monotonic() - started >= TTL, "it waited one TTL for a crashed holder"


async def test_unreachable_redis_at_start_names_bus_url() -> None:
    metrics = Metrics()
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    bus = RedisBus(RedisBusConfig(url, f"{run_prefix()}-x", 1, timeout=1.0), metrics)
    with pytest.raises(ConfigError) as err:
        await bus.start()
    assert err.value.key == "bus_url" and "cannot reach Redis" in err.value.message
    assert "secret" not in str(err.value)
    assert not bus.health().ok
    await bus.close()


# --- crashes and outages ---------------------------------------------------------------------


async def _crashed_node(backend: RedisBackend, node_id: int, *uids: str) -> None:
    """Start a bus node in another process, registering ``uids``, then ``kill -9`` it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bus.node_proc", backend.url, backend.cluster,
        str(node_id), str(TTL), *uids,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20 * time_scale())
        assert line.strip() == b"ready", line
    finally:
        proc.kill()
        await proc.wait()


async def test_a_dead_nodes_registrations_expire(nodes: Cluster) -> None:
    backend = nodes.backend
    assert isinstance(backend, RedisBackend)
    a = await nodes.node(1)
    await _crashed_node(backend, 9, "bob", "carol")
    presence = f"{backend.cluster}:presence"
    async with aioredis.Redis.from_url(backend.url) as r:
        assert await r.hget(presence, "bob") == b"9", "the crash left its registration behind"

        async def purged() -> bool:
            return await r.hlen(presence) == 0

        await eventually(purged, 5 * TTL + T, "the purge of node 9")
        assert not await r.exists(f"{backend.cluster}:node:9")
    await a.bus.publish(delivery(1, "bob", "carol"))
    await a.bus.close()
    assert a.count("magpie_bus_frames_total") == 0


async def test_a_restarted_node_id_waits_out_its_predecessor(nodes: Cluster) -> None:
    backend = nodes.backend
    assert isinstance(backend, RedisBackend)
    a = await nodes.node(1)
    await _crashed_node(backend, 5, "stale")
    b = await nodes.node(5)  # waits until the dead predecessor's lease expired
    await b.bus.register("bob")
    async with aioredis.Redis.from_url(backend.url) as r:

        async def cleaned() -> bool:
            return await r.hget(f"{backend.cluster}:presence", "stale") is None

        await eventually(cleaned, what="the predecessor's registration removed")
    await a.bus.publish(delivery(1, "stale", "bob"))
    got = await b.next()
    assert isinstance(got, Delivery) and got.recipients == ("bob",)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_redis_restart_mid_test(private_redis: RedisServer) -> None:
    backend = RedisBackend(private_redis.url)
    nodes = Cluster(backend)
    try:
        a, b = await nodes.node(1, timeout=0.5), await nodes.node(2, timeout=0.5)
        await b.bus.register("bob")
        await a.bus.publish(delivery(1, "bob"))
        assert (await b.next()).message.message_id == 1  # type: ignore[union-attr]

        private_redis.stop()
        await eventually(lambda: not a.bus.health().ok and not b.bus.health().ok)
        started = time.monotonic()
        await a.bus.publish(delivery(2, "bob"))
        await b.bus.register("carol")  # a connect during the outage does not hang
        assert time.monotonic() - started < 1.0 * time_scale()
        assert a.events.qsize() == 2, "local deliveries go on while Redis is down"
        assert a.count("magpie_bus_dropped_total", reason="down") == 1

        private_redis.start()  # an empty Redis: every registration and lease is gone
        await eventually(lambda: a.bus.health().ok and b.bus.health().ok, 20 * time_scale())
        await a.bus.publish(delivery(3, "bob", "carol"))
        got = await b.next()
        assert isinstance(got, Delivery) and got.message.message_id == 3
        assert got.recipients == ("bob", "carol"), "registrations were restored"
    finally:
        await nodes.close()

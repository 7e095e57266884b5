"""PostgreSQL-only guarantees: several nodes (processes, pools) on one database.

The store contract suite (``test_store_contract.py``) already runs on PostgreSQL; these tests
cover what one process cannot show: seqs and dedupe across processes, CAS across pools, the
migration lock, lock ordering between batches (no deadlock), lost connections and an
unreachable server.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from magpie.domain.ext import Actor, Decision, ExtAttempt, ExtState, Fields, Result
from magpie.errors import ConfigError, MigrationError, StoreUnavailable
from magpie.store._migrations import load_migrations
from magpie.store.interface import NewMessage
from magpie.store.postgres import PostgresStore
from tests.support.nodes import settle, time_scale
from tests.support.postgres import new_schema

GROUP = 2


@pytest.fixture
def url(pg_database: str) -> str:
    """A fresh schema of the session database."""
    return new_schema(pg_database, "node")


@asynccontextmanager
async def opened(url: str, **options: int) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url, pool_size=options.pop("pool_size", 4), **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def msg(message_id: int, key: str, from_uid: str, channel_id: str = "g1") -> NewMessage:
    return NewMessage(message_id, key, from_uid, channel_id, GROUP, 1_700_000_000, b"{}", 2)


async def _sql(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_processes_inserting_into_one_channel_get_gap_free_seqs(url: str) -> None:
    workers, count = 3, 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.pg_worker", url, str(w), str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120 * time_scale())
        assert proc.returncode == 0
        outputs.append(json.loads(out))
    seqs = sorted(s for o in outputs for s in o["seqs"])
    stored = await _sql(url, "SELECT message_seq FROM messages WHERE channel_id = 'hot' ORDER BY 1")
    total = workers * count + count  # every worker's own messages + one per shared key
    assert [r[0] for r in stored] == list(range(1, total + 1)), "gap-free, each seq once"
    assert len(set(seqs)) == len(seqs) == workers * count
    # every shared key stored once; every worker got that one message back
    shared = [o["shared"] for o in outputs]
    for i in range(count):
        answers = {(s[i][0], s[i][1]) for s in shared}
        assert len(answers) == 1, f"shared-{i} has one original"
        assert sum(not s[i][2] for s in shared) == 1, "exactly one worker stored it"
    rows = await _sql(url, "SELECT count(*) FROM messages WHERE from_uid = 'dup'")
    assert rows[0][0] == count
    bob = await _sql(url, "SELECT unread, last_msg_seq FROM conversations WHERE uid = 'bob'")
    assert tuple(bob[0]) == (total, total)


async def test_concurrent_duplicates_from_several_pools_store_one_row(url: str) -> None:
    async with opened(url) as a, opened(url) as b, opened(url) as c:
        stores = [a, b, c]
        results = await asyncio.gather(
            *(
                stores[n % 3].append_message(msg(100 + n, "same", "alice"), ["bob"])
                for n in range(30)
            )
        )
        assert sum(not r.duplicate for r in results) == 1
        assert len({r.message for r in results}) == 1
        assert await a.max_seq("g1", GROUP) == 1
    count = await _sql(url, "SELECT count(*) FROM messages")
    assert count[0][0] == 1


def _cas(expected: int) -> object:
    def decide(state: ExtState) -> Decision:
        if state.version != expected:
            return Decision.rejected(Result.CONFLICT, "lost", base_version=expected)
        return Decision.applied(Fields(status=f"v{expected + 1}"), updated_at=expected + 1)

    return decide


async def test_cas_from_many_pools_has_one_winner_per_version(url: str) -> None:
    async with opened(url) as a, opened(url) as b, opened(url) as c:
        stores = [a, b, c]
        await a.append_message(msg(1, "m", "alice"), [])

        async def racer(task: int) -> list[int]:
            store, won = stores[task % 3], []
            for rnd in range(4):
                state = await store.get_ext(1)
                version = state.version if state is not None else 0
                attempt = ExtAttempt(1, f"{task}-{rnd}", Actor("u", "d"), "cas", {}, 0)
                out = await store.update_ext(attempt, _cas(version))  # type: ignore[arg-type]
                assert out is not None
                if out.applied:
                    won.append(out.op.version_after)
            return won

        wins = [v for won in await asyncio.gather(*(racer(t) for t in range(24))) for v in won]
        final = await c.get_ext(1)
        assert final is not None and sorted(wins) == list(range(1, final.version + 1))
        assert final.extra_version == final.version, "one extra_version per applied change"
        ops = await b.list_ops(1, 0, 1000)
        assert len(ops) == 96
        applied = [o.version_after for o in ops if o.result is Result.APPLIED]
        assert sorted(applied) == sorted(wins)


async def test_two_openers_migrate_once(url: str) -> None:
    one, two = (
        PostgresStore(url, pool_size=2, writers=1),
        PostgresStore(url, pool_size=2, writers=1),
    )
    await asyncio.gather(one.open(), two.open())
    try:
        assert one.epoch == two.epoch
    finally:
        await one.close()
        await two.close()
    versions = await _sql(url, "SELECT version FROM schema_migrations ORDER BY 1")
    packaged = [m.version for m in load_migrations("postgres_migrations")]
    assert [r[0] for r in versions] == packaged == list(range(1, len(packaged) + 1))


async def test_a_newer_schema_is_refused_with_both_versions(url: str) -> None:
    async with opened(url):
        pass
    known = len(load_migrations("postgres_migrations"))
    future = known + 1
    row = f"({future}, 'future.sql', 0)"
    await _sql(url, f"INSERT INTO schema_migrations VALUES {row}")  # noqa: S608 (our ints)
    store = PostgresStore(url, pool_size=2, writers=1)
    with pytest.raises(
        MigrationError, match=rf"version {future}, newer than this Magpie knows \({known}\)"
    ):
        await store.open()
    await store.close()


async def test_batches_of_several_nodes_never_deadlock(url: str, pg_database: str) -> None:
    """Appends to many channels whose recipient sets overlap, in every order, from three
    pools at once: without the lock statement of each batch they deadlock."""
    uids = [f"u{i}" for i in range(12)]
    rng = random.Random(7)
    before = await _deadlocks(pg_database)
    async with opened(url) as a, opened(url) as b, opened(url) as c:
        stores = [a, b, c]
        sends = [
            stores[n % 3].append_message(
                msg(n + 1, f"k{n}", "alice", f"g{n % 9}"), rng.sample(uids, 6)
            )
            for n in range(900)
        ]
        results = await asyncio.gather(*sends)
    assert sum(r.duplicate for r in results) == 0
    total = await _sql(url, "SELECT sum(last_seq) FROM channel_seq")
    assert total[0][0] == 900
    assert await _deadlocks(pg_database) == before


async def _deadlocks(database_url: str) -> int:
    # The statistics of exited backends are flushed when they exit (our pools are closed).
    await settle(0.2)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(
            await conn.fetchval(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            )
        )
    finally:
        await conn.close()


async def test_a_connection_lost_mid_write_is_unavailable_and_writes_nothing(url: str) -> None:
    app_url = url + "&application_name=magpie_lost_conn"
    async with opened(app_url) as store:
        await store.append_message(msg(1, "a", "alice"), ["bob"])
        blocker = await asyncpg.connect(url)
        try:
            async with blocker.transaction():
                await blocker.execute("SELECT * FROM channel_seq FOR UPDATE")
                pending = asyncio.create_task(store.append_message(msg(2, "b", "alice"), ["bob"]))
                await settle(0.3)  # the append now waits for the channel's row
                await blocker.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'magpie_lost_conn'"
                )
                with pytest.raises(StoreUnavailable):
                    await pending
        finally:
            await blocker.close()
        assert await store.get_message(2) is None, "nothing of it committed"
        again = await store.append_message(msg(2, "b", "alice"), ["bob"])
        assert (again.duplicate, again.message.message_seq) == (False, 2)
        bob = await _sql(url, "SELECT unread FROM conversations WHERE uid = 'bob'")
        assert bob[0][0] == 2


async def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = PostgresStore(f"postgresql://magpie@127.0.0.1:{port}/none", connect_timeout=5)
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}/none"):
        await store.open()
    await store.close()


@pytest.mark.parametrize("bad", ["mysql://x@h/db", "postgresql://h:99999/db", "/var/db"])
def test_a_bad_url_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="store_url"):
        PostgresStore(bad)

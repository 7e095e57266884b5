"""PostgreSQL store: acked appends/s from 100 concurrent senders, beside raw asyncpg inserts
of the same rows and beside the SQLite store (``synchronous=FULL``). Target: ≥ 0.5× raw.

Every sender awaits each append before the next (an "ack" = the store method returned, i.e.
after COMMIT). Two workloads: **person** (each sender in its own channel, two recipients) and
**group** (all senders in one channel: every append takes the same seq row lock). Rows:

* ``raw asyncpg insert`` — the baseline: one ``INSERT`` of the same message row (seq
  computed by the client) per send, autocommit, over a pool of 20 connections;
* ``PostgresStore`` — the shipped configuration: pipelined batches on 2 writer connections
  (dedupe, seq, insert and both recipients' conversations, see ``store/_pg_writer.py``);
* ``PostgresStore, 1 txn per send`` — the same statements without batching, over a pool of 20
  connections (``max_batch=1``), i.e. relying on PostgreSQL's own grouping of WAL flushes;
* ``SqliteStore FULL`` — the embedded default (group commit).

The server is ``MAGPIE_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/
postgres``); the benchmark creates a database of its own and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench._servers import percentile
from magpie.store.interface import NewMessage, Store
from magpie.store.postgres import PostgresStore
from magpie.store.sqlite import SqliteStore

SENDERS = 100
SECONDS = float(os.environ.get("MAGPIE_BENCH_SECONDS", "5"))
SERVER = os.environ.get(
    "MAGPIE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PAYLOAD = b'{"type":1,"content":"' + b"x" * 170 + b'"}'
RED_DOT = 0x02

Send = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Result:
    """One row of the table."""

    name: str
    rate: float
    p50_ms: float
    p99_ms: float


def _message(sender: int, n: int, group: bool) -> NewMessage:
    channel = ("hot", 2) if group else (f"s{sender}@peer{sender}", 1)
    return NewMessage(
        message_id=sender * 10_000_000 + n + 1,
        client_msg_no=f"c{sender}-{n}-{uuid.uuid4().hex[:6]}",
        from_uid=f"s{sender}",
        channel_id=channel[0],
        channel_type=channel[1],
        timestamp=1_700_000_000 + n,
        payload=PAYLOAD,
        flags=RED_DOT,
    )


async def _measure(name: str, send: Send) -> Result:
    """Every sender appends one at a time for SECONDS (after a short warm-up)."""
    latencies: list[float] = []
    counters = [0] * SENDERS

    async def sender(i: int, stop: float, record: bool) -> None:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            await send(i, counters[i])
            counters[i] += 1
            if record:
                latencies.append(time.perf_counter() - t0)

    warm = time.monotonic() + 0.5
    await asyncio.gather(*(sender(i, warm, False) for i in range(SENDERS)))
    before = sum(counters)
    t0 = time.monotonic()
    await asyncio.gather(*(sender(i, t0 + SECONDS, True) for i in range(SENDERS)))
    rate = (sum(counters) - before) / (time.monotonic() - t0)
    return Result(name, rate, percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3)


async def _with_database(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fresh_schema(database_url: str) -> str:
    schema = f"b_{uuid.uuid4().hex[:10]}"
    await _with_database(database_url, f'CREATE SCHEMA "{schema}"')
    return f"{database_url}?search_path={schema}"


_RAW_INSERT = """
    INSERT INTO messages (message_id, message_seq, client_msg_no, from_uid, channel_id,
        channel_type, timestamp, payload, flags, setting, topic, expire)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"""


async def _raw(url: str, group: bool) -> Result:
    """The plain baseline on the store's own schema (same table, same indexes)."""
    setup = PostgresStore(url, pool_size=2, writers=1)
    await setup.open()  # creates the schema
    await setup.close()
    pool = await asyncpg.create_pool(url, min_size=20, max_size=20)
    try:

        async def send(i: int, n: int) -> None:
            m = _message(i, n, group)
            seq = n * SENDERS + i + 1  # unique per channel, as the store would give
            await pool.execute(
                _RAW_INSERT,
                m.message_id,
                seq,
                m.client_msg_no,
                m.from_uid,
                m.channel_id,
                m.channel_type,
                m.timestamp,
                m.payload,
                m.flags,
                0,
                "",
                0,
            )

        return await _measure("raw asyncpg insert (pool 20)", send)
    finally:
        await pool.close()


async def _store(name: str, store: Store, group: bool) -> Result:
    await store.open()
    try:

        async def send(i: int, n: int) -> None:
            await store.append_message(
                _message(i, n, group), [f"s{i}", "bob" if group else f"peer{i}"]
            )

        return await _measure(name, send)
    finally:
        await store.close()


async def _workload(database_url: str, group: bool) -> list[Result]:
    results = [await _raw(await _fresh_schema(database_url), group)]
    batched = PostgresStore(await _fresh_schema(database_url))
    results.append(await _store("PostgresStore (batched)", batched, group))
    single = PostgresStore(await _fresh_schema(database_url), pool_size=21, writers=20, max_batch=1)
    results.append(await _store("PostgresStore, 1 txn per send", single, group))
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "bench.db", synchronous="FULL")
        results.append(await _store("SqliteStore FULL", sqlite, group))
    return results


def _print(title: str, results: list[Result]) -> None:
    base = results[0].rate
    print(f"-- {title}: {SENDERS} senders, {SECONDS:.0f} s each")
    print(f"{'':34}{'acked/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'vs raw':>9}")
    for r in results:
        ratio = r.rate / base if base else 0.0
        print(f"{r.name:34}{r.rate:>10.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{ratio:>8.2f}x")


async def _main() -> None:
    name = f"magpie_bench_{uuid.uuid4().hex[:10]}"
    await _with_database(SERVER, f'CREATE DATABASE "{name}"')
    parts = urlsplit(SERVER)
    database_url = urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    try:
        _print("person channels (one per sender)", await _workload(database_url, group=False))
        _print("one group channel (all senders)", await _workload(database_url, group=True))
    finally:
        await _with_database(SERVER, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run() -> None:
    """Print the table (the machine is shared: indicative figures)."""
    asyncio.run(_main())

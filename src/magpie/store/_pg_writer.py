"""Batched, pipelined commits of message appends on PostgreSQL (the equivalent of the SQLite
writer's group commit).

Each append is one self-contained SQL statement (dedupe → the channel's next seq → insert →
conversations, or → queue seqs), so a single append is one round trip and one transaction.
Under load the :class:`BatchWriter` takes every append queued on a lane while the lane's
previous batch ran (up to ``max_batch``; a channel always uses the same lane, so one
channel's appends commit in submission order) and sends them as ONE transaction: a lock
statement, then the appends *pipelined* (asyncpg ``fetchmany``: all executions in one
network write, no round trip per statement), then one ``COMMIT`` — one WAL flush and a
handful of round trips for the whole batch. Callers learn their result only after that
``COMMIT`` (I1).

Measured against the alternatives (``python -m bench pgstore``): one transaction per append
over a pool pays a flush per append, and on a busy channel every append waits for the
previous one's flush (the channel's seq row is locked until commit); an explicit transaction
with a savepoint per append costs three round trips per append. Pipelined batches beat both.

Why the lock statement: batches of different connections (and of other nodes) lock the same
counter rows. Each batch first locks every ``channel_seq``, ``conversation_clock`` and
``queue_counter`` row it will touch, table by table, each in sorted key order (an upsert with
``DO UPDATE … WHERE false`` locks a row without writing it, and creates missing ones), so
every batch acquires its locks in one global order and batches can wait for each other but
never deadlock. A lone append needs no lock statement: its own statement takes the channel
row, then its recipients' rows in sorted order — the same global order.

Failures: if the batch's transaction fails (a concurrent duplicate from another node, a
``message_id`` clash, a value the database refuses), it is rolled back and its appends run
again one by one, each in its own transaction, so only the faulty one fails. A lost
connection fails the whole batch with :class:`~magpie.errors.StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from magpie.errors import StoreError
from magpie.store._pg_setup import UNAVAILABLE, attempt

__all__ = ["Append", "BatchWriter"]

#: Runs of a lone append whose insert met a concurrent duplicate (the next run returns it).
_DUPLICATE_RUNS = 3

_LOCK_ROWS = """
    WITH channels AS (
        INSERT INTO channel_seq (channel_id, channel_type, last_seq)
        SELECT c, t, 0 FROM unnest($1::text[], $2::integer[]) AS k(c, t)
        ON CONFLICT (channel_id, channel_type) DO UPDATE SET last_seq = channel_seq.last_seq
        WHERE false
        RETURNING 1
    ), clocks AS (
        INSERT INTO conversation_clock (uid, last_version)
        SELECT u, 0 FROM unnest($3::text[]) AS u
        WHERE (SELECT count(*) FROM channels) >= 0  -- after every channel row
        ON CONFLICT (uid) DO UPDATE SET last_version = conversation_clock.last_version
        WHERE false
        RETURNING 1
    ), queues AS (
        INSERT INTO queue_counter (uid)
        SELECT u FROM unnest($4::text[]) AS u
        WHERE (SELECT count(*) FROM clocks) >= 0  -- after every clock row
        ON CONFLICT (uid) DO UPDATE SET last_seq = queue_counter.last_seq
        WHERE false
        RETURNING 1
    )
    SELECT count(*) FROM queues"""


@dataclass(frozen=True, slots=True)
class Append:
    """One append statement: ``sql`` with ``args``; the message's ``channel`` (its lane, and
    the seq row it takes when ``takes_seq``); the uids whose clock or queue rows it takes."""

    what: str
    sql: str
    args: tuple[Any, ...]
    channel: tuple[str, int]
    takes_seq: bool
    clock_uids: Sequence[str] = ()
    queue_uids: Sequence[str] = ()


@dataclass(slots=True)
class _Pending:
    job: Append
    future: asyncio.Future[asyncpg.Record] = field(repr=False)


class BatchWriter:
    """Runs :class:`Append` statements in batches on ``writers`` lanes, one connection each.

    A channel's appends always take the same lane, and a lane runs one batch at a time in
    submission order, so the appends of one channel commit in the order they were submitted
    (as with SQLite's single writer) — the seqs, and the order in which the callers deliver,
    follow that order. Different channels' lanes commit in parallel."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], *, writers: int, max_batch: int) -> None:
        if writers < 1 or max_batch < 1:
            raise ValueError("writers and max_batch must be at least 1")
        self._pool = pool
        self._max_batch = max_batch
        self._lanes: list[deque[_Pending]] = [deque() for _ in range(writers)]
        self._tasks: dict[int, asyncio.Task[None]] = {}

    async def submit(self, job: Append) -> asyncpg.Record:
        """Queue ``job``; its row, once the transaction that ran it has committed."""
        future: asyncio.Future[asyncpg.Record] = asyncio.get_running_loop().create_future()
        lane = zlib.crc32(job.channel[0].encode()) % len(self._lanes)
        self._lanes[lane].append(_Pending(job, future))
        if lane not in self._tasks:
            self._tasks[lane] = asyncio.create_task(self._drain(lane))
        return await future

    async def close(self) -> None:
        """Wait until every queued append has run."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _drain(self, lane: int) -> None:
        pending = self._lanes[lane]
        try:
            while pending:
                n = min(len(pending), self._max_batch)
                batch = [pending.popleft() for _ in range(n)]
                try:
                    rows = await self._run(batch)
                except Exception as exc:  # settle every caller, whatever went wrong
                    for item in batch:
                        _settle(item.future, exc)
                    continue
                for item, row in zip(batch, rows, strict=True):
                    _settle(item.future, row)
        finally:
            # No await between the empty check and this: a later submit starts a new task.
            del self._tasks[lane]

    async def _run(self, batch: list[_Pending]) -> list[asyncpg.Record | BaseException]:
        if len(batch) > 1:
            try:
                return list(await attempt("append", lambda: self._run_batch(batch)))
            except StoreError as exc:
                if isinstance(exc.__cause__, UNAVAILABLE):
                    raise
        return [await self._run_alone(item.job) for item in batch]

    async def _run_batch(self, batch: list[_Pending]) -> list[asyncpg.Record]:
        jobs = [item.job for item in batch]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK_ROWS, *_lock_keys(jobs))
            rows: dict[int, asyncpg.Record] = {}
            for sql in dict.fromkeys(job.sql for job in jobs):  # one pipeline per statement
                indexes = [i for i, job in enumerate(jobs) if job.sql == sql]
                got = await conn.fetchmany(sql, [jobs[i].args for i in indexes])
                if len(got) != len(indexes):
                    raise StoreError("an append statement returned no row")
                rows.update(zip(indexes, got, strict=True))
        return [rows[i] for i in range(len(jobs))]

    async def _run_alone(self, job: Append) -> asyncpg.Record | BaseException:
        """One append in its own transaction; its error is returned, not raised."""
        for run in range(1, _DUPLICATE_RUNS + 1):
            try:
                row = await attempt(job.what, lambda: self._pool.fetchrow(job.sql, *job.args))
            except StoreError as exc:
                cause = exc.__cause__
                duplicate = isinstance(cause, asyncpg.UniqueViolationError) and (
                    cause.constraint_name == "messages_dedupe"
                )
                if not duplicate or run == _DUPLICATE_RUNS:
                    return exc
                continue
            if row is None:
                return StoreError("an append statement returned no row")
            return row
        raise AssertionError("unreachable")


def _lock_keys(jobs: Sequence[Append]) -> tuple[list[str], list[int], list[str], list[str]]:
    """The rows a batch locks, each kind in sorted order (the global lock order)."""
    channels = sorted({job.channel for job in jobs if job.takes_seq})
    clocks = sorted({uid for job in jobs for uid in job.clock_uids})
    queues = sorted({uid for job in jobs for uid in job.queue_uids})
    return [c for c, _ in channels], [t for _, t in channels], clocks, queues


def _settle(future: asyncio.Future[asyncpg.Record], outcome: object) -> None:
    if future.done():  # the caller was cancelled; the transaction committed anyway
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)  # type: ignore[arg-type]

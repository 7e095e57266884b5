"""Group commit for the SQLite writer: many transaction functions, one COMMIT.

Each write method of :class:`~magpie.store.sqlite.SqliteStore` is a *transaction function*.
Run one at a time, each pays a whole ``COMMIT`` (with ``synchronous=FULL``, an fsync) and a
thread hand-off, which caps the send path at a few thousand messages per second. Here the
writer thread takes every function queued so far (up to ``max_batch``) and runs them, in
submission order, inside ONE ``BEGIN IMMEDIATE`` … ``COMMIT``, each function inside its own
``SAVEPOINT``:

* a function that raises is rolled back alone; the others still commit. The functions first
  run one after another with no ``SAVEPOINT`` between them (a savepoint costs two statements,
  and makes FTS5 write its pending index as a segment of its own, ≈ 15–40 µs per message);
  only when one raises is the transaction rolled back and the batch run again, each function
  inside its own ``SAVEPOINT``. So a transaction function may run twice: it must have no
  effect outside its connection (every store method's function is a pure function of the
  database and its arguments);
* every caller learns its result only after the batch's ``COMMIT`` returned, so "the method
  returned" still means "durable" (I1);
* functions still run one after another on one connection, so the per-channel seq and dedupe
  logic see each other's writes exactly as before (I2, I3);
* if ``COMMIT`` itself fails, every function of the batch fails and nothing of it is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["GroupCommit"]

Job = Callable[[sqlite3.Connection], Any]


class GroupCommit:
    """Queue of transaction functions drained in batches by the single writer thread."""

    def __init__(self, pool: ThreadPoolExecutor, max_batch: int = 512) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: deque[tuple[Job, asyncio.Future[Any]]] = deque()
        self._draining = False
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def depth(self) -> int:
        """Transaction functions queued and not yet taken by the writer (a metrics probe)."""
        return len(self._pending)

    def bind(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        """Use ``conn`` (owned by the writer thread) and settle futures on ``loop``."""
        self._conn = conn
        self._loop = loop

    def submit(self, job: Job) -> asyncio.Future[Any]:
        """Queue ``job``; the future resolves after the COMMIT of the batch that ran it."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("GroupCommit.bind() first")
        fut: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._pending.append((job, fut))
            if self._draining:
                return fut
            self._draining = True
        self._pool.submit(self._drain)
        return fut

    def _take(self) -> list[tuple[Job, asyncio.Future[Any]]]:
        with self._lock:
            n = min(len(self._pending), self._max_batch)
            batch = [self._pending.popleft() for _ in range(n)]
            if not batch:
                self._draining = False
            return batch

    def _drain(self) -> None:
        """Writer thread: run batches until the queue is empty."""
        while batch := self._take():
            try:
                outcomes = self._run_batch(batch)
            except Exception as exc:  # e.g. ROLLBACK TO failed: the batch is lost as a whole
                self._abort()
                outcomes = [(fut, False, exc) for _, fut in batch]
            self._settle(outcomes)

    def _abort(self) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _run_batch(
        self, batch: list[tuple[Job, asyncio.Future[Any]]]
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        conn = self._conn
        if conn is None:
            err = sqlite3.OperationalError("the writer connection is closed")
            return [(fut, False, err) for _, fut in batch]
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(fut, False, exc) for _, fut in batch]
        outcomes = _run_all(conn, batch)
        if isinstance(outcomes, Exception):  # one raised: all rolled back; again, savepoints
            if len(batch) == 1:
                return [(batch[0][1], False, outcomes)]
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                return [(fut, False, exc) for _, fut in batch]
            outcomes = [(fut, *_run_one(conn, job)) for job, fut in batch]
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return [(fut, False, exc) for fut, _, _ in outcomes]
        return outcomes

    def _settle(self, outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
        # One wake-up of the event loop per batch, not per job.
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(_set_all, outcomes)


def _run_all(
    conn: sqlite3.Connection, batch: list[tuple[Job, asyncio.Future[Any]]]
) -> list[tuple[asyncio.Future[Any], bool, Any]] | Exception:
    """Every job in order, no savepoints; on the first exception the transaction is rolled
    back and the exception returned."""
    outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
    for job, fut in batch:
        try:
            outcomes.append((fut, True, job(conn)))
        except Exception as exc:
            if conn.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
                conn.execute("ROLLBACK")
            return exc
    return outcomes


def _run_one(conn: sqlite3.Connection, job: Job) -> tuple[bool, Any]:
    conn.execute("SAVEPOINT job")
    try:
        value = job(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return False, exc
    conn.execute("RELEASE job")
    return True, value


def _set_all(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in outcomes:
        if fut.done():  # the caller was cancelled; the transaction committed anyway
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

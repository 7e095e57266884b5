"""Durable card deadlines: the card service's own small SQLite file, and a timer over it.

Like a separate business server with its own database, the card service keeps what the IM
does not: pending deadlines (``expires_at``, ``closes_at``, ``due``) and the secret its
pseudonyms and action-id namespaces are keyed with. :class:`CardDb` owns one SQLite
connection on one worker thread (:mod:`magpie.sqlite_worker`); :class:`Scheduler` keeps
the pending deadlines in a heap, sleeps until the earliest, and calls ``fire(message_id,
action)``. A deadline is deleted only after ``fire`` returned true (applied, or no longer
applicable), so a crash or restart re-arms it: :meth:`Scheduler.start` loads every pending
row, and one already past fires at once. A failing ``fire`` is retried after
``retry_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from magpie.sqlite_worker import SqliteWorker

__all__ = ["CardDb", "Fire", "Scheduler"]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Fires one deadline; true when it is done with (applied or moot), false to retry later.
Fire = Callable[[int, str], Awaitable[bool]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS deadlines (
    message_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (message_id, action)
);
"""
#: Bytes of the service secret (HMAC-SHA256 key).
SECRET_BYTES = 32
#: Longest single sleep of the timer: bounds the effect of a wall-clock jump.
MAX_SLEEP_SECONDS = 30.0


class CardDb:
    """The card service's SQLite file: ``deadlines`` and ``meta`` (the secret), on one
    worker thread (:class:`~magpie.sqlite_worker.SqliteWorker`)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._worker: SqliteWorker | None = None

    async def open(self) -> None:
        """Create or open the file."""
        await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)
        worker = SqliteWorker(self._path, _setup, name="magpie-cards-db")
        await worker.start()
        self._worker = worker

    async def close(self) -> None:
        """Close the file and stop the worker."""
        if self._worker is not None:
            await self._worker.close()
            self._worker = None

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._worker is None:
            raise RuntimeError("the card database is not open")
        return await self._worker.run(job)

    async def secret(self) -> bytes:
        """The service secret, created on first use."""
        return await self._run(_secret)

    async def put(self, message_id: int, action: str, at_ms: int) -> None:
        """Record (or move) one deadline."""
        sql = "INSERT OR REPLACE INTO deadlines (message_id, action, at_ms) VALUES (?, ?, ?)"
        await self._run(partial(_exec, sql=sql, args=(message_id, action, at_ms)))

    async def delete(self, message_id: int, action: str | None = None) -> None:
        """Forget one deadline, or every deadline of the message."""
        if action is None:
            sql, args = "DELETE FROM deadlines WHERE message_id = ?", (message_id,)
            await self._run(partial(_exec, sql=sql, args=args))
            return
        sql = "DELETE FROM deadlines WHERE message_id = ? AND action = ?"
        await self._run(partial(_exec, sql=sql, args=(message_id, action)))

    async def pending(self) -> list[tuple[int, int, str]]:
        """Every pending deadline as ``(at_ms, message_id, action)``."""
        sql = "SELECT at_ms, message_id, action FROM deadlines"
        rows = await self._run(lambda conn: conn.execute(sql).fetchall())
        return [(int(a), int(m), str(x)) for a, m, x in rows]


def _setup(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(_SCHEMA)


def _secret(conn: sqlite3.Connection) -> bytes:
    fresh = secrets.token_bytes(SECRET_BYTES)
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret', ?)", (fresh,))
    row = conn.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
    return bytes(row[0])


def _exec(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> None:
    conn.execute(sql, args)


class Scheduler:
    """Fires card deadlines at their time, durably (see the module docstring)."""

    def __init__(
        self,
        db: CardDb,
        fire: Fire,
        *,
        clock_ms: Callable[[], int],
        retry_seconds: float = 1.0,
    ) -> None:
        self._db = db
        self._fire = fire
        self._clock_ms = clock_ms
        self._retry_ms = int(retry_seconds * 1000)
        self._heap: list[tuple[int, int, str]] = []
        self._armed: dict[tuple[int, str], int] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Re-arm every pending deadline and start the timer."""
        for at, message_id, action in await self._db.pending():
            self._arm(message_id, action, at)
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the timer after the deadline being fired, if any."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def add(self, message_id: int, action: str, at_ms: int) -> None:
        """Persist and arm one deadline."""
        await self._db.put(message_id, action, at_ms)
        self._arm(message_id, action, at_ms)

    async def cancel(self, message_id: int) -> None:
        """Forget every deadline of a message (it reached a terminal status)."""
        await self._db.delete(message_id)
        for key in [k for k in self._armed if k[0] == message_id]:
            del self._armed[key]

    def pending(self) -> dict[tuple[int, str], int]:
        """The armed deadlines (for tests and diagnostics)."""
        return dict(self._armed)

    def _arm(self, message_id: int, action: str, at_ms: int) -> None:
        self._armed[(message_id, action)] = at_ms
        heapq.heappush(self._heap, (at_ms, message_id, action))
        self._wake.set()

    def _due(self) -> tuple[int, str] | None:
        """The next due deadline, dropping heap entries that were moved or cancelled."""
        now = self._clock_ms()
        while self._heap and self._heap[0][0] <= now:
            at, message_id, action = heapq.heappop(self._heap)
            if self._armed.get((message_id, action)) == at:
                return message_id, action
        return None

    def _sleep_seconds(self) -> float:
        if not self._heap:
            return MAX_SLEEP_SECONDS
        wait = (self._heap[0][0] - self._clock_ms()) / 1000
        return min(max(wait, 0.0), MAX_SLEEP_SECONDS)

    async def _loop(self) -> None:
        while not self._stopping:
            due = self._due()
            if due is not None:
                await self._run_one(*due)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_seconds())

    async def _run_one(self, message_id: int, action: str) -> None:
        at = self._armed.pop((message_id, action))
        try:
            if await self._fire(message_id, action):
                await self._db.delete(message_id, action)
                return
        except Exception:  # the timer must survive any failure: log it and retry later
            log.exception("card deadline %s of message %d failed", action, message_id)
        if (message_id, action) not in self._armed:
            self._arm(message_id, action, max(at, self._clock_ms() + self._retry_ms))

"""One thread owns one SQLite connection and runs submitted calls in order (the aiosqlite idea).

Used by the SDK's cache (``magpie.client.cache``). Why a thread: ``sqlite3`` blocks, and a
commit with ``synchronous=FULL`` waits for the disk; the event loop must keep reading sockets
meanwhile.
Why only one: SQLite allows one writer at a time anyway, and a single thread makes every call
a serialised transaction with no locking of our own. Calls are plain functions
``fn(connection) -> result`` — a whole transaction of many statements is one call, one thread
hop — and the awaiting coroutine gets the result or the exception.

Why not ``aiosqlite``: it wraps each *statement* (``execute``, ``fetchall``, ``commit``) as
its own hop to the thread; running a function of ours on its thread is private API. Our
callers' transactions are many statements each (a page of messages, a sync's rows), so per
statement hops would multiply the event-loop round trips for the same work.

The server's store (``magpie.store.sqlite``) does not use this: its writer batches the
transactions queued meanwhile into one ``COMMIT`` (group commit, one fsync for many sends)
and its reads run on a pool of read-only connections, neither of which this helper does.

This module imports only the standard library, so every layer may use it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["SqliteWorker"]

log = logging.getLogger(__name__)

R = TypeVar("R")

_Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class SqliteWorker:
    """A thread with a SQLite connection to ``path`` (``":memory:"`` for none on disk), in
    autocommit mode (transactions are the caller's ``BEGIN`` … ``COMMIT``). ``setup`` runs
    first on the connection (pragmas, schema); ``name`` names the thread."""

    def __init__(
        self,
        path: str | Path,
        setup: Callable[[sqlite3.Connection], None],
        *,
        name: str = "magpie-sqlite",
    ) -> None:
        self._path = str(path)
        self._setup = setup
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def start(self) -> None:
        """Start the thread, open the connection and run ``setup`` on it (its error, or
        the connection's, is raised here and the worker is closed)."""
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        try:
            await self.run(self._setup)
        except BaseException:
            await self.close()
            raise

    async def run(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run ``fn(connection)`` on the thread and return its result."""
        if self._closed or self._thread is None:
            raise RuntimeError("the SQLite worker is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return await future

    async def close(self) -> None:
        """Finish queued calls, close the connection and stop the thread."""
        if self._closed or self._thread is None:
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    def _main(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # every call fails with it, so nobody waits forever
            while (job := self._jobs.get()) is not None:
                _settle_later(job[1], job[2], None, exc)
            return
        try:
            while (job := self._jobs.get()) is not None:
                _run_job(conn, *job)
        finally:
            conn.close()


def _run_job(
    conn: sqlite3.Connection,
    fn: Callable[[sqlite3.Connection], Any],
    future: asyncio.Future[Any],
    loop: asyncio.AbstractEventLoop,
) -> None:
    try:
        result, error = fn(conn), None
    except BaseException as exc:  # handed to the awaiting coroutine
        result, error = None, exc
    _settle_later(future, loop, result, error)


def _settle_later(
    future: asyncio.Future[Any],
    loop: asyncio.AbstractEventLoop,
    result: Any,
    error: BaseException | None,
) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, result, error)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        log.debug("SQLite call finished after its event loop closed")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)

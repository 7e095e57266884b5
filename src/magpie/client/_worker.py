"""One thread owns one SQLite connection and runs submitted calls in order (the aiosqlite idea).

Why a thread: ``sqlite3`` blocks, and a commit with ``synchronous=FULL`` waits for the disk;
the event loop must keep reading the socket meanwhile. Why only one: SQLite allows one writer
at a time anyway, and a single thread makes every call a serialised transaction with no
locking of our own. Calls are plain functions ``fn(connection) -> result``; the awaiting
coroutine gets the result or the exception.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["SqliteWorker"]

log = logging.getLogger(__name__)

R = TypeVar("R")

_Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class SqliteWorker:
    """A thread with a SQLite connection to ``path`` (``":memory:"`` for none on disk)."""

    def __init__(self, path: str, setup: Callable[[sqlite3.Connection], None]) -> None:
        self._path = path
        self._setup = setup
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def start(self) -> None:
        """Start the thread, open the connection and run ``setup`` on it."""
        self._thread = threading.Thread(target=self._main, name="magpie-client-cache", daemon=True)
        self._thread.start()
        await self.run(self._setup)

    async def run(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run ``fn(connection)`` on the thread and return its result."""
        if self._closed or self._thread is None:
            raise RuntimeError("the cache is closed")
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
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
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
    try:
        loop.call_soon_threadsafe(_settle, future, result, error)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        log.debug("cache call finished after its event loop closed")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)

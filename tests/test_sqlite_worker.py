"""The one-thread SQLite helper shared by the SDK cache and the card service."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from magpie.sqlite_worker import SqliteWorker


def _schema(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER NOT NULL)")


async def test_calls_run_in_order_on_one_thread(tmp_path: Path) -> None:
    worker = SqliteWorker(tmp_path / "w.db", _schema, name="test-worker")
    await worker.start()
    threads: set[str] = set()

    def insert(n: int, conn: sqlite3.Connection) -> int:
        threads.add(threading.current_thread().name)
        conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
        return n

    try:
        done = await asyncio.gather(*(worker.run(lambda c, n=n: insert(n, c)) for n in range(50)))
        rows = await worker.run(
            lambda c: [r[0] for r in c.execute("SELECT n FROM t ORDER BY rowid")]
        )
    finally:
        await worker.close()
    assert done == list(range(50)) and rows == list(range(50))
    assert threads == {"test-worker"}


async def test_an_error_reaches_the_caller_and_the_worker_goes_on(tmp_path: Path) -> None:
    worker = SqliteWorker(tmp_path / "w.db", _schema)
    await worker.start()
    try:
        with pytest.raises(sqlite3.OperationalError):
            await worker.run(lambda c: c.execute("SELECT * FROM missing"))
        assert await worker.run(lambda c: c.execute("SELECT 7").fetchone()[0]) == 7
    finally:
        await worker.close()
    with pytest.raises(RuntimeError, match="closed"):
        await worker.run(lambda c: None)
    await worker.close()  # twice is fine


async def test_a_file_that_cannot_be_opened_fails_start_instead_of_hanging(
    tmp_path: Path,
) -> None:
    worker = SqliteWorker(tmp_path / "no-such-dir" / "w.db", _schema)
    with pytest.raises(sqlite3.OperationalError):
        await asyncio.wait_for(worker.start(), 10)
    with pytest.raises(RuntimeError, match="closed"):
        await worker.run(lambda c: None)

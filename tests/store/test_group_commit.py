"""Group commit: many queued transaction functions share one COMMIT, and fail alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from magpie.store._group_commit import GroupCommit


@pytest.fixture
def conn(tmp_path: Path):  # type: ignore[no-untyped-def]
    c = sqlite3.connect(tmp_path / "g.db", isolation_level=None, check_same_thread=False)
    c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    yield c
    c.close()


async def test_batch_commits_together_and_a_failing_job_rolls_back_alone(conn) -> None:  # type: ignore[no-untyped-def]
    pool = ThreadPoolExecutor(1)
    group = GroupCommit(pool)
    group.bind(conn, asyncio.get_running_loop())
    commits: list[str] = []
    conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)

    def insert(k: int):  # type: ignore[no-untyped-def]
        return lambda c: c.execute("INSERT INTO t VALUES (?, 'x')", (k,)).lastrowid

    def bad(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (1000, 'y')")
        raise ValueError("boom")

    futures = [group.submit(insert(k)) for k in range(50)]
    futures.insert(25, group.submit(bad))
    futures.append(group.submit(insert(3)))  # duplicate key: fails alone
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[:25] == list(range(25)) and results[26:51] == list(range(25, 50))
    assert isinstance(results[25], ValueError)
    assert isinstance(results[51], sqlite3.IntegrityError)
    rows = conn.execute("SELECT k FROM t ORDER BY k").fetchall()
    assert [r[0] for r in rows] == list(range(50)), "the failed jobs left nothing behind"
    assert 1 <= len(commits) < 10, "the 52 jobs shared a few COMMITs"
    pool.shutdown()


async def test_commit_failure_fails_every_job_of_the_batch(conn) -> None:  # type: ignore[no-untyped-def]
    pool = ThreadPoolExecutor(1)
    group = GroupCommit(pool)
    group.bind(conn, asyncio.get_running_loop())
    conn.execute("CREATE TABLE p (k INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE c (k INTEGER REFERENCES p(k) DEFERRABLE INITIALLY DEFERRED)")
    conn.execute("PRAGMA foreign_keys = ON")
    gate = threading.Event()
    pool.submit(gate.wait)  # hold the writer so both jobs land in one batch
    # A deferred foreign key violation surfaces only at COMMIT.
    ok = group.submit(lambda c: c.execute("INSERT INTO t VALUES (1, 'a')").lastrowid)
    orphan = group.submit(lambda c: c.execute("INSERT INTO c VALUES (42)").lastrowid)
    gate.set()
    results = await asyncio.gather(ok, orphan, return_exceptions=True)
    assert all(isinstance(r, sqlite3.Error) for r in results)
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    pool.shutdown()

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


async def test_a_batch_without_failures_runs_no_savepoint(conn) -> None:  # type: ignore[no-untyped-def]
    """Savepoints only when a job failed: each one would make FTS5 flush its pending index."""
    pool = ThreadPoolExecutor(1)
    group = GroupCommit(pool)
    group.bind(conn, asyncio.get_running_loop())
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    gate = threading.Event()
    pool.submit(gate.wait)  # hold the writer so every job lands in one batch
    futures = [group.submit(lambda c, k=k: c.execute("INSERT INTO t VALUES (?, 'x')", (k,)))
               for k in range(20)]  # fmt: skip
    gate.set()
    await asyncio.gather(*futures)
    assert not [s for s in statements if "SAVEPOINT" in s or "RELEASE" in s]
    assert statements.count("COMMIT") == 1
    pool.shutdown()


async def test_after_a_failure_the_batch_runs_again_with_savepoints(conn) -> None:  # type: ignore[no-untyped-def]
    """The first pass is rolled back as a whole: the good jobs run twice and commit once."""
    pool = ThreadPoolExecutor(1)
    group = GroupCommit(pool)
    group.bind(conn, asyncio.get_running_loop())
    runs: list[int] = []

    def insert(k: int):  # type: ignore[no-untyped-def]
        def job(c: sqlite3.Connection) -> int:
            runs.append(k)
            c.execute("INSERT INTO t VALUES (?, 'x')", (k,))
            c.execute("INSERT INTO t VALUES (?, 'x')", (k + 100,))
            return k

        return job

    gate = threading.Event()
    pool.submit(gate.wait)
    futures = [group.submit(insert(k)) for k in (1, 2, 1, 3)]  # the second 1 fails halfway
    gate.set()
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] == 1 and results[1] == 2 and results[3] == 3
    assert isinstance(results[2], sqlite3.IntegrityError)
    assert runs == [1, 2, 1, 1, 2, 1, 3]
    rows = [r[0] for r in conn.execute("SELECT k FROM t ORDER BY k")]
    assert rows == [1, 2, 3, 101, 102, 103], "the failed job's first insert is undone"
    pool.shutdown()


async def test_a_lone_failing_job_leaves_nothing(conn) -> None:  # type: ignore[no-untyped-def]
    pool = ThreadPoolExecutor(1)
    group = GroupCommit(pool)
    group.bind(conn, asyncio.get_running_loop())

    def bad(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (7, 'y')")
        raise ValueError("boom")

    with pytest.raises(ValueError):
        await group.submit(bad)
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    assert await group.submit(lambda c: c.execute("INSERT INTO t VALUES (8, 'z')").lastrowid) == 8
    pool.shutdown()

"""SQLite-only behaviour of :mod:`magpie.store.sqlite` and :mod:`magpie.store._sqlite_setup`:
settings, PRAGMAs, the thread model, migrations and durability across a process death.
The backend-independent contract is in ``test_store_contract.py``. Some tests look at private
attributes on purpose: they check the thread model, which the interface cannot show."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from magpie.errors import ConfigError, MigrationError, StoreError
from magpie.store import sqlite as sqlite_module
from magpie.store._sqlite_setup import Migration, load_migrations, migrate, split_statements
from magpie.store.interface import NewMessage
from magpie.store.sqlite import SqliteStore
from tests.support.nodes import settle


def new_message(n: int) -> NewMessage:
    return NewMessage(n, f"c{n}", "alice", "g1", 2, 1_700_000_000, b"{}", flags=0x02)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "s.db")
    await s.open()
    yield s
    await s.close()


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"synchronous": "SOMETIMES"}, "synchronous"),
        ({"synchronous": "FULL; DROP TABLE x"}, "synchronous"),
        ({"readers": 0}, "readers"),
        ({"busy_timeout_ms": -1}, "busy_timeout_ms"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SqliteStore(tmp_path / "s.db", **kwargs)  # type: ignore[arg-type]
    assert info.value.key == key


@pytest.mark.parametrize("path", ["", ":memory:", "file::memory:?cache=shared"])
def test_in_memory_databases_are_refused(path: str) -> None:
    with pytest.raises(ConfigError) as info:
        SqliteStore(path)
    assert info.value.key == "path"


@pytest.mark.parametrize(("setting", "level"), [("FULL", 2), ("normal", 1), ("EXTRA", 3)])
async def test_pragmas(tmp_path: Path, setting: str, level: int) -> None:
    s = SqliteStore(tmp_path / "s.db", synchronous=setting)
    await s.open()
    writer = s._writer
    assert writer is not None
    assert writer.execute("PRAGMA synchronous").fetchone()[0] == level
    assert writer.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert writer.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    await s.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    conn.close()


@pytest.mark.parametrize("content", [b"not a database, just text" * 100, None])
async def test_an_unusable_file_raises_store_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "missing-dir" / "s.db"
    if content is not None:
        path = tmp_path / "junk.db"
        path.write_bytes(content)
    s = SqliteStore(path)
    with pytest.raises(StoreError) as info:
        await s.open()
    assert "not a database" not in info.value.message  # sqlite detail stays in __cause__
    with pytest.raises(StoreError):
        await s.get_message(1)
    await s.close()


async def test_open_twice_is_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreError):
        await store.open()


# --- thread model --------------------------------------------------------------------------


async def test_readers_cannot_write(store: SqliteStore) -> None:
    with pytest.raises(StoreError):
        await store._read("write", lambda c: c.execute("DELETE FROM tokens"))


async def test_reads_do_not_wait_behind_a_running_write(store: SqliteStore) -> None:
    await store.append_message(new_message(1), [])
    started, release = threading.Event(), threading.Event()

    def slow_write(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE channel_seq SET last_seq = last_seq")
        started.set()
        release.wait(10)

    blocked = asyncio.ensure_future(store._write("slow", slow_write))
    await asyncio.to_thread(started.wait, 10)
    assert await asyncio.wait_for(store.max_seq("g1", 2), 5) == 1  # done while the write holds
    queued = asyncio.ensure_future(store.append_message(new_message(2), []))
    await settle(0.05)
    assert not queued.done()  # writes do wait: one writer, in order
    release.set()
    await blocked
    assert (await queued).message.message_seq == 2


async def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "s.db")
    await s.open()
    tasks = [asyncio.ensure_future(s.append_message(new_message(n), [])) for n in range(50)]
    await asyncio.sleep(0)  # every task submits its transaction
    await s.close()
    results = await asyncio.gather(*tasks)
    assert sorted(r.message.message_seq for r in results) == list(range(1, 51))
    again = SqliteStore(tmp_path / "s.db")
    await again.open()
    assert await again.max_seq("g1", 2) == 50
    await again.close()


async def test_channel_reads_use_the_seq_index(store: SqliteStore) -> None:
    writer = store._writer
    assert writer is not None
    for sql in (sqlite_module._MESSAGES_DOWN, sqlite_module._MESSAGES_UP):
        plan = writer.execute("EXPLAIN QUERY PLAN " + sql, ("g1", 2, 5, 1, 10)).fetchall()
        text = " ".join(str(row[-1]) for row in plan)
        assert "messages_channel_seq" in text, text
        assert "TEMP B-TREE" not in text, text  # ordered by the index, no sort step


# --- migrations ----------------------------------------------------------------------------


def test_packaged_migrations_are_numbered_from_one() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_init.sql"


def test_split_statements_keeps_semicolons_in_literals_and_triggers() -> None:
    script = textwrap.dedent("""
        -- a comment; with a semicolon
        CREATE TABLE t (x TEXT DEFAULT 'a;b');
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN
            UPDATE t SET x = 'c;d'; DELETE FROM t WHERE x = '';
        END;
        """)
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].strip().startswith("CREATE TRIGGER")
    with pytest.raises(MigrationError):
        split_statements("CREATE TABLE t (x TEXT DEFAULT 'open;")


def test_a_failing_migration_is_rolled_back(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    good = Migration(1, "0001_a.sql", "CREATE TABLE a (x INTEGER);")
    bad = Migration(2, "0002_b.sql", "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);")
    with pytest.raises(MigrationError, match=r"0002_b\.sql"):
        migrate(conn, [good, bad])
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "a" in tables and "b" not in tables
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations")] == [1]
    migrate(conn, [good])  # idempotent
    conn.close()


# --- durability ----------------------------------------------------------------------------

_CRASHING_WRITER = """
import asyncio, os, sys
from magpie.store.interface import NewMessage
from magpie.store.sqlite import SqliteStore

async def main() -> None:
    store = SqliteStore(sys.argv[1])
    await store.open()
    result = await store.append_message(
        NewMessage(7, "c7", "alice", "g1", 2, 1_700_000_000, b"{}", flags=2), ["bob"]
    )
    print(result.message.message_seq, flush=True)
    os._exit(0)  # no close, no atexit, no thread joins: as close to a crash as a test gets

asyncio.run(main())
"""


async def test_an_acknowledged_append_survives_the_process(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    done = subprocess.run(
        [sys.executable, "-c", _CRASHING_WRITER, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "1"
    s = SqliteStore(path)
    await s.open()
    assert await s.max_seq("g1", 2) == 1
    stored = await s.get_message(7)
    assert stored is not None and stored.client_msg_no == "c7"
    assert [c.unread for c in await s.list_conversations("bob")] == [1]
    await s.close()

"""Opening a Magpie SQLite database: PRAGMAs, the transaction primitive, numbered
migrations and the epoch. Used by :mod:`magpie.store.sqlite` on its writer thread; nothing
here knows about threads or asyncio.

Migrations are ``migrations/NNNN_name.sql`` (package data), numbered 1, 2, … without gaps.
``schema_migrations`` records each applied version; :func:`migrate` applies the missing ones
in order, each in its own transaction together with its ``schema_migrations`` row, and
refuses a database whose schema is newer than the code.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from magpie.errors import MigrationError, StoreError
from magpie.store._migrations import Migration, load_migrations

__all__ = [
    "SYNCHRONOUS_MODES",
    "Migration",
    "connect",
    "ensure_epoch",
    "load_migrations",
    "migrate",
    "run_transaction",
    "split_statements",
]

T = TypeVar("T")

#: Values accepted for ``PRAGMA synchronous``; anything else is refused, so the value can be
#: spliced into the PRAGMA (which takes no parameters).
SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})

# --- migrations ----------------------------------------------------------------------------


def split_statements(script: str) -> list[str]:
    """Split a migration script into statements (``;`` inside literals or triggers is kept)."""
    statements, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer)
            buffer = ""
    if buffer.strip():
        raise MigrationError("a migration ends inside a statement")
    return statements


_CREATE_MIGRATIONS_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT    NOT NULL,
        applied_at INTEGER NOT NULL
    )"""


def _applied_versions(conn: sqlite3.Connection) -> set[int]:
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def _apply_migration(conn: sqlite3.Connection, migration: Migration) -> None:
    """Transaction body: apply ``migration`` unless another opener already did."""
    if migration.version in _applied_versions(conn):
        return
    for statement in split_statements(migration.sql):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.name, int(time.time())),
    )


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    """Bring the schema up to the newest of ``migrations``, one transaction per migration."""
    run_transaction(conn, lambda c: c.execute(_CREATE_MIGRATIONS_TABLE))
    newest_known = migrations[-1].version if migrations else 0
    newest_applied = max(_applied_versions(conn), default=0)
    if newest_applied > newest_known:
        raise MigrationError(
            f"the database schema is at version {newest_applied}, newer than this Magpie "
            f"knows ({newest_known}); upgrade Magpie or use another database"
        )
    for migration in migrations:
        try:
            run_transaction(conn, partial(_apply_migration, migration=migration))
        except sqlite3.Error as exc:
            raise MigrationError(f"migration {migration.name} failed") from exc


def ensure_epoch(conn: sqlite3.Connection) -> str:
    """Transaction body: the store's epoch (I7), created on first open."""
    conn.execute(
        "INSERT INTO meta (id, epoch) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
        (uuid.uuid4().hex,),
    )
    epoch: str = conn.execute("SELECT epoch FROM meta WHERE id = 1").fetchone()[0]
    return epoch


# --- connections and transactions ----------------------------------------------------------


def connect(
    path: str, *, synchronous: str, busy_timeout_ms: int, reader: bool
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with Magpie's PRAGMAs."""
    if synchronous not in SYNCHRONOUS_MODES:  # it is spliced into a PRAGMA below
        raise StoreError("invalid synchronous level")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if reader:
            conn.execute("PRAGMA query_only = ON")
            return conn
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError("the database cannot use WAL journaling")
        conn.execute(f"PRAGMA synchronous = {synchronous}")  # validated against a whitelist
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def run_transaction(conn: sqlite3.Connection, job: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``job`` as one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction, rolling back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = job(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # keep the original error
                conn.execute("ROLLBACK")
        raise
    return result

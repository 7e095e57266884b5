"""Opening a Magpie PostgreSQL database, and the error and retry rules of its transactions.

Used by :mod:`magpie.store.postgres`:

* :func:`create_pool` — an asyncpg pool whose connections decode ``jsonb`` to Python objects;
  a database that cannot be reached is a :class:`~magpie.errors.StoreUnavailable`.
* :func:`migrate` — the numbered migrations of ``postgres_migrations/`` (package data) under a
  session-level advisory lock, so that several nodes starting at once migrate exactly once:
  the first takes the lock and applies each missing migration in its own transaction with its
  ``schema_migrations`` row; the others wait, then find nothing left to do. A schema newer
  than the code is refused (:class:`~magpie.errors.MigrationError`).
* :func:`ensure_epoch` — the store's incarnation id (I7) in ``meta``.
* :func:`attempt` — run one transaction body, re-running it when PostgreSQL aborted it for a
  deadlock or a serialization failure (bodies are safe to re-run: they change nothing outside
  the database, and an extension's ``decide`` is pure), and translating what escapes into the
  error tree: a lost or refused connection → :class:`~magpie.errors.StoreUnavailable`, any
  other database error → :class:`~magpie.errors.StoreError` naming the operation only (the
  original is chained as ``__cause__`` for the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias, TypeVar
from urllib.parse import urlsplit

import asyncpg

from magpie.errors import ConfigError, MigrationError, StoreError, StoreUnavailable
from magpie.store._migrations import Migration
from magpie.store._pg_rows import register_json

__all__ = [
    "MIGRATION_LOCK",
    "RETRY_ATTEMPTS",
    "UNAVAILABLE",
    "attempt",
    "check_dsn",
    "create_pool",
    "describe_dsn",
    "ensure_epoch",
    "migrate",
    "translate",
]

T = TypeVar("T")

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: A connection of its own or one borrowed from a pool.
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

#: The advisory-lock key held while migrating ("magpie" in ASCII, then 1).
MIGRATION_LOCK = 0x6D6167706965_0001

#: Runs of a transaction body aborted by a deadlock or serialization failure before giving up.
RETRY_ATTEMPTS = 8

#: Errors that mean "the database is not reachable now" rather than "this operation is wrong".
UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08: connection lost, refused, does not exist
    asyncpg.exceptions.AdminShutdownError,  # 57P01: the server is shutting down
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up, in recovery
    asyncpg.exceptions.TooManyConnectionsError,  # 53300: no free connection slot
    asyncpg.InterfaceError,  # the client side of a closed connection
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect timeout
)

#: Every database error (translated into the error tree).
_FAILURES: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *UNAVAILABLE)

#: Errors after which the whole transaction body is run again.
_RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


def describe_dsn(dsn: str) -> str:
    """``host:port/database`` of a PostgreSQL URL, for messages (no user, no password)."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}{parts.path or '/'}"


def check_dsn(dsn: str) -> None:
    """Refuse anything but a ``postgresql://`` (or ``postgres://``) URL."""
    try:
        parts = urlsplit(dsn)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError("store_url", "is not a valid PostgreSQL URL") from exc
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError("store_url", "must start with postgresql://")


def translate(exc: BaseException, what: str) -> StoreError:
    """The error-tree error for a database failure of operation ``what``."""
    if isinstance(exc, UNAVAILABLE):
        return StoreUnavailable(f"the database is unavailable ({what})")
    return StoreError(f"store operation {what} failed")


async def attempt(what: str, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` (one whole transaction), again after a deadlock or serialization failure
    (up to :data:`RETRY_ATTEMPTS` runs, with a short random back-off); database errors become
    :class:`StoreError`/:class:`StoreUnavailable`, anything else propagates unchanged."""
    for run in range(1, RETRY_ATTEMPTS + 1):
        try:
            return await body()
        except _RETRYABLE as exc:
            if run == RETRY_ATTEMPTS:
                raise StoreError(f"store operation {what} failed: too much contention") from exc
            await asyncio.sleep(random.uniform(0, 0.002 * 2**run))  # noqa: S311 (jitter)
        except _FAILURES as exc:
            raise translate(exc, what) from exc
    raise AssertionError("unreachable")  # the loop returns or raises


# --- connections ---------------------------------------------------------------------------


async def create_pool(
    dsn: str, *, min_size: int, max_size: int, connect_timeout: float
) -> asyncpg.Pool[asyncpg.Record]:
    """A connection pool on ``dsn``; connections decode ``jsonb`` (see ``_pg_rows``)."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=register_json,
            timeout=connect_timeout,
        )
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"cannot reach the database at {describe_dsn(dsn)}") from exc
    except asyncpg.exceptions.InvalidCatalogNameError as exc:
        raise StoreError(f"the database at {describe_dsn(dsn)} does not exist") from exc
    except asyncpg.exceptions.InvalidAuthorizationSpecificationError as exc:
        raise StoreError(f"the database at {describe_dsn(dsn)} refused the login") from exc
    except (asyncpg.PostgresError, ValueError) as exc:
        raise StoreError(f"cannot open the database at {describe_dsn(dsn)}") from exc
    if pool is None:  # asyncpg types the awaited pool as optional
        raise StoreError("the database pool was not created")
    return pool


# --- migrations and the epoch --------------------------------------------------------------

_CREATE_MIGRATIONS_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT    NOT NULL,
        applied_at BIGINT  NOT NULL
    )"""


async def migrate(conn: Conn, migrations: Sequence[Migration]) -> None:
    """Bring the schema up to the newest of ``migrations`` under the migration lock."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await _migrate_locked(conn, migrations)
    finally:
        # A broken connection releases the lock by itself; keep the original error.
        with contextlib.suppress(*UNAVAILABLE, asyncpg.PostgresError):
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def _migrate_locked(conn: Conn, migrations: Sequence[Migration]) -> None:
    await conn.execute(_CREATE_MIGRATIONS_TABLE)
    applied = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    newest_known = migrations[-1].version if migrations else 0
    newest_applied = max(applied, default=0)
    if newest_applied > newest_known:
        raise MigrationError(
            f"the database schema is at version {newest_applied}, newer than this Magpie "
            f"knows ({newest_known}); upgrade Magpie or use another database"
        )
    for migration in migrations:
        if migration.version in applied:
            continue
        try:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    int(time.time()),
                )
        except asyncpg.PostgresError as exc:
            raise MigrationError(f"migration {migration.name} failed") from exc


async def ensure_epoch(conn: Conn) -> str:
    """The store's epoch (I7), created on first open."""
    await conn.execute(
        "INSERT INTO meta (id, epoch) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        uuid.uuid4().hex,
    )
    epoch: str = await conn.fetchval("SELECT epoch FROM meta WHERE id = 1")
    return epoch

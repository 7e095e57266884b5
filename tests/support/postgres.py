"""PostgreSQL for tests: one fresh database per test session, one schema per test.

The session database has a random name (``magpie_test_<hex>``) and is dropped at the end of
the session, so several test runs can share one server. Each test that needs a clean store
takes a fresh schema in it (:func:`new_schema`); a store reaches it through the URL
(``?search_path=<schema>``, which asyncpg sends as a server setting).

The server is ``MAGPIE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/
postgres``; the URL's database is only used to create and drop the session database). When
it cannot be reached the tests that need it are skipped — except under ``CI=true``, where
they fail: CI must not pass without having run them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from magpie.store.postgres import PostgresStore

T = TypeVar("T")

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    """The administrative URL of the test server."""
    return os.environ.get("MAGPIE_TEST_POSTGRES_URL", DEFAULT_URL)


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""

    async def main() -> T:
        return await factory()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def with_database(url: str, database: str) -> str:
    """``url`` naming another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, "", ""))


def with_schema(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` (``search_path``)."""
    return f"{url}?search_path={schema}"


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def unavailable(why: BaseException) -> None:
    """Skip the test — or fail it under CI, where PostgreSQL must be there."""
    message = f"PostgreSQL at {server_url()} is not reachable: {why!r}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def session_database() -> Iterator[str]:
    """Create the session database, yield its URL, drop it (the ``pg_database`` fixture)."""
    name = f"magpie_test_{uuid.uuid4().hex[:12]}"
    admin = server_url()
    try:
        run_sync(lambda: _admin(admin, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable(exc)
    try:
        yield with_database(admin, name)
    finally:
        run_sync(lambda: _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def new_schema(database_url: str, prefix: str = "t") -> str:
    """A fresh, empty schema in the session database; returns a URL that uses it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    run_sync(lambda: _admin(database_url, f'CREATE SCHEMA "{schema}"'))
    return with_schema(database_url, schema)


class PostgresBackend:
    """Stores for the contract suite: each database name is a fresh schema of the session
    database (created on first use), so every test starts empty."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.urls: dict[str, str] = {}

    def url(self, db: str = "main") -> str:
        """The store URL of database ``db``."""
        if db not in self.urls:
            self.urls[db] = new_schema(self.database_url, f"c_{db}")
        return self.urls[db]

    def new_store(self, db: str = "main") -> PostgresStore:
        """A new, unopened store on ``db`` with a small pool (the server is shared)."""
        return PostgresStore(self.url(db), pool_size=4, writers=2)

    def applied_versions(self, db: str) -> list[int]:
        """The schema versions recorded in ``db``."""

        async def read() -> list[int]:
            conn = await asyncpg.connect(self.url(db))
            try:
                found = await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
                return [r[0] for r in found]
            finally:
                await conn.close()

        return run_sync(read)

    def record_version(self, db: str, version: int) -> None:
        """Pretend ``db`` was migrated to ``version`` by a newer Magpie."""

        async def write() -> None:
            conn = await asyncpg.connect(self.url(db))
            try:
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, 0)",
                    version,
                    f"{version:04d}_future.sql",
                )
            finally:
                await conn.close()

        run_sync(write)

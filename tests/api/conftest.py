"""Fixtures for the HTTP API tests: a real node on free ports and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from magpie.app import Node
from tests.api.helpers import MAX_PAYLOAD
from tests.support.nodes import api, running_node, time_scale
from tests.support.postgres import new_schema


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with ``BOTH_STORES = True`` runs its node tests on SQLite and PostgreSQL."""
    if getattr(metafunc.module, "BOTH_STORES", False) and "store_url" in metafunc.fixturenames:
        metafunc.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> str:
    """The node's ``store_url``: empty (SQLite in ``tmp_path``) unless a module runs on both
    stores (:data:`BOTH_STORES`); then, for PostgreSQL, a fresh schema of the session DB."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return new_schema(request.getfixturevalue("pg_database"), "api")
    return ""


@pytest.fixture
async def node(tmp_path: Path, store_url: str) -> AsyncIterator[Node]:
    """A started node (SQLite NORMAL or PostgreSQL, free ports, key ``API_KEY``)."""
    options = {"store_url": store_url, "store_pool_size": 4} if store_url else {}
    async with running_node(tmp_path, max_payload_bytes=MAX_PAYLOAD, **options) as n:
        yield n


@pytest.fixture
async def http(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """A client sending the business key."""
    async with api(node) as client:
        yield client


@pytest.fixture
async def anon(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """A client sending no credential."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}", timeout=10 * time_scale()
    ) as client:
        yield client

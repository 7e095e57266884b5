"""Fixtures for the HTTP API tests: a real node on free ports and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from magpie.app import Node
from tests.api.helpers import MAX_PAYLOAD
from tests.support.nodes import api, running_node, time_scale


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """A started node (SQLite NORMAL, free ports, key ``API_KEY``)."""
    async with running_node(tmp_path, max_payload_bytes=MAX_PAYLOAD) as n:
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

"""Fixtures of the card tests: a node with group ``g1`` (members a, b, c, d, x; ``out`` has
a token but is not a member) and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from magpie.app import Node
from tests.cards.support import add_tokens, user
from tests.support.nodes import api, make_group, running_node

MEMBERS = ["a", "b", "c", "d", "x"]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path) as n:
        await add_tokens(n, [*MEMBERS, "out"])
        await make_group(n, "g1", MEMBERS)
        yield n


@pytest.fixture
async def http(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """The business key."""
    async with api(node) as client:
        yield client


@pytest.fixture
async def a(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with user(node, "a") as client:
        yield client


@pytest.fixture
async def b(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with user(node, "b") as client:
        yield client


@pytest.fixture
async def c(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with user(node, "c") as client:
        yield client


@pytest.fixture
async def out(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with user(node, "out") as client:
        yield client

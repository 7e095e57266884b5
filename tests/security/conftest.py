"""Fixtures of the security suite: a real node with a cast of callers.

The node (:func:`world`) has a group ``g1`` whose members are ``alice`` and ``bob``, a user
``eve`` who holds a valid token but belongs to no chat (the *outsider*), one message from
alice in ``g1`` and one interactive card (a vote) there. Each caller is an HTTP client:

* ``biz`` — the business API key;
* ``anon`` — no credential;
* ``member`` — alice's user token;
* ``outsider`` — eve's user token.

Tests that need other settings (limits, rate limits) start their own node with
:func:`tests.support.nodes.running_node`; :func:`populate` gives it the same cast.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.app import Node
from tests.support.nodes import API_KEY, add_user, api, make_group, running_node, time_scale

GROUP = "g1"
MEMBERS = ("alice", "bob")
OUTSIDER = "eve"
#: Words of the seeded message and card that no outsider may ever see in an answer.
SECRET_TEXT = "secret-plan-7f3a"
SECRET_TITLE = "secret-vote-91c2"


@dataclass(frozen=True, slots=True)
class World:
    """A populated node: ids of what :func:`populate` created."""

    node: Node
    message_id: int
    card_id: int

    @property
    def base_url(self) -> str:
        """The HTTP API's address."""
        return f"http://127.0.0.1:{self.node.api_port}"


def client(node: Node, credential: str | None = None) -> httpx.AsyncClient:
    """An HTTP client for ``node`` presenting ``credential`` as a bearer token (none: no
    credential)."""
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}", headers=headers, timeout=20 * time_scale()
    )


def token_of(uid: str) -> str:
    """The token :func:`populate` registers for ``uid``."""
    return f"tok-{uid}"


def b64_json(content: dict[str, Any]) -> str:
    """A JSON payload as the API takes it (base64)."""
    return base64.b64encode(json.dumps(content).encode()).decode()


async def populate(node: Node) -> World:
    """Users, the group, one text message and one vote card (see the module docstring)."""
    for uid in (*MEMBERS, OUTSIDER):
        await add_user(node, uid, token_of(uid))
    await make_group(node, GROUP, list(MEMBERS))
    async with api(node) as http:
        sent = await http.post(
            "/message/send",
            json={
                "from_uid": "alice",
                "channel_id": GROUP,
                "channel_type": 2,
                "payload": b64_json({"type": 1, "content": SECRET_TEXT}),
            },
        )
        assert sent.status_code == 200, sent.text
        card = await http.post(
            "/cards",
            json={
                "uid": "alice",
                "channel_id": GROUP,
                "channel_type": 2,
                "card": {"type": "vote@1", "title": SECRET_TITLE, "options": ["yes", "no"]},
                "client_msg_no": "security-card",
            },
        )
        assert card.status_code == 200, card.text
    await _settled(node)
    return World(node, int(sent.json()["data"]["message_id"]), int(card.json()["message_id"]))


async def _settled(node: Node) -> None:
    """Wait for the card's ``syncMessageExtra`` CMD (sent after a coalescing window) to reach
    the members' queues, so tests comparing stored state see no late write."""
    deadline = asyncio.get_running_loop().time() + 10 * time_scale()
    while not await node.store.read_queue("bob", 0, 10):
        assert asyncio.get_running_loop().time() < deadline, "the card's CMD never came"
        await asyncio.sleep(0.01)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """A started, populated node (default settings but free ports and SQLite NORMAL, and
    no brute-force throttle nor per-token request rate: the suites over the whole route
    table present a wrong credential to every endpoint, dozens of times from one address
    and with one token — a guesser, to those defences, which ``test_brute_force.py`` tests
    on their own)."""
    async with running_node(tmp_path, auth_fail_ip_rate=0, http_token_rate=0) as node:
        yield await populate(node)


@pytest.fixture
async def biz(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The business server (API key)."""
    async with client(world.node, API_KEY) as c:
        yield c


@pytest.fixture
async def anon(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """A caller with no credential."""
    async with client(world.node) as c:
        yield c


@pytest.fixture
async def member(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """alice, a member of ``g1`` (user token)."""
    async with client(world.node, token_of("alice")) as c:
        yield c


@pytest.fixture
async def outsider(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """eve: a valid user token, a member of nothing."""
    async with client(world.node, token_of(OUTSIDER)) as c:
        yield c

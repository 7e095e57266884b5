"""Helpers for the conversation-feature API tests (``docs/conversation.md``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from magpie.app import Node
from magpie.client.raw import RawClient, ReceivedMessage
from tests.api.helpers import as_user, db_dump
from tests.support.nodes import add_user, connect, make_group, time_scale

GROUP = 2
PERSON = 1
T = 5 * time_scale()


async def users(node: Node, *uids: str) -> dict[str, str]:
    """Register ``uids``; their tokens."""
    return {uid: await add_user(node, uid) for uid in uids}


async def group(node: Node, channel_id: str, *members: str) -> None:
    """A group with ``members``."""
    await make_group(node, channel_id, list(members))


@asynccontextmanager
async def online(node: Node, tokens: dict[str, str], *uids: str) -> AsyncIterator[list[RawClient]]:
    """Connected raw clients of ``uids`` (closed on exit)."""
    clients = [await connect(node, uid, tokens[uid]) for uid in uids]
    try:
        yield clients
    finally:
        for c in clients:
            await c.close()


async def next_cmd(
    client: RawClient, name: str, timeout: float = T
) -> tuple[ReceivedMessage, dict[str, Any]]:
    """The next CMD named ``name`` the client receives (other messages are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            got = await client.messages.get()
            payload = json.loads(got.payload)
            if payload.get("type") == 99 and payload.get("cmd") == name:
                return got, payload


def cmds(client: RawClient, name: str) -> list[dict[str, Any]]:
    """The CMDs named ``name`` received so far (drains the queue)."""
    out = []
    while not client.messages.empty():
        payload = json.loads(client.messages.get_nowait().payload)
        if payload.get("type") == 99 and payload.get("cmd") == name:
            out.append(payload)
    return out


def user_client(node: Node, token: str) -> httpx.AsyncClient:
    """An HTTP client with a user's token."""
    return as_user(node, token)


def state(node: Node, *tables: str) -> dict[str, list[tuple[Any, ...]]]:
    """The committed rows of ``tables`` (SQLite), to show a refusal changed nothing."""
    dump = db_dump(node)
    return {t: dump[t] for t in tables}

"""Start real Magpie nodes on free loopback ports for integration tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from magpie.app import Node
from magpie.client.raw import RawClient
from magpie.config import load_settings
from tests.support.answers import ANSWERS

API_KEY = "test-api-key"


def time_scale() -> float:
    """One timeout unit, scaled for slow machines by MAGPIE_TIME_SCALE."""
    return float(os.environ.get("MAGPIE_TIME_SCALE", "1") or 1)


async def settle(seconds: float) -> None:
    """Wait ``seconds`` × ``MAGPIE_TIME_SCALE``: the grace period after which a test believes
    that nothing more is on its way (no retry, no stray message), or that a timer has fired.
    Every such fixed wait goes through here so a slow machine can stretch it."""
    await asyncio.sleep(seconds * time_scale())


@asynccontextmanager
async def running_node(data_dir: Path, **overrides: Any) -> AsyncIterator[Node]:
    """A started node on free ports; stopped on exit. Its API's answers are checked against
    its OpenAPI document while it runs (:mod:`tests.support.answers`)."""
    settings = load_settings(
        environ={},
        data_dir=str(data_dir),
        ws_port=0,
        api_port=0,
        tcp_port=0,
        api_key=API_KEY,
        sqlite_synchronous=overrides.pop("sqlite_synchronous", "NORMAL"),
        **overrides,
    )
    node = Node(settings)
    await node.start()
    ANSWERS.serve(node)
    try:
        yield node
    finally:
        ANSWERS.forget(node)
        await node.stop()


def api(node: Node) -> httpx.AsyncClient:
    """An HTTP client for the node's API with the business key."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10 * time_scale(),
    )


async def add_user(node: Node, uid: str, token: str | None = None, level: int = 0) -> str:
    """Register ``uid`` through ``/user/token`` for device flags 0–2; returns the token."""
    token = token or f"tok-{uid}"
    async with api(node) as http:
        for flag in (0, 1, 2):
            r = await http.post(
                "/user/token",
                json={"uid": uid, "token": token, "device_flag": flag, "device_level": level},
            )
            assert r.status_code == 200, r.text
    return token


async def make_group(node: Node, channel_id: str, members: list[str]) -> None:
    """Create a group channel with ``members`` through the API."""
    async with api(node) as http:
        r = await http.post(
            "/channel", json={"channel_id": channel_id, "channel_type": 2, "subscribers": members}
        )
        assert r.status_code == 200, r.text


#: The client transports a node speaks: WebSocket (the JS SDK's) and plain TCP (native SDKs').
TRANSPORTS = ("ws", "tcp")


def client_url(node: Node, transport: str = "ws") -> str:
    """Where a client of ``transport`` (``ws`` or ``tcp``) connects to ``node``."""
    if transport == "tcp":
        return f"tcp://127.0.0.1:{node.tcp_port}"
    return f"ws://127.0.0.1:{node.ws_port}"


async def connect(
    node: Node, uid: str, token: str, *, transport: str = "ws", **kw: Any
) -> RawClient:
    """A connected low-level client over ``transport``."""
    client = RawClient(client_url(node, transport), uid, token, **kw)
    await client.connect(timeout=10 * time_scale())
    return client

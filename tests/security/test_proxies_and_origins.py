"""Behind a trusted reverse proxy, per-address limits count the real client (from
X-Forwarded-For); from anybody else the header is ignored. The WebSocket Origin allow-list
refuses cross-site pages and admits clients that send no Origin."""

from __future__ import annotations

import asyncio
from pathlib import Path

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from magpie.app import Node
from tests.security.throttle_support import (
    NORMAL,
    connect_outcome,
    http_client,
    refused,
    ws_client,
)
from tests.support.nodes import running_node, time_scale

T = 10 * time_scale()


async def _health_statuses(node: Node, forwarded_for: str, n: int) -> list[int]:
    async with http_client(node, NORMAL) as http:
        headers = {"X-Forwarded-For": forwarded_for}
        return [(await http.get("/health", headers=headers)).status_code for _ in range(n)]


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(tmp_path: Path) -> None:
    async with running_node(
        tmp_path, trusted_proxies="127.0.0.1", http_ip_rate=0.01, http_ip_burst=3
    ) as node:
        # A client prefilling the header cannot choose its address: the proxy appends the
        # real one, and that rightmost untrusted entry is what counts.
        assert await _health_statuses(node, "198.51.100.1, 203.0.113.5", 4) == [200] * 3 + [429]
        assert await _health_statuses(node, "198.51.100.2, 203.0.113.5", 1) == [429]
        assert await _health_statuses(node, "203.0.113.6", 3) == [200] * 3


async def test_an_untrusted_peer_cannot_choose_its_address(tmp_path: Path) -> None:
    async with running_node(tmp_path, http_ip_rate=0.01, http_ip_burst=3) as node:
        assert await _health_statuses(node, "203.0.113.5", 3) == [200] * 3
        assert await _health_statuses(node, "203.0.113.6", 1) == [429]


async def _close_code(url: str, **kw: object) -> int | None:
    """Open a bare WebSocket: ``None`` if the gateway keeps it (then closed here), else the
    code it was closed with."""
    ws = await ws_connect(url, open_timeout=T, **kw)  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(ws.recv(), 0.5 * time_scale())
    except TimeoutError:
        await ws.close()
        return None
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    raise AssertionError("the gateway sent something before CONNECT")


async def test_websocket_caps_count_the_forwarded_address(tmp_path: Path) -> None:
    async with running_node(
        tmp_path, trusted_proxies="127.0.0.0/8", ws_max_connections_per_ip=2, token_auth=False
    ) as node:
        url = f"ws://127.0.0.1:{node.ws_port}"
        same = {"X-Forwarded-For": "203.0.113.5"}
        held = [await ws_connect(url, additional_headers=same, open_timeout=T) for _ in range(2)]
        assert await _close_code(url, additional_headers=same) == 1013
        other = {"X-Forwarded-For": "203.0.113.6"}
        assert await _close_code(url, additional_headers=other) is None
        assert refused(node, "ws", "conn_per_ip") == 1
        for ws in held:
            await ws.close()


async def test_origin_allow_list(tmp_path: Path) -> None:
    async with running_node(
        tmp_path, token_auth=False, ws_allowed_origins="https://chat.example.com"
    ) as node:
        url = f"ws://127.0.0.1:{node.ws_port}"
        assert await _close_code(url, origin="https://chat.example.com") is None
        assert await _close_code(url, origin="https://evil.example") == 1008
        native = ws_client(node, "a", "t")
        assert await connect_outcome(native) == "ok", "no Origin: a native client"
        assert refused(node, "ws", "origin") == 1
        await native.close()


async def test_any_origin_by_default(tmp_path: Path) -> None:
    async with running_node(tmp_path, token_auth=False) as node:
        url = f"ws://127.0.0.1:{node.ws_port}"
        assert await _close_code(url, origin="https://anywhere.example") is None

"""``/metrics`` and ``/openapi.json``: the business key by default, public on request, or on
a separate listener; ``/health`` and ``/ready`` stay public."""

from __future__ import annotations

from pathlib import Path

import httpx

from magpie.app import Node
from tests.support.nodes import API_KEY, running_node, time_scale

KEY = {"Authorization": f"Bearer {API_KEY}"}


def _client(port: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10 * time_scale())


async def _statuses(node: Node, port: int, headers: dict[str, str]) -> dict[str, int]:
    async with _client(port) as http:
        return {
            path: (await http.get(path, headers=headers)).status_code
            for path in ("/metrics", "/openapi.json", "/health", "/ready")
        }


async def test_metrics_and_openapi_need_the_key_by_default(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        anon = await _statuses(node, node.api_port, {})
        assert anon == {"/metrics": 401, "/openapi.json": 401, "/health": 200, "/ready": 200}
        keyed = await _statuses(node, node.api_port, KEY)
        assert set(keyed.values()) == {200}
        async with _client(node.api_port) as http:
            r = await http.get("/metrics", headers={"Authorization": "Bearer tok-nobody"})
            assert r.status_code == 401 and "magpie_" not in r.text
            doc = (await http.get("/openapi.json", headers=KEY)).json()
        assert doc["paths"]["/metrics"]["get"]["security"], "documented as needing the key"


async def test_ops_public_serves_them_to_anybody(tmp_path: Path) -> None:
    async with running_node(tmp_path, ops_public=True) as node:
        assert set((await _statuses(node, node.api_port, {})).values()) == {200}


async def test_ops_listen_moves_them_to_their_own_address(tmp_path: Path) -> None:
    async with running_node(tmp_path, ops_listen="127.0.0.1:0") as node:
        assert node.ops_port and node.ops_port != node.api_port
        on_api = await _statuses(node, node.api_port, KEY)
        assert on_api == {"/metrics": 404, "/openapi.json": 404, "/health": 200, "/ready": 200}
        assert await _statuses(node, node.ops_port, {}) == {
            "/metrics": 401,
            "/openapi.json": 401,
            "/health": 200,
            "/ready": 200,
        }
        assert set((await _statuses(node, node.ops_port, KEY)).values()) == {200}
        async with _client(node.ops_port) as ops:
            r = await ops.post("/user/token", json={"uid": "u", "token": "t"}, headers=KEY)
            assert r.status_code == 404, "the API itself is not on the ops listener"


async def test_ops_listen_with_ops_public(tmp_path: Path) -> None:
    async with running_node(tmp_path, ops_listen="127.0.0.1:0", ops_public=True) as node:
        assert set((await _statuses(node, node.ops_port, {})).values()) == {200}

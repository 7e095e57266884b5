"""Health, readiness, metrics, the OpenAPI document, and router-level errors."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount, Route

from magpie.api import create_api
from magpie.app import Node
from magpie.store.interface import TokenRow
from tests.api.helpers import text
from tests.support.nodes import api, running_node, settle, time_scale

#: Run on both stores (tests.api.conftest).
BOTH_STORES = True


async def test_health(anon: httpx.AsyncClient) -> None:
    r = await anon.get("/health")
    assert (r.status_code, r.json()) == (200, {"status": 200})


async def test_ready_follows_the_store(node: Node, anon: httpx.AsyncClient) -> None:
    r = await anon.get("/ready")
    assert r.status_code == 200
    assert r.json() == {
        "status": 200, "store": "up", "gateway": "listening", "bus": "in-process",
        "degraded": False,
    }  # fmt: skip
    await node.store.close()
    r = await anon.get("/ready")
    assert (r.status_code, r.json()["code"]) == (503, "unavailable")
    assert (r.json()["store"], r.json()["gateway"]) == ("not open", "listening")
    assert "store: not open" in r.json()["msg"]
    assert (await anon.get("/health")).status_code == 200


async def test_store_failure_is_503(node: Node, http: httpx.AsyncClient) -> None:
    await node.store.close()
    r = await http.post("/user/token", json={"uid": "a", "token": "t"})
    assert (r.status_code, r.json()["code"]) == (503, "unavailable")


async def test_metrics_are_prometheus_text(http: httpx.AsyncClient) -> None:
    body = {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": text("x")}
    assert (await http.post("/message/send", json=body)).status_code == 200
    await http.post("/message/send", json={**body, "channel_id": "nope", "channel_type": 2})
    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'magpie_messages_total{origin="api"} 1.0' in r.text
    assert 'magpie_send_refused_total{reason="channel_not_exist"} 1.0' in r.text


async def test_unknown_route_and_wrong_method_are_json(anon: httpx.AsyncClient) -> None:
    r = await anon.post("/no/such/thing", json={})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = await anon.post("/user/token/", json={})
    assert r.status_code == 404, "no slash redirects"
    r = await anon.get("/message/send")
    assert (r.status_code, r.json()["code"]) == (405, "method_not_allowed")
    assert "POST" in r.headers["allow"]


def served_routes(node: Node) -> set[tuple[str, str]]:
    assert node.api is not None
    app = create_api(node.api)
    out = set()
    for route in app.routes:
        if isinstance(route, Mount):  # the demo page's static files, not an API route
            assert route.path == "/static"
            continue
        assert isinstance(route, Route)
        out |= {(route.path, m.lower()) for m in route.methods or () if m != "HEAD"}
    return out


async def test_openapi_lists_every_served_route(node: Node, http: httpx.AsyncClient) -> None:
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, m) for path, ops in doc["paths"].items() for m in ops}
    assert documented == served_routes(node)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and "200" in op["responses"], (path, method)
            if method == "post":
                content = op["requestBody"]["content"]
                if "application/json" not in content:  # an upload: the body is the bytes
                    assert content == {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    }, path
                    continue
                schema = content["application/json"]["schema"]
                assert schema["type"] in ("object", "array"), path
    send = doc["paths"]["/message/send"]["post"]["requestBody"]["content"]["application/json"]
    assert {"channel_id", "channel_type", "payload"} <= set(send["schema"]["required"])
    assert doc["paths"]["/route"]["get"]["parameters"][0]["name"] == "uid"


async def test_every_documented_route_is_served(
    node: Node, http: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    doc = (await http.get("/openapi.json")).json()
    for path, ops in doc["paths"].items():
        for method in ops:
            url = re.sub(r"{\w+}", "1", path)  # a path parameter's value
            r = await anon.request(method.upper(), url)
            assert r.status_code not in (404, 405), (method, path, r.text)


async def test_stop_lets_a_request_in_flight_finish(tmp_path: Path) -> None:
    """With a request still running, stopping the node takes uvicorn's graceful path: the
    answer is sent before the listener goes away, and the node refuses new connections."""
    async with running_node(tmp_path) as node:
        entered, release = asyncio.Event(), asyncio.Event()
        original = node.store.set_token

        async def held(row: TokenRow) -> None:
            entered.set()
            await release.wait()
            await original(row)

        node.store.set_token = held  # type: ignore[method-assign]
        async with api(node) as http:
            call = asyncio.create_task(http.post("/user/token", json={"uid": "a", "token": "t"}))
            await asyncio.wait_for(entered.wait(), 10 * time_scale())
            stopping = asyncio.create_task(node.stop())
            await settle(0.2)
            assert not stopping.done(), "the stop waits for the request in flight"
            release.set()
            r = await asyncio.wait_for(call, 10 * time_scale())
            assert (r.status_code, r.json()) == (200, {"status": 200})
            await asyncio.wait_for(stopping, 10 * time_scale())
            with pytest.raises(httpx.ConnectError):
                await http.get("/health")
        node.stop = _no_second_stop  # type: ignore[method-assign]


async def test_stop_closes_idle_keep_alive_connections(tmp_path: Path) -> None:
    """Nothing to drain but an idle keep-alive connection: the node still stops and the
    client's next request finds no server."""
    async with running_node(tmp_path) as node:
        async with api(node) as http:
            assert (await http.get("/health")).status_code == 200
            await asyncio.wait_for(node.stop(), 10 * time_scale())
            with pytest.raises(httpx.TransportError):
                await http.get("/health")
        node.stop = _no_second_stop  # type: ignore[method-assign]


async def _no_second_stop() -> None:
    """``running_node`` stops the node on exit; these tests stopped it already."""

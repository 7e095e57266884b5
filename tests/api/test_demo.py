"""The browser demo's routes: the page and its files (``demo_ui``) and the demo login
(``demo_login``, off unless ``magpie demo`` turns it on)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from magpie.app import Node
from magpie.cli import _settings
from magpie.web import DEMO_USERS
from tests.support.nodes import API_KEY, connect, running_node, time_scale

BUSINESS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def demo_node(tmp_path: Path) -> AsyncIterator[Node]:
    """A node with the demo page and login on (what ``magpie demo`` sets)."""
    async with running_node(tmp_path, demo_ui=True, demo_login=True) as node:
        yield node


@pytest.fixture
async def demo(demo_node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """A client (no credential) of ``demo_node``."""
    base_url = f"http://127.0.0.1:{demo_node.api_port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=10 * time_scale()) as client:
        yield client


async def test_demo_users_lists_the_seeded_users(demo: httpx.AsyncClient) -> None:
    r = await demo.get("/demo/users")
    assert r.status_code == 200
    assert [u["uid"] for u in r.json()] == list(DEMO_USERS)
    assert r.json()[0] == {"uid": "alice", "name": "Alice"}


async def test_demo_login_issues_a_working_web_token(
    demo_node: Node, demo: httpx.AsyncClient
) -> None:
    node = demo_node
    r = await demo.post("/demo/login", json={"uid": "bob"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["uid"] == "bob" and body["device_flag"] == 1 and len(body["token"]) >= 32
    assert body["ws_addr"] == f"ws://127.0.0.1:{node.ws_port}"
    assert body["api_base"] == str(demo.base_url).rstrip("/")
    client = await connect(node, "bob", body["token"], device_flag=1)
    await client.close()
    sync = await demo.post(
        "/conversation/sync",
        json={"uid": "bob"},
        headers={"Authorization": f"Bearer {body['token']}"},
    )
    assert sync.status_code == 200, sync.text
    again = await demo.post("/demo/login", json={"uid": "bob"})
    assert again.json()["token"] != body["token"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"uid": "mallory"}, 404, "unknown_demo_user"),
        ({"uid": "has space"}, 400, "bad_request"),
        ({"uid": 7}, 400, "bad_request"),
        ({}, 400, "bad_request"),
    ],
)
async def test_demo_login_refuses_bad_input(
    demo: httpx.AsyncClient, body: dict[str, object], status: int, code: str
) -> None:
    r = await demo.post("/demo/login", json=body)
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert r.json().get("field") == "uid"


async def test_demo_page_and_login_are_off_by_default(anon: httpx.AsyncClient) -> None:
    assert (await anon.post("/demo/login", json={"uid": "alice"})).status_code == 404
    assert (await anon.get("/demo/users")).status_code == 404
    assert (await anon.get("/")).status_code == 404
    assert (await anon.get("/static/app.css")).status_code == 404
    doc = (await anon.get("/openapi.json", headers=BUSINESS)).json()
    assert "/demo/login" not in doc["paths"] and "/" not in doc["paths"]


async def test_openapi_documents_the_demo_routes(demo: httpx.AsyncClient) -> None:
    doc = (await demo.get("/openapi.json", headers=BUSINESS)).json()
    login = doc["paths"]["/demo/login"]["post"]
    assert login["tags"] == ["demo"] and "404" in login["responses"]
    assert login["requestBody"]["content"]["application/json"]["schema"]["required"] == ["uid"]
    assert "get" in doc["paths"]["/demo/users"]


async def test_page_and_static_files_are_served(demo: httpx.AsyncClient) -> None:
    r = await demo.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script defer src="/static/app.js">' in r.text
    css = await demo.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    missing = await demo.get("/static/nope.js")
    assert missing.status_code == 404
    assert (await demo.get("/static/../config.py")).status_code == 404


def test_magpie_demo_turns_the_page_and_login_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAGPIE_DEMO_LOGIN", "MAGPIE_DEMO_UI", "MAGPIE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    demo = _settings(None, demo=True)
    assert demo.demo_login is True and demo.demo_ui is True
    serve = _settings(None, demo=False)
    assert serve.demo_login is False and serve.demo_ui is False

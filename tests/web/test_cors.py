"""CORS (``cors_origins``) as a browser enforces it: a page served from another origin calls
the HTTP API with a user token (a JSON POST, so Chromium sends a preflight first)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.nodes import add_user, running_node, time_scale
from tests.web.conftest import CHROMIUM_ARGS

PAGE = b"<!doctype html><title>another site</title><p>elsewhere</p>"

#: Runs in the page: the API call a single-page app on another site would make.
CALL = """async ([api, token]) => {
  try {
    const r = await fetch(api + '/conversation/sync', {
      method: 'POST',
      headers: {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json',
                'X-Request-Id': 'from-the-page'},
      body: JSON.stringify({uid: 'alice'}),
    });
    return {ok: true, status: r.status, body: await r.json(),
            requestId: r.headers.get('x-request-id')};
  } catch (e) {
    return {ok: false, error: String(e)};
  }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def other_site() -> Iterator[str]:
    """A page on another origin (another port of the loopback address)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
async def chromium(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def _call_from(browser: Browser, site: str, api: str, token: str) -> dict[str, Any]:
    page = await browser.new_page()
    try:
        await page.goto(site + "/")
        result: dict[str, Any] = await page.evaluate(CALL, [api, token])
        return result
    finally:
        await page.close()


async def test_an_allowed_origin_calls_the_api_and_reads_exposed_headers(
    tmp_path: Path, chromium: Browser, other_site: str
) -> None:
    async with running_node(tmp_path, cors_origins=f"https://x.example,{other_site}") as node:
        token = await add_user(node, "alice")
        api = f"http://127.0.0.1:{node.api_port}"
        result = await _call_from(chromium, other_site, api, token)
    assert result["ok"], result
    assert result["status"] == 200 and result["body"] == []
    assert result["requestId"] == "from-the-page", "X-Request-Id is exposed to the page"


@pytest.mark.parametrize("origins", ["", "http://127.0.0.1:1,https://app.example.com"])
async def test_any_other_origin_is_kept_out(
    tmp_path: Path, chromium: Browser, other_site: str, origins: str
) -> None:
    """Off by default; a list without the page's origin keeps it out too."""
    async with running_node(tmp_path, cors_origins=origins) as node:
        token = await add_user(node, "alice")
        api = f"http://127.0.0.1:{node.api_port}"
        result = await _call_from(chromium, other_site, api, token)
        async with httpx.AsyncClient(timeout=10 * time_scale()) as http:
            preflight = await http.options(
                api + "/conversation/sync",
                headers={"Origin": other_site, "Access-Control-Request-Method": "POST"},
            )
    assert not result["ok"] and "Failed to fetch" in result["error"], result
    assert "access-control-allow-origin" not in preflight.headers


async def test_a_preflight_names_what_the_page_may_send(tmp_path: Path) -> None:
    site = "https://app.example.com"
    async with (
        running_node(tmp_path, cors_origins=site) as node,
        httpx.AsyncClient(timeout=10 * time_scale()) as http,
    ):
        r = await http.options(
            f"http://127.0.0.1:{node.api_port}/message/extra/sync",
            headers={
                "Origin": site,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == site
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in r.headers

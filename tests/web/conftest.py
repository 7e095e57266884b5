"""Fixtures for the browser tests: the demo page in Debian's Chromium, driven by Playwright.

* ``demo_node`` — a real node on free loopback ports with ``demo_login`` on and the data set
  of ``magpie demo`` (alice, bob, carol, dave; ``demo-group``; the alice<->bob chat).
* ``browser`` — ``/usr/bin/chromium`` (``make chromium`` installs it; Playwright never
  downloads a browser here), headless, launched once per test module: a launch costs about a
  second, and every test still gets fresh contexts (their own storage, SDK singletons and
  network switch) and a fresh node. The web test modules therefore run in one event loop per
  module (``pytestmark = pytest.mark.asyncio(loop_scope="module")``), and the async fixtures
  here use that loop too.
* ``ui`` — ``await ui.login("alice")`` (``viewport=``, ``has_touch=`` for a phone) opens a fresh
  browser context (its own SDK singletons,
  storage and network switch) logged in through the page; every page opened is screenshotted
  into ``artifacts/web/<test>--<n>-<uid>.png`` at teardown, pass or fail, and a test fails if
  a page threw an uncaught error.

Chromium or the page bundle (``src/magpie/web/static/app.js``, built by ``make web``) missing
or stale (its recorded source digest differs from ``web/``'s) skips locally and **fails**
under ``CI=true``, so CI cannot pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NoReturn

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright
from playwright.async_api import Error as PlaywrightError

from magpie.app import Node
from magpie.cli import _seed_demo
from magpie.web import STATIC_DIR
from tests.support.nodes import running_node, time_scale
from tests.support.webbundle import load_webbundle
from tests.web.pages import DemoPage

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "web"
BUNDLE = STATIC_DIR / "app.js"
CHROMIUM = Path(os.environ.get("MAGPIE_CHROMIUM", "/usr/bin/chromium"))
#: Debian's Chromium, headless, with nothing that phones home or updates itself.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: browser-test prerequisites are mandatory)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's Chromium (``make chromium``)."""
    if not CHROMIUM.is_file():
        _unavailable(f"web: {CHROMIUM} not found; run `make chromium` (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The page bundle, built from the current ``web/`` sources (``make web``; the bundle
    records the digest of the sources it was built from)."""
    state = load_webbundle().status(ROOT)
    if state != "current":
        _unavailable(f"web: {BUNDLE} is {state}; run `make web`")
    return BUNDLE


@pytest_asyncio.fixture(loop_scope="module")
async def demo_node(tmp_path: Path) -> AsyncIterator[Node]:
    """A started node with demo login on and the ``magpie demo`` data set."""
    async with running_node(tmp_path, demo_ui=True, demo_login=True) as node:
        await _seed_demo(node)
        yield node


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium_path: Path, bundle: Path) -> AsyncIterator[Browser]:
    """A headless Chromium for the module's tests."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120]


class Ui:
    """Opens logged-in pages, one browser context (one SDK client) each."""

    def __init__(
        self, browser: Browser, base_url: str, *, node: Node | None = None, test_name: str = ""
    ) -> None:
        self.browser = browser
        self.base_url = base_url
        self._node = node
        self.test_name = test_name or "page"
        self.pages: list[DemoPage] = []

    @property
    def node(self) -> Node:
        """The node behind the pages (the ``demo_node`` fixture's)."""
        assert self._node is not None, "this Ui was made without a node"
        return self._node

    def artifact(self, name: str) -> Path:
        """A screenshot path in ``artifacts/web`` for this test (``<test>--<name>.png``)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        return ARTIFACTS / f"{_slug(self.test_name)}--{_slug(name)}.png"

    async def login(
        self,
        uid: str,
        *,
        wait_connected: bool = True,
        viewport: dict[str, int] | None = None,
        has_touch: bool = False,
    ) -> DemoPage:
        """A new context with the page logged in as ``uid`` (connected, unless told not to
        wait); ``viewport`` (default 1280 x 800) and ``has_touch`` for a phone."""
        context = await self.browser.new_context(
            viewport=viewport or VIEWPORT, base_url=self.base_url, has_touch=has_touch
        )
        page = DemoPage(context, await context.new_page(), uid, time_scale())
        self.pages.append(page)
        await page.login(wait_connected=wait_connected)
        return page

    async def close(self, test_name: str) -> list[str]:
        """Screenshot every page into ``artifacts/web``, close the contexts; returns the
        uncaught page errors."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        errors: list[str] = []
        for n, page in enumerate(self.pages, 1):
            path = ARTIFACTS / f"{_slug(test_name)}--{n}-{page.uid}.png"
            with contextlib.suppress(PlaywrightError):  # a crashed page has nothing to show
                await page.page.screenshot(path=str(path), full_page=True, animations="disabled")
            errors += [f"{page.uid}: {e}" for e in page.page_errors]
            await page.context.close()
        return errors


@pytest_asyncio.fixture(loop_scope="module")
async def ui(
    browser: Browser, demo_node: Node, request: pytest.FixtureRequest
) -> AsyncIterator[Ui]:
    """``await ui.login(uid)`` opens the demo page as ``uid``; screenshots at teardown."""
    opener = Ui(
        browser,
        f"http://127.0.0.1:{demo_node.api_port}",
        node=demo_node,
        test_name=request.node.name,
    )
    try:
        yield opener
    finally:
        errors = await opener.close(request.node.name)
        assert not errors, f"uncaught errors in the page: {errors}"

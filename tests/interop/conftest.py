"""Fixtures for tests that drive the official WuKongIM JS SDK under Node.

``node_bin`` and ``driver_path`` skip the test when Node (>= 20) or the built driver bundles are
missing on a developer machine (run ``make node``), and *fail* it under ``CI=true`` so that a CI
run can never pass by silently skipping every interop test.

``sdk_host`` is one Node process per test module; ``sdk_factory`` starts each test's clients in
it as fresh worker threads (fresh SDK instances) and ends them at the test's teardown.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .sdk import DRIVER_PATH, HOST_PATH, SdkClient, SdkFactory, SdkHost, close_all, time_scale

MIN_NODE_MAJOR = 20


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: interop prerequisites are mandatory)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_bin() -> str:
    """Path of the ``node`` executable (``MAGPIE_NODE`` overrides the PATH lookup)."""
    node = os.environ.get("MAGPIE_NODE") or shutil.which("node")
    if not node:
        _unavailable("interop: `node` not found on PATH; install Node.js >= 20 and run `make node`")
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        _unavailable(f"interop: `{node} --version` failed: {exc}")
    found = re.match(r"v(\d+)\.", out)
    if not found or int(found.group(1)) < MIN_NODE_MAJOR:
        _unavailable(f"interop: Node.js >= {MIN_NODE_MAJOR} required, {node} is {out!r}")
    return node


@pytest.fixture(scope="session")
def driver_path() -> Path:
    """The esbuild bundles of ``tests/interop/host.js`` and ``driver.js`` (``make node``);
    returns the host's."""
    for bundle in (HOST_PATH, DRIVER_PATH):
        if not bundle.is_file():
            _unavailable(
                f"interop: {bundle} is not built; run `make node` "
                "(or `cd tests/interop && npm ci && npm run build`)"
            )
    return HOST_PATH


@pytest.fixture(scope="module")
def sdk_host(node_bin: str, driver_path: Path) -> Iterator[SdkHost]:
    """One Node process for the module's SDK clients; ended (no process left) at the end."""
    with SdkHost(node_bin, driver_path) as host:
        host.start()
        yield host
        assert not host.errors, host.errors


@pytest.fixture(scope="session")
def scale() -> float:
    """``MAGPIE_TIME_SCALE`` as a float (multiply test timeouts and sleeps by it)."""
    return time_scale()


@pytest.fixture
async def sdk_factory(sdk_host: SdkHost, tmp_path: Path) -> AsyncIterator[SdkFactory]:
    """``await sdk_factory(ws_url, api_url, uid, token, device_flag=1, **start_kwargs)``.

    Starts an :class:`SdkClient` (a fresh SDK instance, not yet connected) in the module's
    host, with its driver log in ``tmp_path``; every client made is closed (its thread ended)
    at teardown.
    """
    clients: list[SdkClient] = []

    async def make(
        ws_url: str,
        api_url: str | None,
        uid: str,
        token: str,
        device_flag: int = 1,
        **kwargs: Any,
    ) -> SdkClient:
        log_path = tmp_path / f"sdk-{uid}-{len(clients) + 1}.log"
        client = SdkClient(sdk_host, uid, log_path=log_path)
        clients.append(client)
        await client.start(ws_url, api_url, uid, token, device_flag, **kwargs)
        return client

    try:
        yield make
    finally:
        await close_all(clients)

"""Cluster settings at start, through ``magpie serve``: a bad ``ws_public_url``,
``tcp_public_addr``, ``node_id`` or ``node_lease`` is one line naming the setting (exit 2);
a node started with the ``node_id`` of a running node waits one lease, then refuses in one
line naming ``node_id`` (exit 2) while the first keeps running; a PostgreSQL URL that points
at something else than PostgreSQL is one line naming ``store_url`` (exit 1)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.nodes import time_scale
from tests.support.postgres import new_schema
from tests.support.redis import free_port, require_redis


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(
        MAGPIE_DATA_DIR=str(tmp_path),
        MAGPIE_LOG_LEVEL="WARNING",
        MAGPIE_WS_PORT="0",
        MAGPIE_API_PORT="0",
        MAGPIE_TCP_PORT="0",
    )
    env.update(extra)
    return env


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magpie.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60 * time_scale(),
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ws_public_url", "http://chat.example.com"),
        ("ws_public_url", "wss://"),
        ("tcp_public_addr", "chat.example.com"),
        ("node_id", "1024"),
        ("node_lease", "0"),
    ],
)
def test_a_bad_cluster_setting_is_one_line_naming_it(tmp_path: Path, key: str, value: str) -> None:
    proc = _serve(_env(tmp_path, **{f"MAGPIE_{key.upper()}": value}))
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and f"bad setting {key}" in line, line


def test_a_database_url_at_a_non_database_port_names_store_url(tmp_path: Path) -> None:
    redis_url = require_redis()  # a server that is up but speaks another protocol
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    proc = _serve(_env(tmp_path, MAGPIE_STORE_URL=f"postgresql://u@127.0.0.1:{port}/db"))
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "store_url" in line, line


async def test_a_second_node_with_a_live_node_id_is_refused(
    tmp_path: Path, pg_database: str
) -> None:
    url = new_schema(pg_database, "dup")
    env = _env(tmp_path / "a", MAGPIE_STORE_URL=url, MAGPIE_NODE_ID="5", MAGPIE_NODE_LEASE="1")
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "magpie.cli", "serve", env=env, stdout=subprocess.PIPE
    )
    try:
        assert first.stdout is not None
        line = await asyncio.wait_for(first.stdout.readline(), 30 * time_scale())
        assert b"(node id 5)" in line, line
        other = dict(env, MAGPIE_DATA_DIR=str(tmp_path / "b"), MAGPIE_API_PORT=str(free_port()))
        second = await asyncio.to_thread(_serve, other)
        assert second.returncode == 2
        line2 = second.stderr.strip()
        assert len(line2.splitlines()) == 1, line2
        assert "bad setting node_id: node id 5 is held by another running node" in line2
        assert first.returncode is None, "the first node runs on"
    finally:
        if first.returncode is None:
            first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 20 * time_scale()) == 0

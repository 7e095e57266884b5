"""``magpie serve`` as a real process: start-up messages, bad settings, SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from magpie.client.raw import RawClient
from tests.support.nodes import time_scale


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(MAGPIE_DATA_DIR=str(tmp_path), MAGPIE_LOG_LEVEL="WARNING", **extra)
    return env


def test_bad_setting_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "magpie.cli", "serve"],
        env=_env(tmp_path, MAGPIE_WS_PORT="not-a-port"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "MAGPIE_WS_PORT" in proc.stderr and "not-a-port" in proc.stderr


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "magpie.cli", "serve", "--config", str(tmp_path / "nope.toml")],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "nope.toml" in proc.stderr


async def test_serve_prints_where_it_listens_and_drains_on_sigterm(tmp_path: Path) -> None:
    ws_port, api_port = _free_port(), _free_port()
    env = _env(
        tmp_path,
        MAGPIE_WS_PORT=str(ws_port),
        MAGPIE_API_PORT=str(api_port),
        MAGPIE_TOKEN_AUTH="false",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "magpie.cli", "serve", env=env, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        lines = [
            (await asyncio.wait_for(proc.stdout.readline(), 30 * time_scale())).decode()
            for _ in range(4)
        ]
        assert any(f"ws://127.0.0.1:{ws_port}" in line for line in lines)
        assert any(f"http://127.0.0.1:{api_port}" in line for line in lines)
        assert any(str(tmp_path / "api_key") in line for line in lines), lines
        assert (tmp_path / "api_key").stat().st_mode & 0o077 == 0, "the key file is private"
        client = RawClient(f"ws://127.0.0.1:{ws_port}", "alice", "any")
        await client.connect()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20 * time_scale()) == 0
        await asyncio.wait_for(client.closed.wait(), 5 * time_scale())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

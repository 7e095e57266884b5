"""One ``magpie serve`` per SQLite store: a second one on the same data dir is refused in
one line naming the holder and the fix; the lock goes with the process (a killed holder
leaves no stale lock)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.nodes import time_scale


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(
        MAGPIE_DATA_DIR=str(tmp_path),
        MAGPIE_LOG_LEVEL="WARNING",
        MAGPIE_WS_PORT="0",
        MAGPIE_API_PORT="0",
        MAGPIE_TCP_PORT="0",
    )
    return env


async def _start(tmp_path: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "magpie.cli", "serve", env=_env(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30 * time_scale())
    assert b"WebSocket gateway" in line and b"(node id " in line, line
    return proc


async def _stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> int:
    if proc.returncode is None:
        proc.send_signal(sig)
    return await asyncio.wait_for(proc.wait(), 20 * time_scale())


def _second(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magpie.cli", "serve"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60 * time_scale(),
    )


async def test_a_second_serve_on_one_sqlite_store_is_refused(tmp_path: Path) -> None:
    first = await _start(tmp_path)
    try:
        second = await asyncio.to_thread(_second, tmp_path)
        assert second.returncode == 1, second.stderr
        line = second.stderr.strip()
        assert len(line.splitlines()) == 1, line
        assert f"(pid {first.pid}) is using the SQLite store {tmp_path / 'magpie.db'}" in line
        assert "data_dir" in line and "PostgreSQL" in line
    finally:
        assert await _stop(first) == 0
    again = await _start(tmp_path)  # stopped cleanly: free again
    assert await _stop(again, signal.SIGKILL) == -signal.SIGKILL
    after_kill = await _start(tmp_path)  # killed: the kernel dropped the lock
    assert await _stop(after_kill) == 0

"""Production defaults of ``magpie serve``: no demo page unless asked, secrets from files,
warnings for unknown ``MAGPIE_*`` variables, setting words in any case."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.support.nodes import time_scale


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(
    tmp_path: Path, command: str = "serve", **env: str
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """``magpie <command>`` as a process; yields the API's base URL and the process (its
    stderr is a pipe)."""
    api_port = _free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    full = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    full.update(
        MAGPIE_DATA_DIR=str(tmp_path),
        MAGPIE_WS_PORT=str(_free_port()),
        MAGPIE_API_PORT=str(api_port),
        MAGPIE_TCP_PORT="0",
        **env,
    )
    args = [sys.executable, "-m", "magpie.cli", command]
    if command == "demo":  # the demo keeps the data dir given by a config file
        cfg = tmp_path / "demo.toml"
        cfg.write_text(f'[magpie]\ndata_dir = "{tmp_path}"\n')
        args += ["--config", str(cfg)]
    proc = await asyncio.create_subprocess_exec(
        *args, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(int(300 * time_scale())):
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("magpie did not start")
        yield base, proc
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30 * time_scale())


async def test_serve_has_no_demo_page_but_demo_has(tmp_path: Path) -> None:
    async with serve(tmp_path / "s") as (base, _), httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/")).status_code == 404
        assert (await http.get("/static/app.css")).status_code == 404
        assert (await http.post("/demo/login", json={"uid": "alice"})).status_code == 404
    async with serve(tmp_path / "d", "demo") as (base, _), httpx.AsyncClient(base_url=base) as h:
        page = await h.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert (await h.post("/demo/login", json={"uid": "alice"})).status_code == 200


async def test_api_key_from_a_file_and_warnings_for_unknown_variables(tmp_path: Path) -> None:
    secret = tmp_path / "api_key.secret"
    secret.write_text("key-from-file\n")
    env = {
        "MAGPIE_API_KEY_FILE": str(secret),
        "MAGPIE_IDLE_TIMOUT": "5",
        "MAGPIE_LOG_LEVEL": "info",
        "MAGPIE_SQLITE_SYNCHRONOUS": "normal",
        "MAGPIE_TIME_SCALE": "2",
    }
    async with serve(tmp_path, **env) as (base, proc), httpx.AsyncClient(base_url=base) as http:
        ok = await http.post(
            "/user/token",
            json={"uid": "u1", "token": "t", "device_flag": 1},
            headers={"Authorization": "Bearer key-from-file"},
        )
        assert ok.status_code == 200, ok.text
        wrong = await http.post(
            "/user/token",
            json={"uid": "u1", "token": "t", "device_flag": 1},
            headers={"Authorization": "Bearer key-from-fil"},
        )
        assert wrong.status_code == 401
    assert not (tmp_path / "api_key").exists(), "no key was generated: the file's key is used"
    assert proc.stderr is not None
    log = (await proc.stderr.read()).decode()
    assert "MAGPIE_IDLE_TIMOUT" in log and "did you mean MAGPIE_IDLE_TIMEOUT?" in log
    assert "MAGPIE_TIME_SCALE" not in log, "the tests' own variable is not a warning"
    assert "key-from-file" not in log

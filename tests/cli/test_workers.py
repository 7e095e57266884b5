"""``magpie serve --workers N``: refused with SQLite, with the memory bus and with an explicit
node id (one line saying why); on PostgreSQL + Redis both workers listen on the same ports
(HTTP, WebSocket and TCP) and take connections, each with its own leased node id; a killed
worker is started again; SIGTERM stops them all and leaves no process behind."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from magpie.client.raw import RawClient
from tests.support.cluster import cluster_env
from tests.support.nodes import API_KEY, time_scale
from tests.support.postgres import new_schema
from tests.support.redis import free_port, require_redis

NODE_BITS = (1 << 10) - 1


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(MAGPIE_DATA_DIR=str(tmp_path), MAGPIE_LOG_LEVEL="WARNING", MAGPIE_TCP_PORT="0")
    env.update(extra)
    return env


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magpie.cli", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60 * time_scale(),
    )


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("magpie: "), proc.stderr
    return line


def test_workers_are_refused_on_sqlite_saying_why(tmp_path: Path) -> None:
    proc = _serve(_env(tmp_path), "--workers", "2")
    assert proc.returncode == 2
    line = _one_line(proc)
    assert "--workers 2 needs a shared store" in line and "SQLite" in line
    assert "store_url" in line and "PostgreSQL" in line
    assert not (tmp_path / "magpie.db").exists(), "nothing was started"


def test_workers_are_refused_with_the_memory_bus_or_a_named_node_id(
    tmp_path: Path, pg_database: str
) -> None:
    url = new_schema(pg_database, "wk")
    proc = _serve(_env(tmp_path, MAGPIE_STORE_URL=url), "--workers", "3")
    assert proc.returncode == 2 and "bus_url" in _one_line(proc)
    env = _env(tmp_path, MAGPIE_STORE_URL=url, MAGPIE_BUS_URL=require_redis(), MAGPIE_NODE_ID="4")
    proc = _serve(env, "--workers", "2")
    assert proc.returncode == 2 and "leave node_id unset" in _one_line(proc)
    for bad in ("0", "x", "-1"):
        proc = _serve(_env(tmp_path), "--workers", bad)
        assert proc.returncode == 2 and "--workers" in proc.stderr


def test_a_worker_that_cannot_start_stops_the_others_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    env = _env(
        tmp_path,
        MAGPIE_STORE_URL=f"postgresql://u:s3cret@127.0.0.1:{port}/im",
        MAGPIE_BUS_URL=require_redis(),
    )
    proc = _serve(env, "--workers", "2")
    assert proc.returncode == 1
    line = _one_line(proc)
    assert "cannot reach the database" in line and "s3cret" not in line


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


async def _until(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout * time_scale()
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def _send_http(api_port: int, n: int) -> int:
    body = {
        "from_uid": "alice",
        "channel_id": "bob",
        "channel_type": 1,
        "client_msg_no": f"h{n}",
        "payload": base64.b64encode(json.dumps({"type": 1, "content": str(n)}).encode()).decode(),
    }
    # a new connection per request: the kernel picks a worker per connection
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {API_KEY}"}
    ) as http:
        r = await http.post("/message/send", json=body)
        assert r.status_code == 200, r.text
        return (int(r.json()["data"]["message_id"]) >> 12) & NODE_BITS


async def _send_ws(url: str, n: int) -> int:
    client = RawClient(url, f"u{n}", "any")
    await client.connect(timeout=10 * time_scale())
    try:
        ack = await client.send("bob", 1, json.dumps({"type": 1, "content": str(n)}).encode())
        assert ack.reason_code == 1
        return (ack.message_id >> 12) & NODE_BITS
    finally:
        await client.close()


async def test_two_workers_share_the_ports_restart_and_stop_together(
    tmp_path: Path, pg_database: str
) -> None:
    ws_port, api_port, tcp_port = free_port(), free_port(), free_port()
    env = _env(
        tmp_path,
        **cluster_env(new_schema(pg_database, "wk"), require_redis()),
        MAGPIE_WS_PORT=str(ws_port),
        MAGPIE_API_PORT=str(api_port),
        MAGPIE_TCP_PORT=str(tcp_port),
        MAGPIE_API_KEY=API_KEY,
        MAGPIE_TOKEN_AUTH="false",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "magpie.cli", "serve", "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers: set[int] = set()
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 60 * time_scale())
        assert "2 workers running (pids " in line, line
        workers = {int(p) for p in line.split("(pids ")[1].split(")")[0].split(", ")}
        assert workers == _children(proc.pid)
        by_http = set(await asyncio.gather(*(_send_http(api_port, n) for n in range(24))))
        assert len(by_http) == 2, "both workers answered HTTP on one port"
        ws = f"ws://127.0.0.1:{ws_port}"
        by_ws = set(await asyncio.gather(*(_send_ws(ws, n) for n in range(24))))
        assert by_ws == by_http, "both workers took WebSocket connections, same node ids"
        tcp = f"tcp://127.0.0.1:{tcp_port}"
        by_tcp = set(await asyncio.gather(*(_send_ws(tcp, 100 + n) for n in range(24))))
        assert by_tcp == by_http

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 30 * time_scale())
        assert f"(pid {victim}) exited (signal 9); starting it again" in line, line
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 60 * time_scale())
        assert "running again (pid " in line, line
        workers = _children(proc.pid)
        assert len(workers) == 2 and victim not in workers
        assert (
            len(set(await asyncio.gather(*(_send_http(api_port, 50 + n) for n in range(24))))) == 2
        )

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30 * time_scale()) == 0
        await _until(lambda: not any(_alive(p) for p in workers), 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


async def test_workers_die_with_a_killed_parent(tmp_path: Path, pg_database: str) -> None:
    env = _env(
        tmp_path,
        **cluster_env(new_schema(pg_database, "wk"), require_redis()),
        MAGPIE_WS_PORT="0",
        MAGPIE_API_PORT="0",
        MAGPIE_API_KEY=API_KEY,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "magpie.cli", "serve", "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers: set[int] = set()
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 60 * time_scale())
        assert "2 workers running" in line, line
        workers = _children(proc.pid)
        assert len(workers) == 2
        proc.send_signal(signal.SIGKILL)  # no chance to stop them: PR_SET_PDEATHSIG does
        proc.wait(10)
        await _until(lambda: not any(_alive(p) for p in workers), 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

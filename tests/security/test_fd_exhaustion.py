"""Many half-open sockets do not take a node down, and running out of file descriptors is
logged calmly.

Each test runs ``magpie serve`` as a process with a low open-files limit (soft = hard, so the
node cannot raise it), which makes a flood of ~1,100 sockets large enough to matter while
staying fast. The attacker connects from 127.0.0.2, the well-behaved client from 127.0.0.1
(both loopback), so per-address caps can tell them apart.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidMessage

from magpie.client.raw import ConnectRefused, RawClient
from tests.support.nodes import API_KEY, time_scale

ATTACKER = "127.0.0.2"
FLOOD = 1100
HEAD = 2.0 * time_scale()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """A ``magpie serve`` process."""

    proc: asyncio.subprocess.Process
    ws_port: int
    api_port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.api_port}",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10 * time_scale(),
        )


@pytest.fixture(autouse=True)
def _enough_descriptors_for_the_attacker() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3 * FLOOD
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.fail(f"the test needs {want} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@asynccontextmanager
async def serve_limited(tmp_path: Path, nofile: int, **settings: str) -> AsyncIterator[Served]:
    """``magpie serve`` whose open-files limit is ``nofile`` (soft and hard)."""
    ws_port, api_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(
        MAGPIE_DATA_DIR=str(tmp_path),
        MAGPIE_WS_PORT=str(ws_port),
        MAGPIE_API_PORT=str(api_port),
        MAGPIE_TCP_PORT=str(_free_port()),
        MAGPIE_API_KEY=API_KEY,
        MAGPIE_SQLITE_SYNCHRONOUS="NORMAL",
        MAGPIE_LOG_LEVEL="WARNING",
        **{f"MAGPIE_{k.upper()}": v for k, v in settings.items()},
    )
    boot = (
        "import resource, runpy, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile})); "
        "sys.argv = ['magpie', 'serve']; runpy.run_module('magpie.cli', run_name='__main__')"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", boot, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    served = Served(proc, ws_port, api_port)
    try:
        await _until_healthy(served)
        yield served
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30 * time_scale())
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _until_healthy(served: Served) -> None:
    async with served.http() as http:
        for _ in range(int(300 * time_scale())):
            with suppress(httpx.TransportError):
                if (await http.get("/health")).status_code == 200:
                    return
            if served.proc.returncode is not None:
                raise AssertionError("magpie exited at start")
            await asyncio.sleep(0.1)
    raise AssertionError("magpie did not start")


async def _stderr(served: Served) -> str:
    served.proc.terminate()
    assert served.proc.stderr is not None
    out = await asyncio.wait_for(served.proc.stderr.read(), 30 * time_scale())
    await served.proc.wait()
    return out.decode()


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _flood(port: int, count: int, first_bytes: bytes = b"") -> list[Conn]:
    """``count`` sockets from the attacker's address, each sending ``first_bytes`` (maybe
    nothing) and then nothing more."""

    async def one() -> Conn | None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0)),
                10 * time_scale(),
            )
        except (OSError, TimeoutError):
            return None  # refused or still in the listen backlog: it holds nothing either
        if first_bytes:
            writer.write(first_bytes)
        return reader, writer

    conns: list[Conn] = []
    for start in range(0, count, 100):
        batch = await asyncio.gather(*(one() for _ in range(min(100, count - start))))
        conns += [c for c in batch if c is not None]
    return conns


async def _open_after(conns: list[Conn], seconds: float) -> int:
    """How many of ``conns`` the server has not closed after ``seconds``."""
    await asyncio.sleep(seconds)
    still = 0
    for reader, _ in conns:
        try:
            data = await asyncio.wait_for(reader.read(65536), 0.001)
        except TimeoutError:
            still += 1
            continue
        except ConnectionResetError:
            continue
        if data and not reader.at_eof():
            still += 1
    return still


def _close_all(conns: list[Conn]) -> None:
    for _, writer in conns:
        writer.transport.abort()


async def _connect_retrying(served: Served, uid: str) -> RawClient:
    deadline = time.monotonic() + 10 * time_scale()
    while True:
        client = RawClient(served.ws_url, uid, "t")
        try:
            await client.connect(timeout=2 * time_scale())
            return client
        except (OSError, InvalidMessage, ConnectionClosed, ConnectRefused, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _say(client: RawClient, peer: str) -> None:
    payload = json.dumps({"type": 1, "content": "still here"}).encode()
    ack = await asyncio.wait_for(client.send(peer, 1, payload), 10 * time_scale())
    assert ack.reason_code == 1


async def test_a_flood_of_half_open_sockets_leaves_the_node_reachable(tmp_path: Path) -> None:
    async with serve_limited(
        tmp_path,
        nofile=512,
        token_auth="false",
        fd_reserve="128",  # room 384: HTTP gets at most 96, the gateway 288
        http_max_connections_per_ip="64",
        http_header_timeout=str(HEAD),
    ) as served:
        early = RawClient(served.ws_url, "early", "t")
        await early.connect(timeout=10 * time_scale())
        half = b"GET /health HTTP/1.1\r\nHost: x\r\n"
        flood = await _flood(served.api_port, FLOOD // 2)
        flood += await _flood(served.api_port, FLOOD - FLOOD // 2, half)
        try:
            # During the flood: the open WebSocket works, a new one connects, and HTTP from
            # another address is served.
            await _say(early, "someone")
            late = RawClient(served.ws_url, "late", "t")
            await late.connect(timeout=10 * time_scale())
            await _say(late, "someone")
            async with served.http() as http:
                r = await http.post("/user/token", json={"uid": "u", "token": "t"})
                assert r.status_code == 200, r.text
            # Soon past the head deadline every attacking socket is gone (refused at once, or
            # closed at its deadline: test_http_timeouts.py times that precisely).
            deadline = time.monotonic() + HEAD + 5 * time_scale()
            while (still := await _open_after(flood, 0.2)) and time.monotonic() < deadline:
                pass
            assert still == 0, f"{still} attacking sockets still open"
            async with served.http() as http:
                metrics = (await http.get("/metrics")).text
        finally:
            _close_all(flood)
        await early.close()
        await late.close()
        log = await _stderr(served)
    assert 'magpie_refused_total{port="http",rule="conn_per_ip"}' in metrics
    assert 'magpie_http_timeouts_total{phase="head"}' in metrics
    assert "Traceback" not in log and "Too many open files" not in log, log[-2000:]


async def test_out_of_descriptors_is_logged_once_and_open_connections_are_served(
    tmp_path: Path,
) -> None:
    """With no descriptors kept in reserve the caps no longer protect the process: accept()
    fails with EMFILE. New sockets are refused (closed at once), the node says so once per
    interval (no traceback per failure), keeps serving its connections, and accepts again as
    soon as descriptors are free."""
    async with serve_limited(
        tmp_path,
        nofile=256,
        token_auth="false",
        fd_reserve="0",
        http_header_timeout="60",
        connect_timeout="60",
    ) as served:
        early = RawClient(served.ws_url, "early", "t")
        await early.connect(timeout=10 * time_scale())
        flood = await _flood(served.ws_port, 300)
        flood += await _flood(served.api_port, 100)
        try:
            await asyncio.sleep(1.5)  # several accept retries, each failing
            await _say(early, "someone")
            for _ in range(5):
                await asyncio.sleep(0.3)
                with suppress(OSError, TimeoutError):
                    extra = await _flood(served.ws_port, 20)
                    flood += extra
            await _say(early, "someone")
        finally:
            _close_all(flood)
        # The node notices the closed sockets within moments; until then a new client is
        # refused (closed at once, not left hanging) and, like any client, tries again.
        late = await _connect_retrying(served, "late")
        await _say(late, "someone")
        async with served.http() as http:
            assert (await http.get("/health")).status_code == 200
        await early.close()
        await late.close()
        log = await _stderr(served)
    reports = [line for line in log.splitlines() if "out of file descriptors" in line]
    assert len(reports) == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]

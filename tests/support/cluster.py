"""Clusters of real ``magpie serve`` processes for the multi-node tests (``tests/cluster``).

Each node is its own process (``python -m magpie.cli serve``) on free loopback ports, with its
own data directory and an explicit ``node_id``; the nodes of one cluster share a PostgreSQL
store (a fresh schema of the session database) and a Redis bus (the shared server under a
per-test cluster name, or a private ``redis-server``). Processes are stopped by PID (SIGTERM,
then SIGKILL) — :meth:`ServeNode.kill` is the ``kill -9`` of the crash tests. A TCP proxy
(:class:`Proxy`) stands in front of PostgreSQL where a test cuts the store away.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from magpie.client.raw import RawClient
from tests.support.nodes import API_KEY, time_scale
from tests.support.redis import free_port, run_prefix

__all__ = ["Cluster", "Proxy", "ServeNode", "cluster_env", "running_cluster", "start_cluster"]

#: Seconds a node has to answer /ready after its start.
START_TIMEOUT = 60.0


def _all_up(answer: httpx.Response) -> bool:
    """``/ready`` says 200 and not degraded: the store answers and the bus reaches the other
    nodes (a node whose bus is down is ready but ``degraded``)."""
    return answer.status_code == 200 and not answer.json().get("degraded", False)


@dataclass
class ServeNode:
    """One ``magpie serve`` process (started by :meth:`start`)."""

    node_id: int
    data_dir: Path
    env: dict[str, str]
    ws_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    tcp_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "serve.log"

    def start(self) -> None:
        """Start the process (returns at once; :meth:`wait_ready` waits for it)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
        env.update(
            MAGPIE_DATA_DIR=str(self.data_dir),
            MAGPIE_WS_PORT=str(self.ws_port),
            MAGPIE_API_PORT=str(self.api_port),
            MAGPIE_TCP_PORT=str(self.tcp_port),
            MAGPIE_NODE_ID=str(self.node_id),
            MAGPIE_API_KEY=API_KEY,
            MAGPIE_TIME_SCALE=os.environ.get("MAGPIE_TIME_SCALE", "1"),
            **self.env,
        )
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "magpie.cli", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until ``/ready`` answers 200, not degraded; fails with the node's log if the
        process exits or the time runs out."""
        deadline = time.monotonic() + timeout * time_scale()
        async with httpx.AsyncClient(base_url=self.api_url, timeout=2) as http:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    raise AssertionError(f"node {self.node_id} exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    if _all_up(await http.get("/ready")):
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"node {self.node_id} not ready:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    def wait_ready_sync(self, timeout: float = START_TIMEOUT) -> None:
        """:meth:`wait_ready` for code outside an event loop."""
        deadline = time.monotonic() + timeout * time_scale()
        with httpx.Client(base_url=self.api_url, timeout=2) as http:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    raise AssertionError(f"node {self.node_id} exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    if _all_up(http.get("/ready")):
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"node {self.node_id} not ready:\n{self.log_tail()}")
                time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9``: no goodbye to clients, Redis or PostgreSQL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (drain and stop), SIGKILL if it does not end in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def api(self, **kw: Any) -> httpx.AsyncClient:
        """An HTTP client for the node's API with the business key."""
        kw.setdefault("timeout", 20 * time_scale())
        return httpx.AsyncClient(
            base_url=self.api_url, headers={"Authorization": f"Bearer {API_KEY}"}, **kw
        )

    async def connect(self, uid: str, token: str | None = None, **kw: Any) -> RawClient:
        """A connected low-level WebSocket client of ``uid`` on this node."""
        client = RawClient(self.ws_url, uid, token or f"tok-{uid}", **kw)
        await client.connect(timeout=10 * time_scale())
        return client


@dataclass
class Cluster:
    """The nodes of one test's cluster and what they share."""

    nodes: list[ServeNode]
    store_url: str
    bus_url: str
    cluster_name: str

    async def wait_ready(self) -> None:
        await asyncio.gather(*(node.wait_ready() for node in self.nodes if node.running))

    def wait_ready_sync(self) -> None:
        for node in self.nodes:
            node.wait_ready_sync()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every node (SIGTERM to all, SIGKILL to those still running ``timeout``
        seconds later): nothing is left running."""
        for node in self.nodes:
            if node.running and node.proc is not None:
                node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    node.kill()

    def __getitem__(self, i: int) -> ServeNode:
        return self.nodes[i]

    def __iter__(self) -> Any:
        return iter(self.nodes)

    async def add_users(self, uids: Iterable[str], level: int = 0) -> None:
        """Register ``tok-<uid>`` for device flags 0–2 of every uid (through node 0)."""
        async with self.nodes[0].api() as http:
            for uid in uids:
                for flag in (0, 1, 2):
                    body = {
                        "uid": uid,
                        "token": f"tok-{uid}",
                        "device_flag": flag,
                        "device_level": level,
                    }
                    r = await http.post("/user/token", json=body)
                    assert r.status_code == 200, r.text

    async def make_group(self, channel_id: str, members: list[str]) -> None:
        async with self.nodes[0].api() as http:
            body = {"channel_id": channel_id, "channel_type": 2, "subscribers": members}
            r = await http.post("/channel", json=body)
            assert r.status_code == 200, r.text

    async def history(self, channel_id: str, channel_type: int, login_uid: str) -> list[Any]:
        """Every message of the channel (``/channel/messagesync`` pulled up from seq 1)."""
        out: list[Any] = []
        start = 1
        async with self.nodes[0].api() as http:
            while True:
                body = {
                    "login_uid": login_uid,
                    "channel_id": channel_id,
                    "channel_type": channel_type,
                    "start_message_seq": start,
                    "end_message_seq": 0,
                    "limit": 1000,
                    "pull_mode": 1,
                }
                r = await http.post("/channel/messagesync", json=body)
                assert r.status_code == 200, r.text
                answer = r.json()
                page = answer["messages"]
                out.extend(page)
                if not answer["more"] or not page:
                    return out
                start = page[-1]["message_seq"] + 1


def cluster_env(store_url: str, bus_url: str, name: str = "", **settings: Any) -> dict[str, str]:
    """The environment every node of a cluster shares; ``settings`` become ``MAGPIE_<KEY>``."""
    env = {
        "MAGPIE_STORE_URL": store_url,
        "MAGPIE_BUS_URL": bus_url,
        "MAGPIE_CLUSTER_NAME": name or f"{run_prefix()}-cl-{uuid.uuid4().hex[:8]}",
        "MAGPIE_STORE_POOL_SIZE": "4",
        "MAGPIE_BUS_PRESENCE_TTL": "3",
        "MAGPIE_BUS_TIMEOUT": "1",
        "MAGPIE_LOG_LEVEL": "WARNING",
        "MAGPIE_ACCESS_LOG": "false",
        # many clients of one test share an address and connect in bursts
        "MAGPIE_CONNECT_IP_RATE": "0",
        "MAGPIE_CONNECT_UID_RATE": "0",
        "MAGPIE_HTTP_IP_RATE": "0",
        "MAGPIE_HTTP_TOKEN_RATE": "0",
        "MAGPIE_SEND_RATE": "0",
    }
    env.update({f"MAGPIE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def start_cluster(
    tmp_path: Path, store_url: str, bus_url: str, *, n: int = 3, **settings: Any
) -> Cluster:
    """Start ``n`` nodes (ids 1..n) on ``store_url`` and ``bus_url`` (not yet ready: wait
    with :meth:`Cluster.wait_ready` or :meth:`Cluster.wait_ready_sync`; stop with
    :meth:`Cluster.stop`)."""
    env = cluster_env(store_url, bus_url, **settings)
    nodes = [ServeNode(i, tmp_path / f"node{i}", dict(env)) for i in range(1, n + 1)]
    cluster = Cluster(nodes, store_url, bus_url, env["MAGPIE_CLUSTER_NAME"])
    try:
        for node in nodes:
            node.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@asynccontextmanager
async def running_cluster(
    tmp_path: Path, store_url: str, bus_url: str, *, n: int = 3, **settings: Any
) -> AsyncIterator[Cluster]:
    """``n`` ready nodes; stopped on exit (by PID)."""
    cluster = start_cluster(tmp_path, store_url, bus_url, n=n, **settings)
    try:
        await cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()


class Proxy:
    """A TCP proxy on a free loopback port in front of ``target``; :meth:`cut` drops every
    connection and refuses new ones (a database restart as the nodes see it), :meth:`restore`
    accepts again. :meth:`freeze` is a network partition instead: connections stay open and
    new ones are accepted, but nothing goes through (no answer, no error) until :meth:`thaw`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def restore(self) -> None:
        await self.start()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def stop(self) -> None:
        await self.cut()
        self.thaw()  # the held pipes see their aborted sockets and end

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._pipes.add(writer)
        await self._flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None or writer not in self._pipes:  # cut meanwhile
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._pipes.difference_update((writer, up_writer))

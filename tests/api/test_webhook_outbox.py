"""The durable webhook outbox end to end: events survive a restart and a kill -9 mid-dispatch,
a receiver down for longer than the attempts gets them dead-lettered (listed, sent again on
request), and nodes dispatching from one PostgreSQL database send each event once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from magpie.api.webhooks import WEBHOOK_KIND
from magpie.app import Node
from tests.api.helpers import text
from tests.support.nodes import API_KEY, api, make_group, running_node, time_scale
from tests.support.postgres import new_schema
from tests.support.webhooks import Receiver

#: Run on both stores (tests.api.conftest).
BOTH_STORES = True

T = 10 * time_scale()
FAST = {"webhook_batch_interval": 0.05, "webhook_backoff": 0.05, "webhook_max_backoff": 0.1}


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if await got if isinstance(got, Awaitable) else got:
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _store_options(store_url: str) -> dict[str, Any]:
    return {"store_url": store_url, "store_pool_size": 3} if store_url else {}


async def send_texts(node_or_url: Node | str, n: int, tag: str = "m") -> list[int]:
    """``n`` messages from a to group g1 through the business API; their ids."""
    base = (
        node_or_url if isinstance(node_or_url, str) else f"http://127.0.0.1:{node_or_url.api_port}"
    )
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=T) as http:
        ids = []
        for i in range(n):
            body = {"from_uid": "a", "channel_id": "g1", "channel_type": 2,
                    "payload": text(f"{tag}{i}")}  # fmt: skip
            r = await http.post("/message/send", json=body)
            assert r.status_code == 200, r.text
            ids.append(r.json()["data"]["message_id"])
        return ids


def offline_ids(receiver: Receiver) -> list[int]:
    return [h.json()["message_id"] for h in receiver.delivered("msg.offline")]


# --- restart, dead letters ----------------------------------------------------------------------


async def test_pending_webhooks_are_delivered_after_a_restart(
    tmp_path: Path, store_url: str
) -> None:
    receiver = Receiver()
    receiver.down = True  # answers 503: the events wait in the store
    await receiver.start()
    options = {**FAST, **_store_options(store_url), "webhook_url": receiver.url}
    try:
        async with running_node(tmp_path, **options) as node:
            await make_group(node, "g1", ["a", "b"])
            sent = await send_texts(node, 5)
            await eventually(lambda: receiver.calls >= 2)
        assert receiver.delivered("msg.notify") == []
        receiver.down = False
        async with running_node(tmp_path, **options) as node:
            await eventually(lambda: _outbox_empty(node))
        assert sorted(receiver.notified_ids()) == sorted(sent), "each exactly once"
        assert sorted(offline_ids(receiver)) == sorted(sent)
    finally:
        await receiver.stop()


async def test_a_receiver_down_longer_than_the_attempts(tmp_path: Path, store_url: str) -> None:
    receiver = Receiver()
    receiver.down = True
    await receiver.start()
    options = {**FAST, **_store_options(store_url), "webhook_url": receiver.url}
    try:
        async with running_node(tmp_path, webhook_attempts=3, **options) as node:
            await make_group(node, "g1", ["a", "b"])
            sent = await send_texts(node, 3)
            await eventually(lambda: _dead_count(node, 6))
            async with api(node) as http:
                page = (await http.get("/jobs/dead", params={"kind": WEBHOOK_KIND})).json()
                assert page["more"] == 0 and len(page["data"]) == 6
                dead = page["data"]
                assert {d["payload"]["event"] for d in dead} == {"msg.notify", "msg.offline"}
                assert {d["payload"]["message_id"] for d in dead} == set(sent)
                assert all((d["attempts"], d["last_error"]) == (3, "HTTP 503") for d in dead)
                failed = node.metrics.registry.get_sample_value(
                    "magpie_webhook_failures_total", {"event": "msg.notify"}
                )
                assert failed == 3, "counted as they died"
                assert receiver.delivered("msg.notify") == []
                receiver.down = False
                ids = [d["job_id"] for d in dead]
                r = await http.post("/jobs/dead/retry", json={"job_ids": [*ids, 10**12]})
                assert r.json() == {"status": 200, "data": {"revived": 6}}
                await eventually(lambda: sorted(receiver.notified_ids()) == sorted(sent))
                await eventually(lambda: sorted(offline_ids(receiver)) == sorted(sent))
                left = (await http.get("/jobs/dead")).json()
                assert left["data"] == [] and left["more"] == 0
    finally:
        await receiver.stop()


async def _dead_count(node: Node, n: int) -> bool:
    return len(await node.store.list_jobs(WEBHOOK_KIND, dead=True)) >= n


async def test_dead_letter_paging_and_input_checks(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node, api(node) as http:
        r = await http.get("/jobs/dead", params={"limit": 0})
        assert r.status_code == 400 and r.json()["field"] == "limit"
        r = await http.get("/jobs/dead", params={"limit": 501})
        assert r.status_code == 400
        r = await http.post("/jobs/dead/retry", json={"job_ids": []})
        assert r.status_code == 400 and r.json()["field"] == "job_ids"
        r = await http.post("/jobs/dead/retry", json={"job_ids": list(range(1, 1002))})
        assert r.status_code == 413
        r = await http.get("/jobs/dead", params={"limit": 500})
        assert r.json() == {"status": 200, "data": [], "more": 0}


# --- several nodes, and a node killed mid-dispatch ------------------------------------------------


@asynccontextmanager
async def nodes_on(tmp_path: Path, url: str, n: int, **kw: Any) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        out = []
        for i in range(1, n + 1):
            node = running_node(
                tmp_path / f"n{i}", store_url=url, store_pool_size=3, node_id=i, **kw
            )
            out.append(await stack.enter_async_context(node))
        yield out


async def test_two_nodes_dispatching_send_each_event_once(tmp_path: Path, pg_database: str) -> None:
    url = new_schema(pg_database, "hooks")
    receiver = Receiver()
    await receiver.start()
    try:
        async with nodes_on(tmp_path, url, 2, webhook_url=receiver.url, **FAST) as (one, two):
            await make_group(one, "g1", ["a", "b"])
            sends = await asyncio.gather(
                *(send_texts(n, 40, f"n{i}") for i, n in enumerate((one, two)))
            )
            sent = [m for ids in sends for m in ids]
            await eventually(lambda: _outbox_empty(one))  # everything sent is settled
            by_node = [_delivered(n) for n in (one, two)]
        assert sorted(receiver.notified_ids()) == sorted(sent), "each event once"
        assert sorted(offline_ids(receiver)) == sorted(sent)
        ids = Counter(h.event_id for h in receiver.log if h.status == 200)
        assert max(ids.values()) == 1, "no request twice"
        assert sum(by_node) == len(receiver.log)
    finally:
        await receiver.stop()


async def _outbox_empty(node: Node) -> bool:
    return await node.store.list_jobs(WEBHOOK_KIND, dead=False) == []


def _delivered(node: Node) -> float:
    samples = [
        s.value
        for family in node.metrics.registry.collect()
        if family.name == "magpie_webhook_deliveries"
        for s in family.samples
        if s.name.endswith("_total")
    ]
    return sum(samples)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve_process(data_dir: Path, **settings: Any) -> AsyncIterator[tuple[int, str]]:
    """``magpie serve`` as its own process; yields its pid and API URL; killed on exit."""
    api_port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env |= {"MAGPIE_TIME_SCALE": os.environ.get("MAGPIE_TIME_SCALE", "1")}
    values = {"data_dir": data_dir, "ws_port": 0, "tcp_port": 0, "api_port": api_port,
              "api_key": API_KEY, "log_level": "WARNING", **settings}  # fmt: skip
    env |= {f"MAGPIE_{k.upper()}": str(v) for k, v in values.items()}
    proc = subprocess.Popen([sys.executable, "-m", "magpie.cli", "serve"], env=env)
    url = f"http://127.0.0.1:{api_port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:

            async def up() -> bool:
                assert proc.poll() is None, "the node exited"
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get(url + "/ready")).status_code == 200
                return False

            await eventually(up, 30 * time_scale())
        yield proc.pid, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


async def test_a_node_killed_mid_dispatch_loses_no_event(tmp_path: Path, store_url: str) -> None:
    """kill -9 while the receiver holds requests: after the lease another node (PostgreSQL)
    or the restarted node (SQLite) sends every event — the interrupted requests again with
    the same event ids (the receiver may have processed them: it can drop the repeats), every
    other exactly once."""
    receiver = Receiver()
    await receiver.start()
    lease = 2.0
    settings = {**FAST, "webhook_url": receiver.url, "job_lease": lease, "node_id": 1}
    settings |= {"webhook_timeout": lease / 2}
    settings |= {"store_url": store_url} if store_url else {"sqlite_synchronous": "NORMAL"}
    try:
        receiver.hold()
        async with serve_process(tmp_path / "killed", **settings) as (pid, url):
            async with httpx.AsyncClient(base_url=url, headers={"token": API_KEY}) as http:
                r = await http.post("/channel", json={"channel_id": "g1", "channel_type": 2,
                                                      "subscribers": ["a", "b"]})  # fmt: skip
                assert r.status_code == 200, r.text
            sent = await send_texts(url, 8)
            await eventually(lambda: len(receiver.held) >= 1)
            os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.1)
        interrupted = {h.event_id: h.body for h in receiver.held}
        receiver.release()  # it answers the dead node's requests now: as if it processed them
        heir = tmp_path / ("killed" if not store_url else "heir")
        options = {**FAST, **_store_options(store_url), "job_lease": lease, "node_id": 2}
        options |= {"webhook_timeout": lease / 2}
        async with running_node(heir, webhook_url=receiver.url, **options) as node:
            await eventually(lambda: _outbox_empty(node))
            await asyncio.sleep(0.2)
        assert sorted(set(receiver.notified_ids())) == sorted(sent)
        assert sorted(set(offline_ids(receiver))) == sorted(sent)
        answered = [h for h in receiver.log if h.status == 200]
        ids = Counter(h.event_id for h in answered)
        for event_id, body in interrupted.items():  # each interrupted request once more
            again = [h.body for h in answered if h.event_id == event_id]
            assert again == [body, body], event_id
        assert all(n == 1 for i, n in ids.items() if i not in interrupted), "the rest once"
    finally:
        await receiver.stop()

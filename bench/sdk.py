"""Python SDK: one client's cold sync of 10,000 messages with extensions, and a warm reconnect
after 100 extension changes.

The node is seeded in-process (the send flow and the extension service, no sockets), then
stopped and served by a separate ``magpie serve`` process on the same data, so the client's
figures are not mixed with server CPU in one event loop. Reported: wall time and HTTP
requests of the cold sync (every message cached with its extension, durably: the cache runs
``synchronous=FULL``), the same pages fetched with bare httpx and nothing cached (the
baseline: what the transfer alone costs), and the warm reconnect (connect, full sync, the 100
changed rows applied).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench._servers import API_KEY, _stop, _wait_port, free_port
from magpie.app import Node
from magpie.client import Channel, Client
from magpie.config import load_settings
from magpie.core.auth import hash_token
from magpie.core.messaging import SendRequest
from magpie.domain.ext import Actor
from magpie.ext.changes import FieldChange
from magpie.protocol.packets import Flags
from magpie.store.interface import ChannelInfo, TokenRow

MESSAGES = 10_000
CHANGES = 100
GROUP = "bench-sdk"
READER, WRITER = "reader", "writer"
TOKEN = "bench-token"
BATCH = 500


async def _seed(data_dir: Path) -> list[int]:
    """10,000 messages in one group, each with an extension; returns the message ids."""
    settings = load_settings(
        environ={},
        data_dir=str(data_dir),
        ws_port=0,
        api_port=0,
        api_key=API_KEY,
        sqlite_synchronous="NORMAL",
    )
    node = Node(settings)
    await node.start()
    try:
        for uid in (READER, WRITER):
            for flag in (0, 1, 2):
                await node.store.set_token(TokenRow(uid, flag, hash_token(TOKEN), 0))
        await node.store.upsert_channel(ChannelInfo(GROUP, 2))
        await node.store.add_subscribers(GROUP, 2, (READER, WRITER))
        ids: list[int] = []
        for start in range(0, MESSAGES, BATCH):
            ids += await asyncio.gather(*(_send(node, i) for i in range(start, start + BATCH)))
        for start in range(0, MESSAGES, BATCH):
            await asyncio.gather(
                *(_change(node, mid, "open") for mid in ids[start : start + BATCH])
            )
        return ids
    finally:
        await node.stop()


async def _send(node: Node, i: int) -> int:
    payload = json.dumps({"type": 7, "card": "approval", "title": f"request {i}"}).encode()
    req = SendRequest(WRITER, GROUP, 2, payload, f"seed-{i}", Flags.RED_DOT, from_api=True)
    result = await node.messaging.send(req)
    return result.message_id


async def _change(node: Node, message_id: int, status: str) -> None:
    change = FieldChange(status=status, extra_patch={"approvers": [WRITER], "step": 1})
    await node.ext.lww_update(
        message_id, change, updated_at=None, action_id=uuid.uuid4().hex, actor=Actor(WRITER, "b")
    )


@contextmanager
def _serve(data_dir: Path) -> Iterator[tuple[str, str]]:
    """``magpie serve`` on the seeded data: (ws url, api url)."""
    ws_port, api_port = free_port(), free_port()
    env = dict(
        os.environ,
        MAGPIE_DATA_DIR=str(data_dir),
        MAGPIE_WS_PORT=str(ws_port),
        MAGPIE_API_PORT=str(api_port),
        MAGPIE_API_KEY=API_KEY,
        MAGPIE_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen([sys.executable, "-m", "magpie.cli", "serve"], env=env)
    try:
        _wait_port(ws_port, proc)
        _wait_port(api_port, proc)
        yield f"ws://127.0.0.1:{ws_port}", f"http://127.0.0.1:{api_port}"
    finally:
        _stop(proc)


async def _sync(ws: str, http: str, cache: Path) -> tuple[float, int, Client]:
    """Open a client, wait for its full sync: (seconds, requests, the open client)."""
    client = Client(ws, READER, TOKEN, cache_path=cache, api_url=http)
    t0 = time.perf_counter()
    await client.open()
    await client.wait_synced(600)
    return time.perf_counter() - t0, client.api_requests, client


async def _baseline(http: str, page: int) -> float:
    """The same history pages with bare httpx, parsed as JSON, nothing cached."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=http, headers=headers, timeout=60) as client:
        t0 = time.perf_counter()
        for start in range(1, MESSAGES + 1, page):
            body = {
                "login_uid": READER,
                "channel_id": GROUP,
                "channel_type": 2,
                "start_message_seq": start,
                "limit": page,
                "pull_mode": 1,
            }
            r = await client.post("/channel/messagesync", json=body)
            assert len(r.json()["messages"]) == min(page, MESSAGES - start + 1)
        return time.perf_counter() - t0


async def _check(client: Client, expect_status: dict[int, str]) -> None:
    history = await client.history(Channel.group(GROUP), limit=MESSAGES)
    assert len(history) == MESSAGES, len(history)
    assert all(m.ext is not None for m in history), "every message has its extension"
    for m in history:
        assert m.ext is not None and m.ext.status == expect_status.get(m.message_id, "open")


async def _changes(http: str, ids: list[int]) -> dict[int, str]:
    chosen = random.Random(7).sample(ids, CHANGES)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=http, headers=headers, timeout=60) as client:
        for i, mid in enumerate(chosen):
            body = {
                "message_id": mid,
                "mode": "lww",
                "status": f"approved-{i}",
                "action_id": uuid.uuid4().hex,
            }
            r = await client.post("/message/extra/update", json=body)
            assert r.status_code == 200, r.text
    return {mid: f"approved-{i}" for i, mid in enumerate(chosen)}


async def _main() -> None:
    with tempfile.TemporaryDirectory(prefix="magpie-bench-sdk-") as tmp:
        data, cache = Path(tmp) / "node", Path(tmp) / "reader.db"
        t0 = time.perf_counter()
        ids = await _seed(data)
        print(
            f"seeded {MESSAGES:,} messages + {MESSAGES:,} extension changes in-process "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        with _serve(data) as (ws, http):
            cold, requests, client = await _sync(ws, http, cache)
            await _check(client, {})
            page = client.options.sync_page_size
            await client.close()
            base = await _baseline(http, page)
            changed = await _changes(http, ids)
            warm, warm_requests, client = await _sync(ws, http, cache)
            await _check(client, changed)
            await client.close()
        _report(cold, requests, base, page, warm, warm_requests)


def _report(cold: float, requests: int, base: float, page: int, warm: float, warm_req: int) -> None:
    print(f"{'':38}{'seconds':>9}{'requests':>10}{'msgs/s':>10}")
    print(f"{'cold sync, SDK (cached, FULL)':38}{cold:9.2f}{requests:10d}{MESSAGES / cold:10,.0f}")
    pages = -(-MESSAGES // page)
    print(f"{'baseline: bare httpx, same pages':38}{base:9.2f}{pages:10d}{MESSAGES / base:10,.0f}")
    print(f"{'ratio SDK / baseline':38}{cold / base:9.2f}")
    print(f"{f'warm reconnect after {CHANGES} changes':38}{warm:9.2f}{warm_req:10d}")


def run() -> None:
    """Entry point of ``python -m bench sdk``."""
    asyncio.run(_main())


if __name__ == "__main__":
    run()

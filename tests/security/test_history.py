"""Defect 4: history answers are bounded. Each answer carries at most ``history_max_bytes``
of JSON (one item more only when a single item is larger) and says ``more``; paging on from
it yields every item exactly once; a user's parallel reads and the node's are bounded; and a
server process under parallel huge requests stays within a memory bound that unbounded
answers exceed many times over."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from magpie.api.history import MORE_HEADER, AnswerBudget, ReadGate, encode
from magpie.api.http import Busy
from magpie.app import Node
from magpie.store.interface import ChannelInfo, NewMessage
from magpie.store.sqlite import SqliteStore
from tests.security.conftest import b64_json, client, token_of
from tests.support.nodes import API_KEY, add_user, make_group, running_node, time_scale

#: The answer budget of the test node, and the payload of its messages (raw bytes).
BUDGET = 64 * 1024
PAYLOAD = 9 * 1024
MESSAGES = 40


def payload(n: int) -> bytes:
    """A ~``PAYLOAD``-byte JSON message numbered ``n``."""
    return json.dumps({"type": 1, "n": n, "content": "m" * PAYLOAD}).encode()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """A node with a small answer budget; group ``g1`` (alice, bob) of ``MESSAGES``
    messages of ~9 KiB, each with a ~6 KiB extension."""
    async with running_node(
        tmp_path, history_max_bytes=BUDGET, max_payload_bytes=64 * 1024, ext_coalesce_ms=0
    ) as n:
        for uid in ("alice", "bob"):
            await add_user(n, uid, token_of(uid))
        await make_group(n, "g1", ["alice", "bob"])
        async with client(n, API_KEY) as http:
            for i in range(MESSAGES):
                body = {
                    "from_uid": "alice",
                    "channel_id": "g1",
                    "channel_type": 2,
                    "payload": base64.b64encode(payload(i)).decode(),
                }
                sent = (await http.post("/message/send", json=body)).json()["data"]
                change = {
                    "message_id": sent["message_id"],
                    "action_id": f"x{i}",
                    "mode": "lww",
                    "extra_patch": {"note": "e" * 6000, "n": i},
                }
                assert (await http.post("/message/extra/update", json=change)).status_code == 200
        yield n


def _bounded(r: httpx.Response, largest_item: int) -> None:
    assert r.status_code == 200, r.text
    assert len(r.content) <= BUDGET + largest_item + 512, len(r.content)


async def test_messagesync_pages_within_the_budget_and_loses_nothing(node: Node) -> None:
    async with client(node, token_of("alice")) as me:
        for pull_mode in (0, 1):
            seen: list[int] = []
            start, pages = (0 if pull_mode == 0 else 1), 0
            while True:
                body = {
                    "login_uid": "alice",
                    "channel_id": "g1",
                    "channel_type": 2,
                    "start_message_seq": start,
                    "limit": 10_000,
                    "pull_mode": pull_mode,
                }
                r = await me.post("/channel/messagesync", json=body)
                _bounded(r, 24 * 1024)
                page = r.json()
                seqs = [m["message_seq"] for m in page["messages"]]
                assert seqs == sorted(seqs) and seqs, page["more"]
                assert r.headers[MORE_HEADER] == str(page["more"])
                assert all(
                    m["message_extra"]["extra"]["n"] == m["message_seq"] - 1
                    for m in page["messages"]
                )
                seen += seqs
                pages += 1
                if not page["more"]:
                    break
                start = seqs[0] - 1 if pull_mode == 0 else seqs[-1] + 1
            assert sorted(seen) == list(range(1, MESSAGES + 1)), (pull_mode, seen)
            assert len(seen) == len(set(seen))
            assert pages >= MESSAGES * 15 * 1024 // BUDGET  # the budget, not the limit, paged


async def test_extension_sync_pages_within_the_budget(node: Node) -> None:
    async with client(node, token_of("alice")) as me:
        body = {"channel_id": "g1", "channel_type": 2, "limit": 1000, "envelope": 1}
        newest = await me.post("/message/extra/sync", json={**body, "extra_version": 0})
        _bounded(newest, 8 * 1024)
        rows = newest.json()["rows"]
        assert 1 < len(rows) < MESSAGES and rows[-1]["extra_version"] == MESSAGES
        cursor, seen = 0, []
        while True:
            r = await me.post("/message/extra/sync", json={**body, "extra_version": cursor or 1})
            _bounded(r, 8 * 1024)
            page = r.json()
            seen += [row["extra_version"] for row in page["rows"]]
            if not page["more"]:
                break
            cursor = page["rows"][-1]["extra_version"]
        assert seen == list(range(2, MESSAGES + 1))


async def test_offline_queue_and_operation_logs_are_bounded(node: Node) -> None:
    async with client(node, API_KEY) as http:
        for i in range(20):  # commands of ~9 KiB into bob's offline queue
            body = {
                "from_uid": "alice",
                "channel_id": "bob",
                "channel_type": 1,
                "header": {"sync_once": 1},
                "payload": base64.b64encode(payload(i)).decode(),
            }
            assert (await http.post("/message/send", json=body)).status_code == 200
        r = await http.post("/message/sync", json={"uid": "bob", "limit": 10_000})
        _bounded(r, 16 * 1024)
        assert r.headers[MORE_HEADER] == "1" and 1 < len(r.json()) < 20
        page = await http.post(
            "/channel/messagesync", json={"channel_id": "g1", "channel_type": 2, "limit": 1}
        )
        mid = page.json()["messages"][0]["message_id"]
        for i in range(30):  # patches of ~5 KiB in one message's log
            change = {
                "message_id": mid,
                "action_id": f"p{i}",
                "mode": "lww",
                "extra_patch": {"p": "p" * 5000},
            }
            assert (await http.post("/message/extra/update", json=change)).status_code == 200
        ops = await http.post("/message/extra/ops", json={"message_id": mid, "limit": 1000})
        _bounded(ops, 8 * 1024)
        assert ops.json()["more"] == 1 and len(ops.json()["data"]) < 31


async def test_conversation_recents_are_bounded(node: Node) -> None:
    async with client(node, token_of("bob")) as me:
        r = await me.post("/conversation/sync", json={"uid": "bob", "msg_count": 100})
        _bounded(r, 24 * 1024)
        conversations = r.json()
        assert [c["channel_id"] for c in conversations] == ["g1"]
        assert 1 < len(conversations[0]["recents"]) < MESSAGES


async def test_a_removed_member_gets_no_recents_sent_after_leaving(node: Node) -> None:
    async with client(node, API_KEY) as http:
        body = {"channel_id": "g1", "channel_type": 2, "subscribers": ["bob"]}
        assert (await http.post("/channel/subscriber_remove", json=body)).status_code == 200
        later = {
            "from_uid": "alice",
            "channel_id": "g1",
            "channel_type": 2,
            "payload": b64_json({"type": 1, "content": "after-bob-left"}),
        }
        assert (await http.post("/message/send", json=later)).status_code == 200
    async with client(node, token_of("bob")) as me:
        r = await me.post("/conversation/sync", json={"uid": "bob", "msg_count": 3})
        assert r.status_code == 200 and "after-bob-left" not in r.text
        assert b64_json({"type": 1, "content": "after-bob-left"}) not in r.text


async def test_a_users_reads_beyond_the_bound_wait_then_get_busy(tmp_path: Path) -> None:
    async with running_node(tmp_path, history_wait_timeout=0.2 * time_scale()) as n:
        await add_user(n, "alice", token_of("alice"))
        await make_group(n, "g1", ["alice"])
        assert n.api is not None
        body = {"login_uid": "alice", "channel_id": "g1", "channel_type": 2}
        async with client(n, token_of("alice")) as me:
            async with n.api.reads.slot("alice"), n.api.reads.slot("alice"):
                busy = await me.post("/channel/messagesync", json=body)
                assert (busy.status_code, busy.json()["code"]) == (503, "busy")
                assert busy.headers["retry-after"] == "1"
                async with client(n, API_KEY) as http:  # others are served meanwhile
                    assert (await http.post("/channel/messagesync", json=body)).status_code == 200
            assert (await me.post("/channel/messagesync", json=body)).status_code == 200
        assert n.api.reads.waiting_users() == 0


# --- the pure parts at N and N+1 -------------------------------------------------------------


def test_the_answer_budget_at_n_and_n_plus_one() -> None:
    items = [{"i": i, "s": "x" * 10} for i in range(5)]
    sizes = [len(encode(item)) + 1 for item in items]
    exact = AnswerBudget(sum(sizes[:3]))
    assert [exact.add(item) for item in items] == [True, True, True, False, False]
    assert exact.full and json.loads(exact.array()) == items[:3]
    one_more = AnswerBudget(sum(sizes[:3]) + sizes[3])
    assert sum(one_more.add(item) for item in items) == 4
    short = AnswerBudget(sum(sizes[:3]) - 1)
    assert sum(short.add(item) for item in items) == 2
    tiny = AnswerBudget(1)  # a single item larger than the budget still goes
    assert tiny.add(items[0]) and not tiny.add(items[1])
    assert json.loads(exact.object({"a": 1}, "rows")) == {"a": 1, "rows": items[:3]}


async def test_the_read_gate_bounds_users_and_the_node() -> None:
    refused: list[int] = []
    gate = ReadGate(total=3, per_user=2, timeout=0.1, on_refused=lambda: refused.append(1))
    async with gate.slot("u"), gate.slot("u"):
        with pytest.raises(Busy):  # the user's third read
            async with gate.slot("u"):
                pass
        async with gate.slot("v"):  # another user: the node's third slot
            with pytest.raises(Busy):  # the node is full, even for the business server
                async with gate.slot(None):
                    pass
    async with gate.slot(None), gate.slot(None), gate.slot(None):
        pass
    assert len(refused) == 2 and gate.waiting_users() == 0


async def test_a_waiting_read_gets_the_slot_when_one_frees() -> None:
    gate = ReadGate(total=1, per_user=1, timeout=5)
    order: list[str] = []

    async def read(name: str, hold: float) -> None:
        async with gate.slot(name):
            order.append(name)
            await asyncio.sleep(hold)

    await asyncio.gather(read("a", 0.05), read("b", 0))
    assert order == ["a", "b"]


# --- memory of a server process -------------------------------------------------------------

#: Messages of the maximal default payload (512 KiB) in the memory test's channel.
BIG_MESSAGES = 100
BIG_PAYLOAD = 512 * 1024
PARALLEL = 6
#: Growth of the peak RSS allowed under the attack: unbounded answers (the whole 50 MiB
#: channel as base64 JSON, per request) take several hundred MiB.
RSS_BOUND = 120 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


async def _seed(data_dir: Path) -> None:
    """A channel of ``BIG_MESSAGES`` incompressible maximal payloads, written straight into
    the node's SQLite file before it starts."""
    store = SqliteStore(data_dir / "magpie.db", synchronous="OFF")
    await store.open()
    try:
        await store.upsert_channel(ChannelInfo("big", 2, False, False))
        await store.add_subscribers("big", 2, ["alice"])
        rng = random.Random(7)
        for n in range(BIG_MESSAGES):
            body = {
                "type": 1,
                "content": base64.b64encode(rng.randbytes(BIG_PAYLOAD * 3 // 4 - 64)),
            }
            raw = json.dumps({**body, "content": body["content"].decode()}).encode()
            message = NewMessage(10_000 + n, f"c{n}", "alice", "big", 2, 1_700_000_000 + n, raw)
            await store.append_message(message, [])
    finally:
        await store.close()


async def _hammer(base: str) -> list[httpx.Response]:
    body = {"channel_id": "big", "channel_type": 2, "limit": 10_000}
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120 * time_scale()
    ) as http:
        return await asyncio.gather(
            *(http.post("/channel/messagesync", json=body) for _ in range(PARALLEL))
        )


async def test_memory_stays_flat_under_parallel_huge_history_reads(tmp_path: Path) -> None:
    await _seed(tmp_path)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(
        MAGPIE_DATA_DIR=str(tmp_path),
        MAGPIE_API_PORT=str(port),
        MAGPIE_WS_PORT=str(_free_port()),
        MAGPIE_TCP_PORT="0",
        MAGPIE_API_KEY=API_KEY,
        MAGPIE_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "magpie.cli", "serve"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_ready(base)
        body = {"channel_id": "big", "channel_type": 2, "limit": 1}
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as h:
            assert (await h.post("/channel/messagesync", json=body)).status_code == 200
        before = _memory(proc.pid)["VmRSS"]
        answers = await _hammer(base)
        growth = _memory(proc.pid)["VmHWM"] - before
        print(f"peak RSS growth under {PARALLEL} parallel reads: {growth / 2**20:.0f} MiB")
        assert growth < RSS_BOUND, f"{growth / 2**20:.0f} MiB"
        for r in answers:
            assert r.status_code == 200, r.text[:200]
            assert r.json()["more"] == 1 and len(r.content) < 5 * 1024 * 1024
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20 * time_scale())
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_ready(base: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30 * time_scale()
    async with httpx.AsyncClient(base_url=base) as http:
        while True:
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "the server never came up"
            await asyncio.sleep(0.1)

"""The sync logic against a scripted HTTP API (httpx.MockTransport): coalesced pulls, CMD
duplicates, live gap fills, the cursor-0 rule, the epoch rule and per-channel refusals."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from magpie.client import Channel, ClientOptions, SyncPhase, SyncProgress
from magpie.client.cache import Cache
from magpie.client.http import HttpApi
from magpie.client.model import ExtChange, Message
from magpie.client.sync import Coalescer, Syncer
from magpie.domain.ext import ExtState, Fields
from tests.support.nodes import settle, time_scale

G = Channel.group("g1")


class FakeServer:
    """The three sync endpoints over an in-memory channel ``g1``."""

    def __init__(self) -> None:
        self.epoch = "e1"
        self.messages: dict[int, dict[str, Any]] = {}  # seq -> MessageResp
        self.rows: dict[int, ExtState] = {}  # message_id -> current row
        self.extra_version = 0
        self.paths: list[str] = []
        self.refuse: int | None = None
        self.busy = 0  # answers of 503 busy (Retry-After: 1) still to give
        self.retry_after = "1"

    def add(self, n: int) -> None:
        for _ in range(n):
            seq = len(self.messages) + 1
            payload = base64.b64encode(b'{"type":1,"content":"m%d"}' % seq).decode()
            self.messages[seq] = {
                "message_id": 100 + seq,
                "message_seq": seq,
                "from_uid": "a",
                "client_msg_no": f"c{seq}",
                "timestamp": seq,
                "payload": payload,
            }

    def change(self, seq: int, status: str) -> None:
        mid = 100 + seq
        self.extra_version += 1
        old = self.rows.get(mid)
        self.rows[mid] = ExtState(
            mid,
            "g1",
            2,
            seq,
            Fields(status),
            version=(old.version if old else 0) + 1,
            extra_version=self.extra_version,
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if self.refuse is not None:
            return httpx.Response(self.refuse, json={"code": "forbidden", "msg": "no"})
        if self.busy:
            self.busy -= 1
            body = {"code": "busy", "msg": "too many history reads at once; try again shortly"}
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return httpx.Response(503, json=body, headers=headers)
        body = json.loads(request.content)
        headers = {"X-Magpie-Epoch": self.epoch}
        if request.url.path == "/conversation/sync":
            top = len(self.messages)
            conv = {"channel_id": "g1", "channel_type": 2, "last_msg_seq": top, "version": top}
            return httpx.Response(200, json=[conv] if top else [], headers=headers)
        if request.url.path == "/channel/messagesync":
            return httpx.Response(200, json=self._page(body), headers=headers)
        return httpx.Response(200, json=self._ext(body), headers=headers)

    def _page(self, body: dict[str, Any]) -> dict[str, Any]:
        start, end, limit = body["start_message_seq"], body["end_message_seq"], body["limit"]
        seqs = [s for s in sorted(self.messages) if s >= start and (not end or s < end)]
        got = seqs[:limit]
        out = []
        for s in got:
            row = self.rows.get(100 + s)
            out.append({**self.messages[s], "message_extra": row and row.to_json()})
        return {"messages": out, "more": int(len(seqs) > limit)}

    def _ext(self, body: dict[str, Any]) -> dict[str, Any]:
        rows = sorted(self.rows.values(), key=lambda r: r.extra_version)
        cursor, limit = body["extra_version"], body["limit"]
        if cursor == 0:  # the newest only (TangSengDaoDao's rule)
            page, more = rows[-limit:], False
        else:
            after = [r for r in rows if r.extra_version > cursor]
            page, more = after[:limit], len(after) > limit
        return {"epoch": self.epoch, "rows": [r.to_json() for r in page], "more": int(more)}


class Sink:
    def __init__(self) -> None:
        self.events: list[SyncProgress] = []
        self.changes: list[ExtChange] = []
        self.messages: list[Message] = []
        self.resyncs = 0

    def progress(self, event: SyncProgress) -> None:
        self.events.append(event)

    def synced_messages(self, messages: Any) -> None:
        self.messages += messages

    def ext_changes_applied(self, changes: Any) -> None:
        self.changes += changes

    def resync(self) -> None:
        self.resyncs += 1


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
async def parts(server: FakeServer) -> AsyncIterator[tuple[Syncer, Cache, Sink]]:
    cache = Cache(None)
    await cache.open("bob")
    api = HttpApi(
        "http://fake",
        "bob",
        "t",
        timeout=5,
        transport=httpx.MockTransport(server),
        read_retry_max=0.01,  # the server asks for 1 s
    )
    sink = Sink()
    options = ClientOptions(sync_page_size=10, ext_page_size=10, gap_fill_delay=0)
    syncer = Syncer(cache, api, options, sink)
    yield syncer, cache, sink
    await syncer.close()
    await api.close()
    await cache.close()


async def test_cold_full_sync_pages_history_with_extensions(
    server: FakeServer, parts: tuple[Syncer, Cache, Sink]
) -> None:
    syncer, cache, sink = parts
    server.add(25)
    for seq in range(1, 26):
        server.change(seq, "open")
    await syncer.full_sync()
    assert [m.message_seq for m in await cache.history(G, limit=100)] == list(range(1, 26))
    assert all(m.ext is not None for m in await cache.history(G, limit=100))
    assert server.paths.count("/channel/messagesync") == 3 and cache.epoch == "e1"
    assert server.paths.count("/message/extra/sync") == 1, "a cold channel needs no backfill"
    assert await cache.ext_cursor(G) == 25 and len(sink.messages) == 25
    assert [e.phase for e in sink.events][-1] is SyncPhase.DONE


async def test_warm_channel_with_a_full_first_ext_page_is_backfilled(
    server: FakeServer, parts: tuple[Syncer, Cache, Sink]
) -> None:
    syncer, cache, _ = parts
    server.add(30)
    await syncer.full_sync()  # messages cached, no extension yet: cursor 0
    for seq in range(1, 31):
        server.change(seq, "late")  # 30 rows: the newest 10 come back for cursor 0
    server.paths.clear()
    await syncer.full_sync()
    history = await cache.history(G, limit=100)
    assert [m.ext.status if m.ext else None for m in history] == ["late"] * 30
    assert server.paths.count("/channel/messagesync") == 3, "the cached range pulled again"


async def test_cmd_pulls_and_duplicates_cost_nothing(
    server: FakeServer, parts: tuple[Syncer, Cache, Sink]
) -> None:
    syncer, _, sink = parts
    server.add(3)
    server.change(1, "a")
    await syncer.full_sync()
    server.change(2, "b")
    server.paths.clear()
    syncer.ext_changed(G, 2)
    await _until(lambda: len(sink.changes) == 2)
    assert server.paths == ["/message/extra/sync"]
    syncer.ext_changed(G, 2)  # the same CMD again, and an older one
    syncer.ext_changed(G, 1)
    await settle(0.05)
    assert server.paths == ["/message/extra/sync"] and len(sink.changes) == 2


async def test_a_busy_answer_is_asked_again_after_its_retry_after(
    server: FakeServer, parts: tuple[Syncer, Cache, Sink]
) -> None:
    """503 busy with Retry-After (an overloaded node's history gate) is waited out: the
    CMD's pull and a full sync still apply every change; the third busy answer in a row
    gives up (ApiUnavailable), and a 503 without Retry-After is not asked again."""
    syncer, _, sink = parts
    server.add(3)
    server.change(1, "a")
    server.busy = 2
    await syncer.full_sync()
    assert server.paths[:3] == ["/conversation/sync"] * 3 and len(sink.changes) == 1
    server.change(2, "b")
    server.paths.clear()
    server.busy = 2
    syncer.ext_changed(G, 2)
    await _until(lambda: len(sink.changes) == 2)
    assert server.paths == ["/message/extra/sync"] * 3
    server.change(3, "c")
    server.paths.clear()
    server.busy = 3
    syncer.ext_changed(G, 3)
    await settle(0.1)
    assert server.paths == ["/message/extra/sync"] * 3 and len(sink.changes) == 2
    server.retry_after = ""
    server.busy = 1
    server.paths.clear()
    syncer.ext_changed(G, 3)
    await settle(0.1)
    assert server.paths == ["/message/extra/sync"] and len(sink.changes) == 2
    syncer.ext_changed(G, 3)
    await _until(lambda: len(sink.changes) == 3)


async def test_live_gap_is_filled(server: FakeServer, parts: tuple[Syncer, Cache, Sink]) -> None:
    syncer, cache, _ = parts
    server.add(1)
    await syncer.full_sync()
    server.add(2)  # seq 2 was missed; seq 3 arrives live
    live = Message.of(G, 103, 3, "c3", "a", 3, b'{"type":1,"content":"m3"}')
    await cache.put_messages([live])
    syncer.live_gap(G)
    await _until_async(lambda: cache.holes(G, 1, 3), [])
    assert server.paths.count("/channel/messagesync") == 2


async def test_data_cached_without_an_epoch_is_dropped_by_the_first_sync(
    server: FakeServer, parts: tuple[Syncer, Cache, Sink]
) -> None:
    """Messages cached before any epoch was recorded (an older SDK's file, say) cannot be
    tied to a store: the first answer's epoch is not adopted for them; they are dropped."""
    syncer, cache, sink = parts
    await cache.put_messages([Message.of(G, 901, 1, "old", "a", 1, b'{"type":1}')])
    server.add(1)
    await syncer.full_sync()
    assert cache.epoch == "e1"
    assert [m.message_id for m in await cache.history(G)] == [101]
    assert SyncPhase.RESET in [e.phase for e in sink.events]


async def test_a_new_epoch_resets_the_cache_and_starts_over(
    server: FakeServer, parts: tuple[Syncer, Cache, Sink]
) -> None:
    syncer, cache, sink = parts
    server.add(5)
    await syncer.full_sync()
    server.epoch, server.messages, server.rows = "e2", {}, {}
    server.add(2)
    await syncer.full_sync()
    assert cache.epoch == "e2"
    assert [m.message_seq for m in await cache.history(G)] == [1, 2]
    assert SyncPhase.RESET in [e.phase for e in sink.events]


async def test_a_refused_channel_is_skipped(
    server: FakeServer, parts: tuple[Syncer, Cache, Sink]
) -> None:
    syncer, cache, sink = parts
    await cache.put_messages([Message.of(G, 101, 2, "c", "a", 1, b"{}")])
    server.refuse = 403
    with pytest.raises(Exception, match="403"):
        await syncer.full_sync()  # the conversation list itself is refused: the run fails
    assert sink.events[-1].phase is SyncPhase.FAILED
    server.refuse = None
    server.add(2)
    await syncer.full_sync()
    await cache.put_messages([Message.of(G, 104, 4, "c4", "a", 4, b"{}")])  # live; 3 missed
    server.refuse = 403
    await syncer._fill(G)  # a per-channel refusal is reported, not raised
    assert sink.events[-1].phase is SyncPhase.FAILED and sink.events[-1].channel == G


async def test_coalescer_runs_once_more_for_requests_during_a_run() -> None:
    runs: list[str] = []
    gate = asyncio.Event()

    async def work(key: str) -> None:
        runs.append(key)
        await gate.wait()

    errors: list[BaseException] = []
    c: Coalescer[str] = Coalescer(work, lambda k, e: errors.append(e))
    first = c.kick("a")
    c.kick("a")  # before the run started: merged into it
    await asyncio.sleep(0.01)
    for _ in range(5):
        c.kick("a")  # during the run: exactly one more run
    c.kick("b")
    await asyncio.sleep(0.01)
    gate.set()
    await first
    await c.run("b")
    assert runs == ["a", "b", "a", "b"] and errors == []


async def _until(check: Any, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout * time_scale()):
        while not check():
            await asyncio.sleep(0.01)


async def _until_async(get: Any, want: Any, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout * time_scale()):
        while await get() != want:
            await asyncio.sleep(0.01)

"""Outgoing webhooks: a real node posting to a local receiver (on both stores), and the
dispatcher alone on a real store with a mocked HTTP transport."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.api.webhooks import (
    WEBHOOK_KIND,
    WebhookConfig,
    WebhookDispatcher,
    notify_job,
    offline_job,
    status_job,
    verify,
)
from magpie.app import Node, wire_webhooks
from magpie.metrics import Metrics
from magpie.store.interface import NewMessage
from magpie.store.sqlite import SqliteStore
from tests.api.helpers import text
from tests.support.nodes import (
    API_KEY,
    add_user,
    api,
    connect,
    make_group,
    running_node,
    time_scale,
)
from tests.support.webhooks import Receiver

#: Run on both stores (tests.api.conftest).
BOTH_STORES = True

T = 5 * time_scale()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def hooked_node(
    tmp_path: Path, receiver: Receiver, store_url: str = "", **kw: Any
) -> contextlib.AbstractAsyncContextManager[Node]:
    """A node posting its webhooks to ``receiver`` every 50 ms, retrying after 50 ms."""
    if store_url:
        kw |= {"store_url": store_url, "store_pool_size": 4}
    options = {"webhook_batch_interval": 0.05, "webhook_backoff": 0.05, **kw}
    return running_node(tmp_path, webhook_url=receiver.url, **options)


def counted(metrics: Metrics, family: str, event: str) -> float:
    """The value of ``<family>_total{event=...}``."""
    value = metrics.registry.get_sample_value(f"{family}_total", {"event": event})
    return value or 0.0


def failures(metrics: Metrics, event: str) -> float:
    return counted(metrics, "magpie_webhook_failures", event)


async def test_msg_notify_batches_signed_messages(
    tmp_path: Path, receiver: Receiver, store_url: str
) -> None:
    async with hooked_node(tmp_path, receiver, store_url, webhook_secret="s3cret") as node:
        await make_group(node, "g1", ["a", "b"])
        async with api(node) as http:
            sent = []
            for i in range(2):
                body = {
                    "from_uid": "a",
                    "channel_id": "g1",
                    "channel_type": 2,
                    "payload": text(f"{i}"),
                }
                sent.append(
                    (await http.post("/message/send", json=body)).json()["data"]["message_id"]
                )
            online_only = {**body, "header": {"no_persist": 1}}
            await http.post("/message/send", json=online_only)
        seen: list[dict[str, Any]] = []
        event_ids = set()
        while len(seen) < 2:
            hit = await receiver.next_event("msg.notify")
            assert hit.target.startswith("/hook?event=msg.notify")
            ts, sig = hit.headers["x-magpie-timestamp"], hit.headers["x-magpie-signature"]
            expected = hmac.new(b"s3cret", f"{ts}.".encode() + hit.body, hashlib.sha256)
            assert sig == "sha256=" + expected.hexdigest()
            assert verify(b"s3cret", ts, hit.body, sig) and not verify(b"x", ts, hit.body, sig)
            assert hit.event_id.startswith(node.store.epoch[:12] + ".")
            event_ids.add(hit.event_id)
            seen.extend(hit.json())
        assert [m["message_id"] for m in seen] == sent, "no-persist messages are not notified"
        assert seen[0]["channel_id"] == "g1" and seen[0]["message_seq"] == 1
        assert len(event_ids) == len(receiver.delivered("msg.notify")), "one id per request"


async def test_signature_defaults_to_api_key_and_person_channel_shows_receiver(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with hooked_node(tmp_path, receiver) as node, api(node) as http:
        body = {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": text("x")}
        assert (await http.post("/message/send", json=body)).status_code == 200
        hit = await receiver.next_event("msg.notify")
        headers = hit.headers
        assert verify(
            API_KEY.encode(), headers["x-magpie-timestamp"], hit.body, headers["x-magpie-signature"]
        )
        (msg,) = hit.json()
        assert (msg["from_uid"], msg["channel_id"]) == ("a", "b")


async def test_a_failing_receiver_gets_the_same_requests_again(
    tmp_path: Path, store_url: str
) -> None:
    receiver = Receiver(fail_first=2)
    await receiver.start()
    try:
        async with hooked_node(tmp_path, receiver, store_url) as node, api(node) as http:
            body = {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": text("x")}
            data = (await http.post("/message/send", json=body)).json()["data"]
            hit = await receiver.next_event("msg.notify")
            assert [m["message_id"] for m in hit.json()] == [data["message_id"]]
            offline = await receiver.next_event("msg.offline")
            assert offline.json()["message_id"] == data["message_id"]
            assert receiver.calls == 4
            failed = {h.event: h.event_id for h in receiver.log if h.status == 500}
            assert failed == {"msg.notify": hit.event_id, "msg.offline": offline.event_id}
            assert failures(node.metrics, "msg.notify") == 0
            events = ("msg.notify", "msg.offline")
            assert sum(counted(node.metrics, "magpie_webhook_retries", e) for e in events) == 2
            for _ in range(int(100 * time_scale())):  # counted once the answer is read
                if counted(node.metrics, "magpie_webhook_deliveries", "msg.offline") == 1:
                    break
                await asyncio.sleep(0.01)
            assert counted(node.metrics, "magpie_webhook_deliveries", "msg.notify") == 1
            assert counted(node.metrics, "magpie_webhook_deliveries", "msg.offline") == 1
    finally:
        await receiver.stop()


async def test_msg_offline_names_recipients_without_online_master(
    tmp_path: Path, receiver: Receiver, store_url: str
) -> None:
    async with hooked_node(tmp_path, receiver, store_url) as node:
        tokens = {u: await add_user(node, u, level=1) for u in ("b", "c")}
        await make_group(node, "g1", ["a", "b", "c", "d"])
        b = await connect(node, "b", tokens["b"], device_flag=1)  # a master device
        async with api(node) as http:
            body = {"from_uid": "a", "channel_id": "g1", "channel_type": 2, "payload": text("x")}
            message_id = (await http.post("/message/send", json=body)).json()["data"]["message_id"]
        hit = await receiver.next_event("msg.offline")
        out = hit.json()
        assert out["message_id"] == message_id and out["to_uids"] == ["c", "d"]
        assert out["channel_id"] == "g1" and "payload" in out
        assert hit.event_id.endswith("." + str(_job_id(hit.event_id))), "one event: its job id"
        await b.close()


def _job_id(event_id: str) -> int:
    return int(event_id.rsplit(".", 1)[1])


async def test_user_onlinestatus_from_presence_callback(
    tmp_path: Path, receiver: Receiver, store_url: str
) -> None:
    async with hooked_node(tmp_path, receiver, store_url) as node:
        token = await add_user(node, "a")
        client = await connect(node, "a", token, device_flag=1)
        conn_id = node.gateway.online("a")[0].conn_id.lstrip("c")
        hit = await receiver.next_event("user.onlinestatus")
        assert hit.json() == [f"a-1-1-{conn_id}-1-1"]
        await client.close()
        hit = await receiver.next_event("user.onlinestatus")
        assert hit.json() == [f"a-1-0-{conn_id}-0-0"]


async def test_the_events_are_committed_with_the_message(
    tmp_path: Path, receiver: Receiver, store_url: str
) -> None:
    receiver.down = True
    async with hooked_node(tmp_path, receiver, store_url, webhook_batch_interval=30.0) as node:
        async with api(node) as http:
            body = {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": text("x")}
            body["client_msg_no"] = "once"
            first = (await http.post("/message/send", json=body)).json()["data"]
            again = (await http.post("/message/send", json=body)).json()["data"]
        assert first["message_id"] == again["message_id"]
        jobs = await node.store.list_jobs(WEBHOOK_KIND, dead=False)
        payloads = sorted((j.payload["event"], j.payload["message_id"]) for j in jobs)
        assert payloads == [
            ("msg.notify", first["message_id"]),
            ("msg.offline", first["message_id"]),
        ]


async def test_with_webhooks_off_nothing_is_enqueued(tmp_path: Path, store_url: str) -> None:
    options = {"store_url": store_url, "store_pool_size": 4} if store_url else {}
    async with running_node(tmp_path, **options) as node:
        assert node.webhooks is None
        token = await add_user(node, "a")
        client = await connect(node, "a", token)
        await make_group(node, "g1", ["a", "b"])
        async with api(node) as http:
            body = {"from_uid": "a", "channel_id": "g1", "channel_type": 2, "payload": text("x")}
            assert (await http.post("/message/send", json=body)).status_code == 200
        await client.close()
        await asyncio.sleep(0.05)
        assert await node.store.count_jobs() == []


@dataclass
class FakeSession:
    device_flag: int
    device_level: int


class FakeGateway:
    """A presence source like the gateway will be once it reports connects/disconnects."""

    port = 1

    def __init__(self) -> None:
        self.sessions: dict[str, list[FakeSession]] = {}
        self.listeners: list[Any] = []

    def online(self, uid: str) -> list[FakeSession]:
        return self.sessions.get(uid, [])

    def add_presence_listener(self, callback: Any) -> None:
        self.listeners.append(callback)


async def test_the_composition_root_subscribes_to_a_presence_source(
    node: Node, receiver: Receiver
) -> None:
    gateway = FakeGateway()
    settings = node.settings.replace(webhook_url=receiver.url, webhook_batch_interval=0.05)
    hooks = wire_webhooks(
        settings, API_KEY, Metrics(), node.messaging, gateway, store=node.store, owner="t"
    )
    assert hooks is not None
    await hooks.start()
    try:
        assert gateway.listeners == [hooks.on_presence]
        gateway.sessions["u-1"] = [FakeSession(2, 1), FakeSession(1, 0)]
        gateway.listeners[0]("u-1", 2, True, "c12")
        gateway.sessions["u-1"] = [FakeSession(1, 0)]
        gateway.listeners[0]("u-1", 2, False, "c12")
        hit = await receiver.next_event("user.onlinestatus")
        assert hit.json() == ["u-1-2-1-12-1-2", "u-1-2-0-12-0-1"]
    finally:
        await hooks.stop()
    no_hooks = node.settings.replace(webhook_url="")
    gone = wire_webhooks(
        no_hooks, API_KEY, Metrics(), node.messaging, FakeGateway(), store=node.store, owner="t"
    )
    assert gone is None


# --- the dispatcher alone (a real SQLite store, httpx.MockTransport) -------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "hooks.db", synchronous="NORMAL")
    await s.open()
    yield s
    await s.close()


def dispatcher(store: SqliteStore, handler: Any, metrics: Metrics, **kw: Any) -> WebhookDispatcher:
    options = {"batch_interval": 0.01, "backoff": 0.01, "max_backoff": 0.02, **kw}
    config = WebhookConfig(url="http://hook.invalid/x", secret=b"k", **options)
    transport = httpx.MockTransport(handler)
    return WebhookDispatcher(config, store, metrics, owner="t", transport=transport)


async def message(store: SqliteStore, n: int, payload: bytes = b'{"type":1}') -> int:
    new = NewMessage(n, f"c{n}", "a", "g1", 2, 1_700_000_000, payload)
    return (await store.append_message(new, ["a", "b"])).message.message_id


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def drained(store: SqliteStore) -> None:
    deadline = time.monotonic() + T
    while await store.list_jobs(WEBHOOK_KIND, dead=False):
        assert time.monotonic() < deadline, "the outbox did not drain"
        await asyncio.sleep(0.01)


async def test_exhausted_attempts_are_dead_and_counted(store: SqliteStore) -> None:
    metrics, calls = Metrics(), []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    hooks = dispatcher(store, handler, metrics, attempts=3)
    mid = await message(store, 1)
    await store.enqueue_jobs([offline_job(mid, ["u"], now_ms())])
    await hooks.start()
    try:
        await drained(store)
    finally:
        await hooks.stop()
    assert len(calls) == 3 and failures(metrics, "msg.offline") == 1
    assert len({c.headers["x-magpie-event-id"] for c in calls}) == 1, "the same request"
    assert counted(metrics, "magpie_webhook_retries", "msg.offline") == 2
    assert counted(metrics, "magpie_webhook_deliveries", "msg.offline") == 0
    assert calls[0].url.params["event"] == "msg.offline"
    (dead,) = await store.list_jobs(WEBHOOK_KIND, dead=True)
    assert (dead.attempts, dead.last_error, dead.payload["to_uids"]) == (3, "HTTP 503", ["u"])


async def test_transport_errors_are_retried(store: SqliteStore) -> None:
    metrics, calls = Metrics(), []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(204)

    hooks = dispatcher(store, handler, metrics)
    await store.enqueue_jobs([status_job("a-1-1-1-1-1", now_ms())])
    await hooks.start()
    try:
        await drained(store)
    finally:
        await hooks.stop()
    bodies = [json.loads(c.content) for c in calls]
    assert bodies == [["a-1-1-1-1-1"]] * 2
    assert failures(metrics, "user.onlinestatus") == 0


async def test_entries_first_sent_together_are_sent_together_again(store: SqliteStore) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500 if len(calls) == 1 else 200)

    ids = [await message(store, n) for n in range(3)]
    await store.enqueue_jobs([notify_job(i, now_ms()) for i in ids])
    hooks = dispatcher(store, handler, Metrics(), backoff=0.2, max_backoff=0.2)
    await hooks.start()
    try:
        await asyncio.sleep(0.05)  # the first claim failed; these come while it waits
        ids.append(await message(store, 9))
        await store.enqueue_jobs([notify_job(ids[-1], now_ms())])
        await drained(store)
    finally:
        await hooks.stop()
    first, *rest = calls
    again = [c for c in rest if json.loads(c.content)[0]["message_id"] == ids[0]]
    assert len(again) == 1 and again[0].content == first.content
    assert again[0].headers["x-magpie-event-id"] == first.headers["x-magpie-event-id"]
    sent = [m["message_id"] for c in rest for m in json.loads(c.content)]
    assert sorted(sent) == sorted(ids), "every entry once after the failure"


async def test_large_arrays_are_split_by_bytes(store: SqliteStore) -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(200)

    big = b'{"type":1,"content":"' + b"x" * 3000 + b'"}'
    ids = [await message(store, n, big) for n in range(5)]
    await store.enqueue_jobs([notify_job(i, now_ms()) for i in ids])
    hooks = dispatcher(store, handler, Metrics(), max_request_bytes=10_000)
    await hooks.start()
    try:
        await drained(store)
    finally:
        await hooks.stop()
    assert all(len(b) <= 10_000 for b in bodies) and len(bodies) >= 2
    assert [m["message_id"] for b in bodies for m in json.loads(b)] == ids


async def test_requests_go_out_several_at_once(store: SqliteStore) -> None:
    in_flight, most = 0, 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return httpx.Response(200)

    mids = [await message(store, n) for n in range(12)]
    await store.enqueue_jobs([offline_job(m, ["u"], now_ms()) for m in mids])
    hooks = dispatcher(store, slow, Metrics(), concurrency=4)
    await hooks.start()
    try:
        await drained(store)
    finally:
        await hooks.stop()
    assert most == 4


async def test_stopping_gives_unsent_requests_back(store: SqliteStore) -> None:
    entered = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        entered.set()
        await asyncio.sleep(0.3)
        return httpx.Response(200)

    mids = [await message(store, n) for n in range(3)]
    await store.enqueue_jobs([offline_job(m, ["u"], now_ms()) for m in mids])
    hooks = dispatcher(store, slow, Metrics(), lease=60.0, concurrency=1)
    await hooks.start()
    await asyncio.wait_for(entered.wait(), T)
    await hooks.stop()
    left = await store.list_jobs(WEBHOOK_KIND, dead=False)
    assert [j.payload["message_id"] for j in left] == mids[1:]
    assert all(j.claimed_by == "" and j.due_at_ms <= now_ms() for j in left), "due again now"

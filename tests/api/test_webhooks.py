"""Outgoing webhooks: a real node posting to a local receiver, and the dispatcher alone."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.api.webhooks import WebhookConfig, WebhookDispatcher, verify
from magpie.app import Node, wire_webhooks
from magpie.metrics import Metrics
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

#: Run on both stores (tests.api.conftest).
BOTH_STORES = True

T = 5 * time_scale()


@dataclass
class Hit:
    """One request the receiver got, and the status it answered."""

    target: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> str:
        return self.target.partition("event=")[2]

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A minimal HTTP/1.1 server (keep-alive, Content-Length bodies) that records requests
    and fails the first ``fail_first`` of them with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls = 0
        self.hits: asyncio.Queue[Hit] = asyncio.Queue()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                target = line.decode().split(" ")[1]
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    key, _, value = h.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.calls += 1
                status = 500 if self.calls <= self.fail_first else 200
                self.hits.put_nowait(Hit(target, headers, body, status))
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def next_event(self, event: str) -> Hit:
        """The next successfully answered request of ``event``."""
        while True:
            hit = await asyncio.wait_for(self.hits.get(), T)
            if hit.event == event and hit.status == 200:
                return hit


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def hooked_node(
    tmp_path: Path, receiver: Receiver, **kw: Any
) -> contextlib.AbstractAsyncContextManager[Node]:
    """A node posting its webhooks to ``receiver`` every 50 ms."""
    return running_node(tmp_path, webhook_url=receiver.url, webhook_batch_interval=0.05, **kw)


def counted(metrics: Metrics, family: str, event: str) -> float:
    """The value of ``<family>_total{event=...}``."""
    value = metrics.registry.get_sample_value(f"{family}_total", {"event": event})
    return value or 0.0


def failures(metrics: Metrics, event: str) -> float:
    value = metrics.registry.get_sample_value("magpie_webhook_failures_total", {"event": event})
    return value or 0.0


async def test_msg_notify_batches_signed_messages(tmp_path: Path, receiver: Receiver) -> None:
    async with hooked_node(tmp_path, receiver, webhook_secret="s3cret") as node:
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
        while len(seen) < 2:
            hit = await receiver.next_event("msg.notify")
            assert hit.target.startswith("/hook?event=msg.notify")
            ts, sig = hit.headers["x-magpie-timestamp"], hit.headers["x-magpie-signature"]
            expected = hmac.new(b"s3cret", f"{ts}.".encode() + hit.body, hashlib.sha256)
            assert sig == "sha256=" + expected.hexdigest()
            assert verify(b"s3cret", ts, hit.body, sig) and not verify(b"x", ts, hit.body, sig)
            seen.extend(hit.json())
        assert [m["message_id"] for m in seen] == sent, "no-persist messages are not notified"
        assert seen[0]["channel_id"] == "g1" and seen[0]["message_seq"] == 1


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


async def test_failing_receiver_gets_the_batch_on_retry(tmp_path: Path) -> None:
    receiver = Receiver(fail_first=2)
    await receiver.start()
    try:
        async with hooked_node(tmp_path, receiver) as node, api(node) as http:
            body = {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": text("x")}
            data = (await http.post("/message/send", json=body)).json()["data"]
            hit = await receiver.next_event("msg.notify")
            assert [m["message_id"] for m in hit.json()] == [data["message_id"]]
            assert receiver.calls >= 3
            assert failures(node.metrics, "msg.notify") == 0
            # The two failed calls were retried (msg.offline is posted first, msg.notify next).
            events = ("msg.notify", "msg.offline")
            retried = sum(counted(node.metrics, "magpie_webhook_retries", e) for e in events)
            assert retried == 2
            for _ in range(int(100 * time_scale())):  # counted once the answer is read
                if counted(node.metrics, "magpie_webhook_deliveries", "msg.notify") == 1:
                    break
                await asyncio.sleep(0.01)
            assert counted(node.metrics, "magpie_webhook_deliveries", "msg.notify") == 1
    finally:
        await receiver.stop()


async def test_msg_offline_names_recipients_without_online_master(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with hooked_node(tmp_path, receiver) as node:
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
        await b.close()


async def test_user_onlinestatus_from_presence_callback(tmp_path: Path, receiver: Receiver) -> None:
    async with hooked_node(tmp_path, receiver) as node:
        token = await add_user(node, "a")
        client = await connect(node, "a", token, device_flag=1)
        conn_id = node.gateway.online("a")[0].conn_id.lstrip("c")
        hit = await receiver.next_event("user.onlinestatus")
        assert hit.json() == [f"a-1-1-{conn_id}-1-1"]
        await client.close()
        hit = await receiver.next_event("user.onlinestatus")
        assert hit.json() == [f"a-1-0-{conn_id}-0-0"]


# --- the dispatcher alone (httpx.MockTransport, no sockets) ---------------------------------


def dispatcher(handler: Any, metrics: Metrics, **kw: Any) -> WebhookDispatcher:
    config = WebhookConfig(
        url="http://hook.invalid/x", secret=b"k", batch_interval=0.01, backoff=0.01, **kw
    )
    return WebhookDispatcher(config, metrics, transport=httpx.MockTransport(handler))


async def test_exhausted_attempts_are_counted() -> None:
    metrics, calls = Metrics(), []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    hooks = dispatcher(handler, metrics, attempts=3)
    await hooks.start()
    hooks.offline({"message_id": 1}, ["u"])
    async with asyncio.timeout(T):  # every attempt made (10 ms backoff)
        while len(calls) < 3:
            await asyncio.sleep(0.01)
    await hooks.stop()
    assert len(calls) == 3 and failures(metrics, "msg.offline") == 1
    assert counted(metrics, "magpie_webhook_retries", "msg.offline") == 2
    assert counted(metrics, "magpie_webhook_deliveries", "msg.offline") == 0
    assert calls[0].url.params["event"] == "msg.offline"


async def test_full_buffer_drops_oldest_and_counts() -> None:
    metrics, bodies = Metrics(), []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200)

    hooks = dispatcher(handler, metrics, max_pending=2)
    for i in range(3):
        hooks.notify({"message_id": i})
    await hooks.start()
    await hooks.stop()  # stop flushes and drains
    assert bodies == [[{"message_id": 1}, {"message_id": 2}]]
    assert failures(metrics, "msg.notify") == 1


async def test_transport_errors_are_retried() -> None:
    metrics, calls = Metrics(), []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(204)

    hooks = dispatcher(handler, metrics, max_batch=1)
    await hooks.start()
    hooks.online_status("a-1-1-1-1-1")
    hooks.online_status("a-1-0-1-0-0")
    await hooks.stop()
    assert [json.loads(c.content) for c in calls] == [["a-1-1-1-1-1"]] * 2 + [["a-1-0-1-0-0"]]
    assert failures(metrics, "user.onlinestatus") == 0


async def test_byte_bound_drops_oldest_queued_request() -> None:
    metrics, bodies = Metrics(), []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200)

    hooks = dispatcher(handler, metrics, max_pending_bytes=300)
    for i in range(3):
        hooks.offline({"message_id": i, "payload": "x" * 100}, ["u"])
    await hooks.start()
    await hooks.stop()
    assert [b["message_id"] for b in bodies] == [1, 2]
    assert failures(metrics, "msg.offline") == 1


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
    hooks = wire_webhooks(settings, API_KEY, Metrics(), node.messaging, gateway)
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
    assert wire_webhooks(no_hooks, API_KEY, Metrics(), node.messaging, FakeGateway()) is None

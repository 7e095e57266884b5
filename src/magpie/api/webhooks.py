"""Outgoing webhooks (spec §6.1): ``msg.notify``, ``msg.offline``, ``user.onlinestatus``.

Each event is ``POST <webhook_url>?event=<name>`` with a JSON body and two headers::

    X-Magpie-Timestamp: <unix seconds>
    X-Magpie-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>

so a receiver can check origin and freshness (:func:`verify`). The secret is
``webhook_secret`` or, if that is empty, the business API key.

Services built on the node raise their own events through :meth:`WebhookDispatcher.event`
(the card service's ``card.action``), one request per event.

Nothing here ever blocks the send path: the after-commit hook and the presence callback only
append to bounded in-memory buffers. ``msg.notify`` and ``user.onlinestatus`` entries are
batched every ``webhook_batch_interval`` seconds into one JSON array each; ``msg.offline``
goes out one message per request. One sender task posts the batches in order, retrying a
failed POST (non-2xx or transport error) with exponential backoff up to ``webhook_attempts``
times. When a buffer is full the *oldest* entry is dropped; drops and batches that exhausted
their attempts are counted in ``magpie_webhook_failures{event}``. Webhooks are at-most-once
across a restart: the buffers are not persisted (the store stays the source of truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from magpie.metrics import Metrics

__all__ = [
    "EVENT_NOTIFY",
    "EVENT_OFFLINE",
    "EVENT_ONLINESTATUS",
    "WebhookConfig",
    "WebhookDispatcher",
    "sign",
    "verify",
]

log = logging.getLogger(__name__)

EVENT_NOTIFY = "msg.notify"
EVENT_OFFLINE = "msg.offline"
EVENT_ONLINESTATUS = "user.onlinestatus"

TIMESTAMP_HEADER = "X-Magpie-Timestamp"
SIGNATURE_HEADER = "X-Magpie-Signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """Receiver side: constant-time check of a signature (freshness is the caller's call)."""
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Where and how to deliver. ``backoff`` is the first retry delay (doubling up to
    ``max_backoff``); ``max_pending`` and ``max_pending_bytes`` bound each buffer (notify
    entries, presence entries, queued requests); ``max_batch`` bounds the entries of one
    ``msg.notify`` / ``user.onlinestatus`` request; ``drain_timeout`` is how long
    :meth:`WebhookDispatcher.stop` waits for queued requests."""

    url: str
    secret: bytes
    batch_interval: float = 0.5
    attempts: int = 5
    backoff: float = 0.2
    max_backoff: float = 10.0
    timeout: float = 5.0
    max_pending: int = 10_000
    max_pending_bytes: int = 64 * 1024 * 1024
    max_batch: int = 1_000
    drain_timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class _Job:
    event: str
    body: bytes


def _job_size(job: _Job) -> int:
    return len(job.body)


class _Buffer:
    """A FIFO bounded in entries and in bytes (``size`` of an entry) that drops and reports
    its oldest entries when a push would exceed either bound."""

    def __init__(
        self,
        max_items: int,
        max_bytes: int,
        size: Callable[[Any], int],
        on_drop: Callable[[Any], None],
    ) -> None:
        self._items: deque[tuple[Any, int]] = deque()
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._size = size
        self._bytes = 0
        self._on_drop = on_drop

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: Any) -> None:
        n = self._size(item)
        while self._items and (
            len(self._items) >= self._max_items or self._bytes + n > self._max_bytes
        ):
            dropped, size = self._items.popleft()
            self._bytes -= size
            self._on_drop(dropped)
        self._items.append((item, n))
        self._bytes += n

    def take(self, n: int) -> list[Any]:
        out = []
        for _ in range(min(n, len(self._items))):
            item, size = self._items.popleft()
            self._bytes -= size
            out.append(item)
        return out


def _resp_size(message: dict[str, Any]) -> int:
    """Approximate bytes of a MessageResp: its base64 payload dominates."""
    return len(message.get("payload", "")) + 512


class WebhookDispatcher:
    """Buffers webhook events and posts them from background tasks (see module doc)."""

    def __init__(
        self,
        config: WebhookConfig,
        metrics: Metrics,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._transport = transport
        self._clock = clock
        items, size = config.max_pending, config.max_pending_bytes
        self._notify = _Buffer(items, size, _resp_size, lambda _: self._failed(EVENT_NOTIFY))
        self._status = _Buffer(items, size, len, lambda _: self._failed(EVENT_ONLINESTATUS))
        self._jobs = _Buffer(items, size, _job_size, lambda job: self._failed(job.event))
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # producers (synchronous, never block) ----------------------------------------------------

    def notify(self, message: dict[str, Any]) -> None:
        """Queue one MessageResp for the next ``msg.notify`` batch."""
        self._notify.push(message)

    def offline(self, message: dict[str, Any], to_uids: list[str]) -> None:
        """Queue one ``msg.offline`` event: the MessageResp plus ``to_uids``."""
        self._enqueue(EVENT_OFFLINE, {**message, "to_uids": to_uids})

    def online_status(self, entry: str) -> None:
        """Queue one ``user.onlinestatus`` string for the next batch."""
        self._status.push(entry)

    def event(self, event: str, data: Any) -> None:
        """Queue one event of another kind (e.g. the card service's ``card.action``): one
        request per event, signed and retried like ``msg.offline``."""
        self._enqueue(event, data)

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client and start the batch and sender tasks."""
        self._client = httpx.AsyncClient(
            transport=self._transport, timeout=self._config.timeout, follow_redirects=False
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._batch_loop()), loop.create_task(self._send_loop())]

    async def stop(self) -> None:
        """Flush the buffers, give the sender ``drain_timeout`` seconds, then stop."""
        self._flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self._config.drain_timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def pending(self) -> int:
        """Events and batch entries waiting to be sent (a metrics probe)."""
        return len(self._jobs) + len(self._notify) + len(self._status)

    # internals -------------------------------------------------------------------------------

    def _failed(self, event: str) -> None:
        self._metrics.webhook_failures.labels(event=event).inc()

    def _enqueue(self, event: str, data: Any) -> None:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        self._jobs.push(_Job(event, body))
        self._idle.clear()
        self._wake.set()

    def _flush(self) -> None:
        """Turn the buffered notify / presence entries into requests."""
        for event, buffer in ((EVENT_NOTIFY, self._notify), (EVENT_ONLINESTATUS, self._status)):
            while len(buffer):
                self._enqueue(event, buffer.take(self._config.max_batch))

    async def _batch_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.batch_interval)
            self._flush()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while jobs := self._jobs.take(1):
                await self._deliver(jobs[0])
            self._idle.set()

    async def _deliver(self, job: _Job) -> None:
        delay = self._config.backoff
        for attempt in range(1, self._config.attempts + 1):
            if attempt > 1:
                self._metrics.webhook_retries.labels(event=job.event).inc()
            if await self._post(job):
                self._metrics.webhook_deliveries.labels(event=job.event).inc()
                return
            if attempt < self._config.attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._config.max_backoff)
        log.warning("webhook %s dropped after %d attempts", job.event, self._config.attempts)
        self._failed(job.event)

    async def _post(self, job: _Job) -> bool:
        client = self._client
        if client is None:
            return False
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._config.secret, timestamp, job.body),
        }
        try:
            response = await client.post(
                self._config.url, params={"event": job.event}, content=job.body, headers=headers
            )
        except httpx.HTTPError as exc:
            log.info("webhook %s failed: %s", job.event, type(exc).__name__)
            return False
        if response.is_success:
            return True
        log.info("webhook %s answered HTTP %d", job.event, response.status_code)
        return False

"""Outgoing webhooks (spec §6.1) through the store's durable outbox.

Each request is ``POST <webhook_url>?event=<name>`` with a JSON body and three headers::

    X-Magpie-Event-Id: <id>
    X-Magpie-Timestamp: <unix seconds>
    X-Magpie-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>

so a receiver can check origin and freshness (:func:`verify`) and drop a repeat (the same
request sent again has the same event id). The secret is ``webhook_secret`` or, if that is
empty, the business API key.

**The outbox.** Every event is a durable job of kind ``webhook`` (:mod:`magpie.domain.jobs`):
``msg.notify`` and ``msg.offline`` are enqueued *in the transaction of the message* that
causes them, a service's event (the card service's ``card.action``) in the transaction of the
extension change, ``user.onlinestatus`` right after the connect or disconnect (it has no
transaction). So an event is never lost on a crash or a restart, and nothing is enqueued
while ``webhook_url`` is unset. The job builders (:func:`notify_job`, ...) say what is
stored: messages by id (rendered from the store when sent), other data as it is.

**Dispatch.** Every node with ``webhook_url`` runs a :class:`WebhookDispatcher`: a
:class:`~magpie.core.jobs.JobWorker` that claims due webhook jobs every
``webhook_batch_interval`` seconds — a claim is exclusive across nodes, so no event is sent
by two nodes — and posts them: the ``msg.notify`` entries (MessageResp objects) and the
``user.onlinestatus`` entries of one claim as one JSON array each, every other event alone,
up to 8 requests at once (so a receiver sees no order between them). A failed POST (non-2xx
or transport error) is retried with exponential backoff
(``webhook_backoff`` doubling up to ``webhook_max_backoff``); after ``webhook_attempts``
tries its events are *dead*: kept in the store, counted in
``magpie_webhook_failures_total{event}`` and listed by ``GET /jobs/dead``, from where they
can be sent again (``POST /jobs/dead/retry``).

**Event ids and repeats.** An event is delivered at least once; exactly once unless a node
died between the receiver's answer and recording it (or a claim's lease ran out), in which
case another node sends it again after the lease (``job_lease``). The event id of a
request names its events: for one event ``<store>.<job id>``, for an array the ids of its
entries hashed. Entries first sent together are sent together again (a retry, a takeover),
so a repeat carries the same id. Ids are unique per store (the store's epoch prefixes them).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from magpie.api.render import message_resp
from magpie.core.jobs import JobWorker, Outcome, Report, Round, WorkerConfig
from magpie.domain.jobs import Job, NewJob
from magpie.metrics import Metrics
from magpie.store.interface import Store, StoredMessage

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_NOTIFY",
    "EVENT_OFFLINE",
    "EVENT_ONLINESTATUS",
    "WEBHOOK_KIND",
    "WebhookConfig",
    "WebhookDispatcher",
    "event_job",
    "notify_job",
    "offline_job",
    "sign",
    "status_job",
    "verify",
]

log = logging.getLogger(__name__)

EVENT_NOTIFY = "msg.notify"
EVENT_OFFLINE = "msg.offline"
EVENT_ONLINESTATUS = "user.onlinestatus"
#: Events whose entries of one claim go out as one JSON array.
BATCHED = frozenset({EVENT_NOTIFY, EVENT_ONLINESTATUS})
#: The job kind of every webhook event.
WEBHOOK_KIND = "webhook"

EVENT_ID_HEADER = "X-Magpie-Event-Id"
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


# --- what is stored ------------------------------------------------------------------------


def notify_job(message_id: int, now_ms: int) -> NewJob:
    """``msg.notify`` of a stored message (rendered when sent)."""
    payload = {"event": EVENT_NOTIFY, "message_id": message_id}
    return NewJob(WEBHOOK_KIND, payload, created_at_ms=now_ms)


def offline_job(message_id: int, to_uids: Sequence[str], now_ms: int) -> NewJob:
    """``msg.offline``: the message and the recipients with no online master device."""
    payload = {"event": EVENT_OFFLINE, "message_id": message_id, "to_uids": list(to_uids)}
    return NewJob(WEBHOOK_KIND, payload, created_at_ms=now_ms)


def status_job(entry: str, now_ms: int) -> NewJob:
    """One ``user.onlinestatus`` entry."""
    payload = {"event": EVENT_ONLINESTATUS, "entry": entry}
    return NewJob(WEBHOOK_KIND, payload, created_at_ms=now_ms)


def event_job(event: str, data: Mapping[str, Any], now_ms: int) -> NewJob:
    """Any other event (``card.action``): its JSON body as it is."""
    payload = {"event": event, "data": dict(data)}
    return NewJob(WEBHOOK_KIND, payload, created_at_ms=now_ms)


# --- dispatch ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Where and how to deliver. Times in seconds. ``batch_interval`` is the time between
    claims (and so what one array request gathers); ``attempts`` the tries before an event is
    dead; ``backoff`` the first retry delay, doubling up to ``max_backoff``; ``lease`` how
    long a claim is this node's; ``max_batch`` the most jobs per claim (and entries per
    array); ``max_request_bytes`` splits larger arrays; ``drain_timeout`` how long
    :meth:`WebhookDispatcher.stop` lets the round under way finish."""

    url: str
    secret: bytes
    batch_interval: float = 0.5
    attempts: int = 10
    backoff: float = 1.0
    max_backoff: float = 300.0
    timeout: float = 5.0
    lease: float = 30.0
    max_batch: int = 1_000
    max_request_bytes: int = 8 * 1024 * 1024
    concurrency: int = 8
    drain_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class _Request:
    """One POST: its event, the jobs it carries and its body."""

    event: str
    jobs: tuple[Job, ...]
    body: bytes


def _array(event: str, items: list[tuple[Job, bytes]]) -> _Request:
    """One array request of already encoded entries."""
    body = b"[" + b",".join(entry for _, entry in items) + b"]"
    return _Request(event, tuple(job for job, _ in items), body)


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookDispatcher:
    """Claims the ``webhook`` jobs of every node and posts them (see the module docstring).

    ``owner`` names this node's claims (unique per running node); ``clock`` is wall time."""

    def __init__(
        self,
        config: WebhookConfig,
        store: Store,
        metrics: Metrics,
        *,
        owner: str,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self._metrics = metrics
        self._transport = transport
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        self._pending = 0
        worker = WorkerConfig(
            kind=WEBHOOK_KIND,
            owner=owner,
            lease=config.lease,
            batch=config.max_batch,
            attempts=config.attempts,
            backoff=config.backoff,
            max_backoff=config.max_backoff,
            poll=config.batch_interval,
            pace=config.batch_interval,
            drain_timeout=config.drain_timeout,
        )
        self.worker = JobWorker(
            store,
            worker,
            self._handle,
            clock_ms=lambda: int(self._clock() * 1000),
            count=metrics.job_result,
            gauge=self._gauge,
        )

    @property
    def metrics(self) -> Metrics:
        """The node's metrics (the webhook families)."""
        return self._metrics

    @property
    def pending(self) -> int:
        """Webhook events waiting in the store, every node's, as last counted (a metrics
        probe; refreshed every few seconds)."""
        return self._pending

    async def start(self) -> None:
        """Open the HTTP client and start claiming (events left from before run now)."""
        self._client = httpx.AsyncClient(
            transport=self._transport, timeout=self._config.timeout, follow_redirects=False
        )
        self.worker.start()

    async def stop(self) -> None:
        """Let the request under way finish, give the rest back, close the client."""
        await self.worker.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _gauge(self, kind: str, pending: int, dead: int) -> None:
        self._pending = pending
        self._metrics.job_counts(kind, pending, dead)

    # one round ---------------------------------------------------------------------------------

    async def _handle(self, jobs: Sequence[Job], round_: Round) -> Report:
        """Post the round's requests, ``concurrency`` at a time, in job order; a request
        that could not finish within the claim's lease (or while stopping) is not started:
        its jobs are given back untried."""
        report: dict[int, tuple[Outcome, str]] = {}
        slots = asyncio.Semaphore(self._config.concurrency)
        timeout_ms = int(self._config.timeout * 1000)

        async def send(request: _Request) -> None:
            async with slots:
                if round_.stopping.is_set() or self._now_ms() + timeout_ms > round_.until_ms:
                    return
                if any(job.attempts for job in request.jobs):
                    self._metrics.webhook_retries.labels(event=request.event).inc()
                error = await self._post(request)
                outcome = (Outcome.DONE, "") if error is None else (Outcome.FAILED, error)
                report.update((job.job_id, outcome) for job in request.jobs)
                self._count(request, error)

        await asyncio.gather(*(send(r) for r in await self._requests(jobs, report)))
        return report

    def _count(self, request: _Request, error: str | None) -> None:
        m, event = self._metrics, request.event
        if error is None:
            m.webhook_deliveries.labels(event=event).inc()
            return
        last = [j for j in request.jobs if j.attempts + 1 >= self._config.attempts]
        if last:
            m.webhook_failures.labels(event=event).inc(len(last))
            log.warning("webhook %s: %d event(s) dead-lettered: %s", event, len(last), error)

    async def _requests(
        self, jobs: Sequence[Job], report: dict[int, tuple[Outcome, str]]
    ) -> list[_Request]:
        """The requests of a claim, in job order: batched events grouped by their first
        claim's batch, the others one each. Jobs with nothing to send are reported."""
        messages = await self._messages(jobs)
        groups: dict[tuple[str, str], list[tuple[Job, bytes]]] = {}
        singles: list[_Request] = []
        for job in jobs:
            event, entry = self._render(job, messages)
            if entry is None:
                report[job.job_id] = self._unsendable(job, event)
            elif event in BATCHED:
                groups.setdefault((event, job.batch), []).append((job, _compact(entry)))
            else:
                singles.append(_Request(event, (job,), _compact(entry)))
        batched = [r for (event, _), items in groups.items() for r in self._split(event, items)]
        return sorted([*singles, *batched], key=lambda r: r.jobs[0].job_id)

    async def _messages(self, jobs: Sequence[Job]) -> dict[int, StoredMessage]:
        ids = [i for job in jobs if isinstance(i := job.payload.get("message_id"), int)]
        return await self._store.get_messages_by_id(ids) if ids else {}

    @staticmethod
    def _render(job: Job, messages: Mapping[int, StoredMessage]) -> tuple[str, Any]:
        """The event and its JSON entry (``None``: nothing to send)."""
        p = job.payload
        event = str(p.get("event", ""))
        if event in (EVENT_NOTIFY, EVENT_OFFLINE):
            message = messages.get(p.get("message_id", 0))
            if message is None:
                return event, None
            resp = message_resp(message)
            if event == EVENT_NOTIFY:
                return event, resp
            return event, {**resp, "to_uids": p.get("to_uids", [])}
        if event == EVENT_ONLINESTATUS:
            return event, p.get("entry")
        return event, p.get("data")

    @staticmethod
    def _unsendable(job: Job, event: str) -> tuple[Outcome, str]:
        if event in (EVENT_NOTIFY, EVENT_OFFLINE):
            log.warning(
                "webhook %s: message %s is gone; dropped", event, job.payload.get("message_id")
            )
            return (Outcome.DONE, "")
        return (Outcome.FAILED, "not a webhook event")

    def _split(self, event: str, items: list[tuple[Job, bytes]]) -> list[_Request]:
        """Arrays of at most ``max_request_bytes`` (at least one entry each); the split
        depends only on the entries, so a repeat splits alike."""
        out: list[_Request] = []
        chunk: list[tuple[Job, bytes]] = []
        size = 2
        for job, entry in items:
            if chunk and size + len(entry) + 1 > self._config.max_request_bytes:
                out.append(_array(event, chunk))
                chunk, size = [], 2
            chunk.append((job, entry))
            size += len(entry) + 1
        out.append(_array(event, chunk))
        return out

    # the POST ---------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _event_id(self, request: _Request) -> str:
        """``<store>.<job id>`` for one event; for an array, its entries' ids hashed."""
        store = self._store.epoch[:12]
        ids = [job.job_id for job in request.jobs]
        if len(ids) == 1 and request.event not in BATCHED:
            return f"{store}.{ids[0]}"
        digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
        return f"{store}.{ids[0]}-{ids[-1]}.{digest}"

    async def _post(self, request: _Request) -> str | None:
        """Send one request; ``None`` when the receiver answered 2xx, else why not."""
        client = self._client
        if client is None:
            return "not started"
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: self._event_id(request),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._config.secret, timestamp, request.body),
        }
        try:
            response = await client.post(
                self._config.url,
                params={"event": request.event},
                content=request.body,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            log.info("webhook %s failed: %s", request.event, type(exc).__name__)
            return type(exc).__name__
        if response.is_success:
            return None
        log.info("webhook %s answered HTTP %d", request.event, response.status_code)
        return f"HTTP {response.status_code}"

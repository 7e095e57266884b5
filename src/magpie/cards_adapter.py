"""The in-process :class:`~magpie.cards.port.ImPort`: the card service inside a Magpie node.

It lives outside ``magpie.cards`` because it is the one place that knows both sides: the
send flow (:class:`~magpie.core.messaging.Messaging`), the extension service, the store
*interface* and the core's access decisions (membership). ``update`` passes the card
service's pure decision straight to :meth:`ExtService.update
<magpie.ext.service.ExtService.update>`, which runs it inside the store transaction — the
same atomicity a business server gets from ``/message/extra/update`` with compare-and-set,
minus the round trips and retries.

What a change brings along is committed in its transaction, as durable jobs: its business
events become webhook jobs through the ``outbox`` callable the composition root passes
(``None`` while webhooks are off: nothing is built, nothing stored), its deadline a
``card.deadline`` job (key ``<message_id>:<action>``, so scheduling twice keeps one).
Every node runs a timer over those jobs (:func:`deadline_worker`) that calls the card
service's ``fire``. The secret is a shared store value, created once for every node.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from magpie.api.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from magpie.cards.port import CallbackReply, Deadline, EventsOf, ImMessage, Outgoing, Sent
from magpie.core.access import AccessControl
from magpie.core.jobs import JobWorker, Outcome, Report, Round, WorkerConfig
from magpie.core.messaging import Messaging, SendRequest
from magpie.domain.channels import PERSON
from magpie.domain.ext import Actor, ExtRecord, ExtState, Mutate, OpRecord, UpdateResult
from magpie.domain.jobs import Job, NewJob
from magpie.errors import BadRequest
from magpie.ext.notify import Cmd, CmdSender
from magpie.ext.service import ExtService
from magpie.protocol.packets import Flags, ReasonCode
from magpie.store.interface import CardTypeRow, JobsOf, Store

__all__ = [
    "DEADLINE_KIND",
    "CardSendRefused",
    "Fire",
    "InProcessPort",
    "Outbox",
    "deadline_job",
    "deadline_worker",
]

log = logging.getLogger(__name__)

#: The job kind of card deadlines.
DEADLINE_KIND = "card.deadline"
#: Bytes of a secret created by :meth:`InProcessPort.secret`.
SECRET_BYTES = 32
#: Most pending deadlines :meth:`InProcessPort.deadlines` lists.
MAX_LISTED = 10_000

#: Turns one business event (``event``, JSON data) into its webhook job.
Outbox = Callable[[str, Mapping[str, Any]], NewJob]
#: Fires one deadline: true when done with it (the card service's ``fire``).
Fire = Callable[[int, str], Awaitable[bool]]


class CardSendRefused(BadRequest):
    """The send flow refused the card message (400, with the WuKongIM reason)."""

    code = "send_refused"


def deadline_job(deadline: Deadline, now_ms: int = 0) -> NewJob:
    """The durable job of a card deadline (one per message and action)."""
    payload = {"message_id": deadline.message_id, "action": deadline.action}
    key = f"{deadline.message_id}:{deadline.action}"
    return NewJob(DEADLINE_KIND, payload, key=key, due_at_ms=deadline.at_ms, created_at_ms=now_ms)


class InProcessPort:
    """:class:`~magpie.cards.port.ImPort` over a node's own services."""

    def __init__(
        self,
        messaging: Messaging,
        ext: ExtService,
        store: Store,
        access: AccessControl,
        outbox: Outbox | None = None,
        *,
        clock_ms: Callable[[], int],
        cmd: CmdSender | None = None,
        callback_secret: bytes = b"",
    ) -> None:
        self._messaging = messaging
        self._cmd = cmd
        self._callback_secret = callback_secret
        self._http: httpx.AsyncClient | None = None
        self._ext = ext
        self._store = store
        self._access = access
        self._outbox = outbox
        self._clock_ms = clock_ms
        self._scheduled: Callable[[], None] = lambda: None

    def on_schedule(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after a deadline was stored (this node's timer looks again)."""
        self._scheduled = callback

    async def send(self, message: Outgoing) -> Sent:
        """Through the send flow as the business API (the card service checked who may)."""
        result = await self._messaging.send(
            SendRequest(
                from_uid=message.from_uid,
                channel_id=message.channel_id,
                channel_type=message.channel_type,
                payload=message.payload,
                client_msg_no=message.client_msg_no,
                flags=Flags.RED_DOT,
                from_api=True,
            )
        )
        if result.reason is not ReasonCode.SUCCESS:
            name = result.reason.name.lower()
            raise CardSendRefused(f"send refused: {name}", reason=int(result.reason))
        return Sent(result.message_id, result.message_seq)

    async def message(self, message_id: int) -> ImMessage | None:
        """A channel-log message (sync-once commands are not)."""
        m = await self._store.get_message(message_id)
        if m is None or m.message_seq <= 0:
            return None
        return ImMessage(
            message_id=m.message_id,
            message_seq=m.message_seq,
            channel_id=m.channel_id,
            channel_type=m.channel_type,
            from_uid=m.from_uid,
            payload=m.payload,
            timestamp=m.timestamp,
        )

    async def extension(self, message_id: int) -> ExtState | None:
        """The message's extension, if any."""
        return await self._ext.get(message_id)

    async def update(
        self,
        message_id: int,
        *,
        mutate: Mutate,
        action_id: str,
        actor: Actor,
        operation: str,
        patch: Mapping[str, Any],
        important: bool,
        events: EventsOf | None = None,
        deadline: Deadline | None = None,
        reads: Sequence[str] = (),
    ) -> UpdateResult:
        """The extension primitive: ``mutate`` runs inside the store transaction, and the
        change's webhook events and deadline are committed with it."""
        result = await self._ext.update(
            message_id,
            mutate=mutate,
            action_id=action_id,
            actor=actor,
            operation=operation,
            patch=patch,
            important=important,
            jobs=self._jobs(events, deadline),
            reads=reads,
        )
        if deadline is not None and result.applied and not result.duplicate:
            self._scheduled()
        return result

    def _jobs(self, events: EventsOf | None, deadline: Deadline | None) -> JobsOf | None:
        """The jobs of an applied change: webhook events (only while webhooks are on) and
        the deadline; ``None`` when there is nothing to add."""
        outbox = self._outbox if events is not None else None
        if outbox is None and deadline is None:
            return None

        def jobs(result: UpdateResult) -> Sequence[NewJob]:
            out = [deadline_job(deadline, result.op.created_at)] if deadline is not None else []
            if outbox is not None and events is not None:
                out += [outbox(event, data) for event, data in events(result)]
            return out

        return jobs

    async def records(self, message_id: int, keys: Sequence[str]) -> dict[str, ExtRecord]:
        """The message's records of ``keys``."""
        return await self._ext.records(message_id, keys)

    async def list_records(
        self, message_id: int, prefix: str, after_key: str, limit: int
    ) -> list[ExtRecord]:
        """A page of the message's records."""
        return await self._ext.list_records(message_id, prefix, after_key, limit)

    async def is_member(self, channel_id: str, channel_type: int, uid: str) -> bool:
        """A subscriber of the channel; a party of a person channel (``a@b``)."""
        return await self._access.is_member(channel_id, channel_type, uid)

    async def ops(self, message_id: int, after_op_id: int, limit: int) -> list[OpRecord]:
        """The operation log."""
        return await self._ext.ops(message_id, after_op_id, limit)

    async def schedule(self, deadline: Deadline) -> None:
        """Store the deadline's job (a second one for the same action is not added)."""
        await self._store.enqueue_jobs([deadline_job(deadline, self._clock_ms())])
        self._scheduled()

    async def unschedule(self, message_id: int, action: str) -> None:
        """Delete the deadline's job."""
        await self._store.cancel_jobs(DEADLINE_KIND, [f"{message_id}:{action}"])

    async def deadlines(self) -> list[Deadline]:
        """The pending deadlines, earliest first."""
        jobs = await self._store.list_jobs(DEADLINE_KIND, dead=False, limit=MAX_LISTED)
        found = [_deadline(job) for job in jobs]
        return sorted((d for d in found if d is not None), key=lambda d: d.at_ms)

    async def secret(self, name: str, initial: bytes | None = None) -> bytes:
        """The shared secret ``name`` (``kv`` key ``secret:<name>``), created once."""
        fresh = initial if initial is not None else secrets.token_bytes(SECRET_BYTES)
        return await self._store.kv_setdefault(f"secret:{name}", fresh)

    async def stored_type(self, name: str, version: int) -> Mapping[str, Any] | None:
        """The registration of ``name@version`` (the store's ``card_types``)."""
        row = await self._store.get_card_type(name, version)
        return None if row is None else row.spec

    async def store_type(
        self, name: str, version: int, spec: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """Register ``name@version`` once for every node (the first spec wins)."""
        row = CardTypeRow(name, version, spec, self._clock_ms())
        return (await self._store.add_card_type(row)).spec

    async def stored_types(self) -> list[Mapping[str, Any]]:
        """Every registered type's spec."""
        return [row.spec for row in await self._store.list_card_types()]

    async def post(self, url: str, body: bytes, event_id: str, timeout: float) -> CallbackReply:
        """One POST signed as the webhooks are (``webhook_secret`` or the business key)."""
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event_id,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self._callback_secret, stamp, body),
        }
        try:
            answer = await self._http.post(url, content=body, headers=headers, timeout=timeout)
            return CallbackReply(answer.status_code, answer.content)
        except httpx.TimeoutException:
            return CallbackReply(0, b"", "timeout")
        except httpx.HTTPError as exc:
            return CallbackReply(0, b"", f"transport: {type(exc).__name__}")

    async def tell(self, uid: str, payload: bytes) -> bool:
        """An online-only CMD to ``uid``'s own devices (the person channel ``uid@uid``)."""
        if self._cmd is None:
            return False
        return await self._cmd(Cmd(uid, uid, PERSON, payload, False, (uid,)))

    async def aclose(self) -> None:
        """Close the callback client."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _deadline(job: Job) -> Deadline | None:
    """The deadline a ``card.deadline`` job holds (``None``: not one)."""
    message_id, action = job.payload.get("message_id"), job.payload.get("action")
    if not isinstance(message_id, int) or not isinstance(action, str):
        return None
    return Deadline(message_id, action, job.due_at_ms)


def deadline_worker(store: Store, config: WorkerConfig, fire: Fire, **kw: Any) -> JobWorker:
    """The timer of one node over every node's card deadlines: claims the due ones (each is
    one node's) and fires them one by one while its claim's lease lasts. ``kw`` goes to
    :class:`~magpie.core.jobs.JobWorker` (clock, metrics)."""

    async def handle(jobs: Sequence[Job], round_: Round) -> Report:
        report: dict[int, tuple[Outcome, str]] = {}
        for job in jobs:
            if round_.stopping.is_set():
                break
            deadline = _deadline(job)
            if deadline is None:
                report[job.job_id] = (Outcome.FAILED, "not a card deadline")
                continue
            try:
                done = await fire(deadline.message_id, deadline.action)
            except Exception as exc:  # the timer must survive any failure: retry later
                log.exception("card deadline %s of message %d failed", deadline.action,
                              deadline.message_id)  # fmt: skip
                report[job.job_id] = (Outcome.FAILED, type(exc).__name__)
                continue
            report[job.job_id] = (Outcome.DONE, "") if done else (Outcome.FAILED, "not done")
        return report

    return JobWorker(store, config, handle, **kw)

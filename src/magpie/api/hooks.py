"""What the node's events become as business webhooks (spec §6.1).

:class:`NodeWebhooks` turns the node's events into webhook jobs of the durable outbox
(:mod:`magpie.api.webhooks`): for every stored message ``msg.notify`` (and ``msg.offline``
for its recipients without an online master device), built before the commit and written
in the message's own transaction (:meth:`NodeWebhooks.message_jobs`, the send flow's
outbox); the events services raise in their own transactions (:meth:`NodeWebhooks.
event_job`, ``card.action``); and on every connect and disconnect ``user.onlinestatus``,
enqueued right away (:meth:`NodeWebhooks.on_presence`). It decides nothing about *whether*
webhooks run: the composition root (``magpie.app``) builds it only when ``webhook_url`` is
set, so with webhooks off nothing is built and nothing enqueued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from magpie.api.presence import Presence, offline_uids, onlinestatus_entry
from magpie.api.webhooks import (
    EVENT_ONLINESTATUS,
    WebhookDispatcher,
    event_job,
    notify_job,
    offline_job,
    status_job,
)
from magpie.domain.jobs import NewJob
from magpie.errors import StoreError
from magpie.protocol.packets import Flags
from magpie.store.interface import NewMessage, Store

__all__ = ["NodeWebhooks"]

log = logging.getLogger(__name__)

_NO_PERSIST = int(Flags.NO_PERSIST)


class NodeWebhooks:
    """The node's business webhooks over one dispatcher; ``presence`` is the gateway."""

    def __init__(
        self,
        dispatcher: WebhookDispatcher,
        presence: Presence,
        store: Store,
        clock_ms: Callable[[], int],
    ) -> None:
        self.dispatcher = dispatcher
        self._presence = presence
        self._store = store
        self._clock_ms = clock_ms
        self._statuses: list[NewJob] = []
        self._flushing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start delivering (events left in the store from before are sent now)."""
        await self.dispatcher.start()

    async def stop(self) -> None:
        """Store the presence events still in hand, then stop delivering."""
        if self._flushing is not None:
            await self._flushing
        await self.dispatcher.stop()

    def message_jobs(self, message: NewMessage, recipients: Sequence[str]) -> list[NewJob]:
        """The outbox of one message, committed with it: ``msg.notify``, and ``msg.offline``
        naming the recipients (sender excluded) with no online master device. Online-only
        (no-persist) messages have none."""
        if message.flags & _NO_PERSIST:
            return []
        now = self._clock_ms()
        jobs = [notify_job(message.message_id, now)]
        to_uids = offline_uids(self._presence, message.from_uid, recipients)
        if to_uids:
            jobs.append(offline_job(message.message_id, to_uids, now))
        return jobs

    def event_job(self, event: str, data: Mapping[str, Any]) -> NewJob:
        """The outbox job of a business event raised by a service built on the node
        (``card.action``), to commit with the change that raised it."""
        return event_job(event, data, self._clock_ms())

    def on_presence(self, uid: str, device_flag: int, online: bool, conn_id: str) -> None:
        """A connection registered (``online``) or left: a ``user.onlinestatus`` entry,
        stored by a background task (this callback must not block the gateway)."""
        entry = onlinestatus_entry(self._presence, uid, device_flag, online, conn_id)
        self._statuses.append(status_job(entry, self._clock_ms()))
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Enqueue the entries gathered so far, one transaction per turn, until none is
        left. A store that is down loses them — loudly: logged and counted as failures."""
        try:
            while self._statuses:
                jobs, self._statuses = self._statuses, []
                try:
                    await self._store.enqueue_jobs(jobs)
                except StoreError as exc:
                    failures = self.dispatcher.metrics.webhook_failures
                    failures.labels(event=EVENT_ONLINESTATUS).inc(len(jobs))
                    log.warning("%d user.onlinestatus event(s) lost: %s", len(jobs), exc)
        finally:
            self._flushing = None

"""Reminders (``docs/conversation.md``, item 4): a user syncs their reminders by version and
marks them done; a done change takes the user's next version and an online-only
``syncReminders`` CMD tells the user's devices, so every device converges."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from magpie.core.notices import SYNC_REMINDERS, to_self
from magpie.domain.content import cmd_payload
from magpie.domain.reminders import Reminder
from magpie.errors import NotFound
from magpie.ext.notify import CmdSender
from magpie.store.interface import Store

__all__ = ["Reminders"]

log = logging.getLogger(__name__)


class Reminders:
    """Reminder sync and done over the store."""

    def __init__(self, store: Store, send: CmdSender) -> None:
        self._store = store
        self._send = send

    async def sync(self, uid: str, after_version: int, limit: int) -> list[Reminder]:
        """``uid``'s reminders after ``after_version``, ascending."""
        return await self._store.sync_reminders(uid, after_version, limit)

    async def done(self, uid: str, reminder_ids: Sequence[int]) -> list[Reminder]:
        """Mark ``uid``'s reminders done; 404 (nothing changed) when one is not theirs."""
        changed = await self._store.done_reminders(uid, reminder_ids)
        if changed is None:
            raise NotFound("no such reminder of this user", field="ids")
        if changed and not await self._send(to_self(uid, cmd_payload(SYNC_REMINDERS, {}))):
            log.info("syncReminders CMD refused")
        return changed

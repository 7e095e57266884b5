"""The extension service: versioned changes, the operation log, sync, notification (I6).

:meth:`ExtService.update` is the one primitive every change goes through — the CAS and LWW
updates of business fields, revoke and edit here, and the card state machines of
``magpie.cards`` later:

1. the caller's :data:`~magpie.domain.ext.Mutate` function is handed to the store, which runs
   it **inside** the change's transaction on the current state, so the decision is atomic
   (a concurrent change cannot slip in between read and write) and safe to re-run;
2. the store checks idempotency by ``(message_id, action_id)`` first: a repeat returns the
   original result and changes nothing;
3. an applied change gets ``version + 1``, the channel's next ``extra_version``, an
   ``updated_at`` from the hybrid logical clock and an operation-log row — all one
   transaction; a rejected one gets only its log row;
4. **after commit** the :class:`~magpie.ext.notify.Notifier` schedules the
   ``syncMessageExtra`` CMD (STYLE habit 10).

The service does not know channels' person-id convention or membership: the API layer maps
what a client names to storage ids and checks who may read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from magpie.domain.ext import (
    Actor,
    Decision,
    ExtAttempt,
    ExtRecord,
    ExtState,
    Mutate,
    OpRecord,
    Result,
    UpdateResult,
)
from magpie.errors import BadRequest, NotFound
from magpie.ext import changes
from magpie.ext.changes import FieldChange
from magpie.ext.hlc import Hlc, physical_ms
from magpie.ext.notify import Notifier
from magpie.ext.patch import PatchLimits, check_patch
from magpie.store.interface import JobsOf, Store

__all__ = ["MAX_ACTION_ID_LENGTH", "ExtService", "SyncPage", "new_action_id"]

#: Longest ``action_id`` (the idempotency key of a change).
MAX_ACTION_ID_LENGTH = 128


def new_action_id() -> str:
    """A fresh action id, for changes that need no idempotency across calls."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class SyncPage:
    """An answer to a sync: rows ascending by ``extra_version``, whether more rows follow the
    last one, and the store epoch (I7)."""

    epoch: str
    rows: list[ExtState]
    more: bool


def _stamped(state: ExtState, *, mutate: Mutate, stamp: int) -> Decision:
    """Run ``mutate`` on the current state (inside the store transaction). A change without
    its own ``updated_at`` is stamped after the state it replaces (the HLC receive rule), so
    the stored ``updated_at`` of a message only grows."""
    decision = mutate(state)
    if decision.result is not Result.APPLIED or decision.updated_at is not None:
        return decision
    return replace(decision, updated_at=max(stamp, state.updated_at + 1))


def _ignore(_: str) -> None:
    """The default ``on_result``: nobody counts."""


def _check_action_id(action_id: str) -> None:
    if not 1 <= len(action_id) <= MAX_ACTION_ID_LENGTH:
        raise BadRequest(
            f"action_id must be 1–{MAX_ACTION_ID_LENGTH} characters", field="action_id"
        )


# --- the service ---------------------------------------------------------------------------


class ExtService:
    """Message extensions over a :class:`~magpie.store.interface.Store`.

    ``clock_ms`` is wall time in milliseconds (the HLC's physical source, the op log's
    ``created_at`` and, divided by 1000, ``edited_at``); ``sync_max_limit`` caps a sync's
    ``limit``; ``max_future_ms`` bounds how far a caller-supplied LWW ``updated_at`` may be
    ahead of ``clock_ms``. ``on_result`` is told the result of every attempt (``applied``,
    ``conflict``, ``stale``, ``forbidden``, ``invalid``, ``duplicate``, ``not_found``) —
    the node counts them in its metrics."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        *,
        limits: PatchLimits,
        sync_max_limit: int,
        max_future_ms: int,
        clock_ms: Callable[[], int],
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self.notifier = notifier
        self._on_result = on_result if on_result is not None else _ignore
        self.limits = limits
        self.sync_max_limit = sync_max_limit
        self._max_future_ms = max_future_ms
        self._clock_ms = clock_ms
        self.hlc = Hlc(clock_ms)

    # the primitive -------------------------------------------------------------------------

    async def update(
        self,
        message_id: int,
        *,
        mutate: Mutate,
        action_id: str,
        actor: Actor,
        operation: str,
        patch: Mapping[str, Any],
        important: bool = False,
        jobs: JobsOf | None = None,
        reads: Sequence[str] = (),
    ) -> UpdateResult:
        """Decide and record one change (see the module docstring); 404
        :class:`~magpie.errors.NotFound` when there is no such channel-log message.

        ``operation`` names the kind of change and ``patch`` what was asked, for the
        operation log. ``important`` sends the CMD as a persisted sync-once command.
        ``jobs`` gives the durable jobs an applied change brings along (its webhook events),
        committed in the change's transaction. ``reads`` names the message's records the
        decision needs (``state.records``)."""
        _check_action_id(action_id)
        attempt = ExtAttempt(
            message_id, action_id, actor, operation, patch, self._clock_ms(), tuple(reads)
        )
        decide = partial(_stamped, mutate=mutate, stamp=self.hlc.now())
        result = await self._store.update_ext(attempt, decide, jobs)
        if result is None:
            self._on_result("not_found")
            raise NotFound("no such message", field="message_id")
        self._on_result("duplicate" if result.duplicate else result.result.value)
        state = result.state
        self.hlc.update(state.updated_at)  # stay ahead of every stored value
        if result.applied and not result.duplicate:
            self.notifier.changed(
                state.channel_id, state.channel_type, state.extra_version, important=important
            )
        return result

    # the common changes --------------------------------------------------------------------

    async def cas_update(
        self,
        message_id: int,
        change: FieldChange,
        *,
        expected_version: int,
        action_id: str,
        actor: Actor,
        important: bool = False,
    ) -> UpdateResult:
        """Change the business fields if the version is still ``expected_version``."""
        change = change.validated(self.limits)
        return await self.update(
            message_id,
            mutate=changes.cas(change, expected_version, self.limits),
            action_id=action_id,
            actor=actor,
            operation="cas",
            patch=change.as_log(),
            important=important,
        )

    async def lww_update(
        self,
        message_id: int,
        change: FieldChange,
        *,
        updated_at: int | None,
        action_id: str,
        actor: Actor,
        important: bool = False,
    ) -> UpdateResult:
        """Change the business fields unless a newer change is stored (last writer wins by
        HLC). ``updated_at`` ``None``: stamped by the server (applies)."""
        change = change.validated(self.limits)
        if updated_at is not None:
            self._check_not_future(updated_at)
        log = change.as_log() | ({} if updated_at is None else {"updated_at": updated_at})
        return await self.update(
            message_id,
            mutate=changes.lww(change, updated_at, actor, self.limits),
            action_id=action_id,
            actor=actor,
            operation="lww",
            patch=log,
            important=important,
        )

    def _check_not_future(self, updated_at: int) -> None:
        ahead = physical_ms(updated_at) - self._clock_ms()
        if updated_at <= 0 or ahead > self._max_future_ms:
            raise BadRequest(
                f"updated_at must be a positive HLC value at most {self._max_future_ms} ms "
                "ahead of the server clock",
                field="updated_at",
            )

    async def revoke(
        self, message_id: int, *, revoker: str, action_id: str, actor: Actor, important: bool
    ) -> UpdateResult:
        """Mark the message revoked (TSDD ``revoke``/``revoker``)."""
        return await self.update(
            message_id,
            mutate=changes.revoke(revoker),
            action_id=action_id,
            actor=actor,
            operation="revoke",
            patch={"revoker": revoker},
            important=important,
        )

    async def edit(
        self,
        message_id: int,
        *,
        content_edit: Mapping[str, Any],
        action_id: str,
        actor: Actor,
        important: bool,
    ) -> UpdateResult:
        """Replace the displayed content (TSDD ``content_edit``, ``edited_at``)."""
        content = check_patch(content_edit, self.limits, "content_edit")
        return await self.update(
            message_id,
            mutate=changes.edit(content, self._clock_ms() // 1000),
            action_id=action_id,
            actor=actor,
            operation="edit",
            patch={"content_edit": content},
            important=important,
        )

    # reads ---------------------------------------------------------------------------------

    async def get(self, message_id: int) -> ExtState | None:
        """The extension of a message, if it was ever changed."""
        return await self._store.get_ext(message_id)

    async def states(self, message_ids: Sequence[int]) -> dict[int, ExtState]:
        """The extensions of those of ``message_ids`` that have one (page embedding)."""
        return await self._store.get_exts(message_ids)

    async def sync(
        self,
        channel_id: str,
        channel_type: int,
        after_extra_version: int,
        limit: int,
        newest_max_bytes: int = 0,
    ) -> SyncPage:
        """Rows of the channel (storage id) changed after the cursor, ascending, at most
        ``limit`` (capped at ``sync_max_limit``); cursor 0 gives the newest rows (and
        ``more`` false: older rows are older states of messages the client loads anyway),
        as many as fit ``newest_max_bytes`` of stored JSON (0: no bound). After a cursor,
        callers bound a page by its ``limit``."""
        limit = max(1, min(limit, self.sync_max_limit))
        epoch = self._store.epoch
        if after_extra_version <= 0:
            rows = await self._store.sync_ext(
                channel_id, channel_type, 0, limit, max_bytes=newest_max_bytes
            )
            return SyncPage(epoch, rows, more=False)
        rows = await self._store.sync_ext(channel_id, channel_type, after_extra_version, limit + 1)
        return SyncPage(epoch, rows[:limit], more=len(rows) > limit)

    async def ops(self, message_id: int, after_op_id: int, limit: int) -> list[OpRecord]:
        """The message's operation log after ``after_op_id``, ascending."""
        return await self._store.list_ops(message_id, after_op_id, limit)

    async def records(self, message_id: int, keys: Sequence[str]) -> dict[str, ExtRecord]:
        """The message's records of ``keys`` that exist."""
        return await self._store.get_records(message_id, keys)

    async def list_records(
        self, message_id: int, prefix: str, after_key: str, limit: int
    ) -> list[ExtRecord]:
        """The message's records under ``prefix`` after ``after_key``, ascending by key."""
        return await self._store.list_records(message_id, prefix, after_key, limit)

    async def close(self) -> None:
        """Send the pending CMDs (at shutdown)."""
        await self.notifier.close()

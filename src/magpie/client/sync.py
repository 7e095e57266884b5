"""Catching the cache up with the server: message gaps and extension changes.

A **full sync** runs after every connect (spec §9 item 5: live RECVs alone lose what happened
while offline):

1. *epoch probe* — if the cache holds anything, pull one of its channels' extension changes;
   the answer names the server's store epoch, and a different one — or any epoch, when the
   cache holds data but recorded none — drops the cache (I7) and starts over;
2. ``/conversation/sync`` after the cached version cursor: the changed conversations and
   their last seqs;
3. for every conversation, the seq ranges still missing below its last seq are pulled with
   ``/channel/messagesync`` (pages of ``sync_page_size``); each message comes with its current
   extension (``message_extra``), applied if newer;
4. for every known channel, extension rows above its cursor (``/message/extra/sync``).

Besides, a ``syncMessageExtra`` CMD pulls that channel's extension changes, and a live message
that leaves a hole fills that channel after a short delay. Pulls of one channel never overlap:
a request during a pull makes exactly one more pull after it (:class:`Coalescer`). Whatever
arrives twice or out of order is harmless: messages are unique by id and seq, extension rows
are applied only if newer (:mod:`magpie.domain.ext`).

**Cursor 0.** Asked for rows above ``extra_version`` 0, the server answers with the channel's
*newest* rows only (TangSengDaoDao's rule, spec §5.2): older changes are expected to come with
the messages (``message_extra``). That holds for a channel whose history this sync loaded
from scratch; for a channel whose messages were cached before it had any extension cursor,
a full first page (``>= min(ext_page_size, 100)`` rows) may hide older changes, so its cached
history is pulled again for the ``message_extra`` rows (once per channel and epoch).

Per-channel refusals (a channel we were removed from answers 403) are reported in the progress
events and skipped; an unreachable server fails the run (retried on the next connect).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, Protocol, TypeVar

from magpie.client.cache import Cache
from magpie.client.errors import ApiRequestFailed, ClientError
from magpie.client.http import HttpApi
from magpie.client.model import Channel, ExtChange, Message, SyncPhase, SyncProgress
from magpie.client.options import ClientOptions
from magpie.client.state import SYNC_TRANSITIONS, StateMachine, SyncState, SyncTrigger

__all__ = ["Coalescer", "EpochChanged", "SyncSink", "Syncer"]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
#: Most ``last_msg_seqs`` entries the server accepts.
_MAX_LAST_SEQS = 10_000
#: A first page (cursor 0) with at least this many rows may hide older rows (module doc).
_FULL_FIRST_PAGE = 100


class EpochChanged(ClientError):
    """The server's store epoch differs from the cache's: the cache was reset."""

    code = "epoch_changed"


class SyncSink(Protocol):
    """Where the syncer reports what it did (the client's topics)."""

    def progress(self, event: SyncProgress) -> None:
        """A sync step happened."""

    def synced_messages(self, messages: Sequence[Message]) -> None:
        """Messages newly cached by a sync."""

    def ext_changes_applied(self, changes: Sequence[ExtChange]) -> None:
        """Extension changes newly applied."""

    def resync(self) -> None:
        """A full sync is needed (the epoch changed during a CMD-driven pull)."""


class Coalescer(Generic[K]):
    """Runs ``work(key)`` with at most one run per key at a time; a request that arrives
    during a run schedules exactly one more run after it. ``on_error`` sees the failures of
    runs nobody awaits."""

    def __init__(
        self,
        work: Callable[[K], Awaitable[None]],
        on_error: Callable[[K, BaseException], None],
    ) -> None:
        self._work = work
        self._on_error = on_error
        self._tasks: dict[K, asyncio.Task[None]] = {}
        self._again: set[K] = set()

    def kick(self, key: K, delay: float = 0.0) -> asyncio.Task[None]:
        """Run ``work(key)`` soon (after ``delay`` if it is not already running)."""
        task = self._tasks.get(key)
        if task is not None and not task.done() and not task.cancelling():
            self._again.add(key)
            return task
        task = asyncio.get_running_loop().create_task(self._loop(key, delay))
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._done(key, t))
        return task

    async def run(self, key: K) -> None:
        """Run ``work(key)`` (or join the run in progress and its follow-up) and wait."""
        await asyncio.shield(self.kick(key))

    async def _loop(self, key: K, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        while True:
            self._again.discard(key)
            await self._work(key)
            if key not in self._again:
                return

    def _done(self, key: K, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._on_error(key, exc)

    def cancel(self) -> None:
        """Cancel every run (without waiting)."""
        for task in self._tasks.values():
            task.cancel()

    async def close(self) -> None:
        """Cancel every run and wait for them to end."""
        tasks = list(self._tasks.values())
        self.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Syncer:
    """The sync logic of one client over its cache and HTTP API."""

    def __init__(self, cache: Cache, api: HttpApi, options: ClientOptions, sink: SyncSink) -> None:
        self._cache = cache
        self._api = api
        self._options = options
        self._sink = sink
        self._machine: StateMachine[SyncState, SyncTrigger] = StateMachine(
            SYNC_TRANSITIONS, SyncState.IDLE
        )
        self._fills: Coalescer[Channel] = Coalescer(self._fill, self._failed)
        self._exts: Coalescer[Channel] = Coalescer(self._pull_ext, self._failed)
        self._total = 0
        self._resets = 0
        self._checks: set[asyncio.Task[None]] = set()
        self._cold: set[Channel] = set()  # channels whose history this full sync loads anew

    @property
    def state(self) -> SyncState:
        """Where the last full sync is."""
        return self._machine.state

    # --- triggers -------------------------------------------------------------------------

    def ext_changed(self, channel: Channel, extra_version: int | None = None) -> None:
        """A ``syncMessageExtra`` CMD arrived for ``channel``: pull its changes, unless the
        CMD names an ``extra_version`` the cache already has (a duplicate CMD)."""
        if extra_version is None:
            self._exts.kick(channel)
            return
        task = asyncio.get_running_loop().create_task(self._pull_if_behind(channel, extra_version))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _pull_if_behind(self, channel: Channel, extra_version: int) -> None:
        if extra_version > await self._cache.ext_cursor(channel):
            self._exts.kick(channel)

    def live_gap(self, channel: Channel) -> None:
        """A live message left a hole in ``channel``: fill it after a short delay."""
        self._fills.kick(channel, self._options.gap_fill_delay)

    def link_lost(self) -> None:
        """The connection dropped: the next connect runs a full sync."""
        self._machine.fire(SyncTrigger.LINK_LOST)

    async def close(self) -> None:
        """Stop every pull."""
        for task in list(self._checks):
            task.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)
        await self._fills.close()
        await self._exts.close()

    # --- the full sync ---------------------------------------------------------------------

    async def full_sync(self) -> None:
        """Run a full sync (module docstring); raises if the server cannot be reached."""
        self._machine.fire(SyncTrigger.BEGIN)
        self._total = 0
        self._report(SyncPhase.STARTED)
        try:
            for _ in range(3):  # an epoch change starts over (thrice in a row: give up)
                resets = self._resets
                try:
                    await self._run_once()
                except EpochChanged:
                    continue
                if self._resets == resets:  # no reset behind our back either
                    break
        except BaseException as exc:
            self._fail(exc)
            raise
        self._machine.fire(SyncTrigger.SUCCEED)
        self._report(SyncPhase.DONE)

    def _fail(self, exc: BaseException) -> None:
        if self._machine.can(SyncTrigger.FAIL):
            self._machine.fire(SyncTrigger.FAIL)
        self._report(SyncPhase.FAILED, detail=f"{type(exc).__name__}: {exc}")

    async def _run_once(self) -> None:
        self._cold = set()
        cached = {channel for channel, _ in await self._cache.cached_seqs()}
        known = await self._cache.channels()
        probed = known[0] if known else None
        if probed is not None:
            await self._exts.run(probed)
        await self._conversations()
        conversations = await self._cache.conversations()
        self._cold = {c.channel for c in conversations} - cached
        for conversation in conversations:
            await self._fills.run(conversation.channel)
        for channel in await self._cache.channels():
            if channel != probed:  # pulled moments ago; later changes come with a CMD
                await self._exts.run(channel)

    async def _conversations(self) -> None:
        count = self._options.recents_per_conversation
        recents = await self._api.conversations(
            self._cache.conversation_version, await self._last_seqs() if count else "", count
        )
        await self._check_epoch(recents.epoch)  # before anything is stored (I7)
        await self._store(recents.messages)
        await self._cache.put_conversations(recents.conversations, recents.version)
        self._report(SyncPhase.CONVERSATIONS, count=len(recents.conversations))

    async def _last_seqs(self) -> str:
        """``last_msg_seqs`` for ``/conversation/sync``: ``chan:type:seq|…``."""
        seqs = await self._cache.cached_seqs()
        if len(seqs) > _MAX_LAST_SEQS:
            return ""
        return "|".join(f"{c}:{seq}" for c, seq in seqs if "|" not in c.channel_id)

    # --- per-channel work -----------------------------------------------------------------

    async def _fill(self, channel: Channel) -> None:
        """Pull every missing seq of ``channel`` below its last known seq."""
        top = await self._cache.last_seq(channel)
        try:
            for hole in await self._cache.holes(channel, self._floor(top), top):
                await self._fill_range(channel, hole)
        except ApiRequestFailed as exc:
            self._skip(channel, exc)

    async def _fill_range(self, channel: Channel, hole: range) -> None:
        """Pull the seqs of ``hole`` page by page. Seqs are gap-free (I3), so the next page
        is asked for while the previous one is being written to the cache."""
        start, page_size = hole.start, self._options.sync_page_size
        writing: asyncio.Task[None] | None = None
        try:
            while start < hole.stop:
                limit = min(page_size, hole.stop - start)
                page = await self._api.history(channel, start, hole.stop, limit)
                if writing is not None:
                    await writing
                await self._check_epoch(page.epoch)
                if not page.messages:
                    return
                writing = asyncio.ensure_future(self._store_page(channel, page.messages))
                start = page.messages[-1].message_seq + 1
                if not page.more:
                    return
        finally:
            if writing is not None:
                await writing

    async def _store_page(self, channel: Channel, messages: Sequence[Message]) -> None:
        await self._store(messages)
        self._report(SyncPhase.MESSAGES, channel, len(messages))

    async def _store(self, messages: Sequence[Message]) -> None:
        stored = await self._cache.put_messages(messages)
        self._sink.synced_messages(stored.fresh)
        self._sink.ext_changes_applied(stored.changes)

    async def _pull_ext(self, channel: Channel) -> None:
        """Apply every extension change of ``channel`` above its cursor."""
        cursor = await self._cache.ext_cursor(channel)
        try:
            while True:
                page = await self._api.ext_rows(channel, cursor, self._options.ext_page_size)
                await self._check_epoch(page.epoch)
                changes = await self._cache.apply_ext(channel, page.rows)
                self._sink.ext_changes_applied(changes)
                self._report(SyncPhase.EXTENSIONS, channel, len(page.rows))
                if cursor == 0 and self._may_hide_older(channel, len(page.rows)):
                    await self._refresh_history(channel)
                top = max([cursor, *(r.extra_version for r in page.rows)])
                if not page.more or top == cursor:
                    return
                cursor = top
        except ApiRequestFailed as exc:
            self._skip(channel, exc)

    def _may_hide_older(self, channel: Channel, rows: int) -> bool:
        """Whether a first page (cursor 0) of ``rows`` rows may have left older changes of
        cached messages out (module docstring, "Cursor 0")."""
        return rows >= min(self._options.ext_page_size, _FULL_FIRST_PAGE) and (
            channel not in self._cold
        )

    async def _refresh_history(self, channel: Channel) -> None:
        """Pull the cached history of ``channel`` again, for its ``message_extra`` rows."""
        top = await self._cache.max_seq(channel)
        if top:
            await self._fill_range(channel, range(self._floor(top), top + 1))

    def _floor(self, top: int) -> int:
        """The lowest seq kept of a channel whose last seq is ``top`` (``history_limit``)."""
        limit = self._options.history_limit
        return 1 if limit is None else max(1, top - limit + 1)

    async def _check_epoch(self, epoch: str) -> None:
        """Adopt the server's epoch, or reset the cache and raise if it changed (I7). A
        cache that holds data but never recorded an epoch is stale as well: its data may
        come from another store (e.g. it only sent messages before the server was moved
        onto a restored or fresh store)."""
        if not epoch or epoch == self._cache.epoch:
            return
        if not self._cache.epoch and await self._cache.adopt_epoch(epoch):
            return
        log.warning("the server's store epoch differs from the cache's: dropping the cache")
        await self._cache.reset(epoch)
        self._resets += 1
        self._report(SyncPhase.RESET, detail=epoch)
        raise EpochChanged("the server store epoch changed; the cache was reset")

    # --- reporting --------------------------------------------------------------------------

    def _skip(self, channel: Channel, exc: ApiRequestFailed) -> None:
        """A channel the server refuses to sync (404 no such route/channel, 403 not a
        member any more) is skipped, not retried in a loop."""
        log.info("sync of %s skipped: %s", channel, exc.message)
        self._report(SyncPhase.FAILED, channel, detail=exc.message)

    def _failed(self, channel: Channel, exc: BaseException) -> None:
        """A background pull failed (a full sync in progress sees its own failures)."""
        if self._machine.state is SyncState.SYNCING:
            return
        if isinstance(exc, EpochChanged):
            self._sink.resync()
        else:
            log.info("background sync of %s failed: %s", channel, exc)

    def _report(
        self, phase: SyncPhase, channel: Channel | None = None, count: int = 0, detail: str = ""
    ) -> None:
        self._total += count
        self._sink.progress(SyncProgress(phase, channel, count, self._total, detail))

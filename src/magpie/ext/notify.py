"""After-commit notification of extension changes: the ``syncMessageExtra`` CMD (spec §4.1,
§5.2).

After a change commits, :class:`Notifier` tells the channel's subscribers to sync with a CMD
``{"type":99,"cmd":"syncMessageExtra","param":{channel_id, channel_type, extra_version}}``.
Changes of one channel within ``window`` seconds are **coalesced** into one CMD; the window
opens with the first change and the CMD carries the highest ``extra_version`` seen when it
fires, so the last change is never lost (a change after the CMD left opens a new window).

A window holding an *important* change sends a persisted sync-once CMD (each recipient's
offline queue, resent until RECVACK); otherwise the CMD is online-only (sync-once +
no-persist, as TangSengDaoDao sends it). Red dot is off: a CMD is not a message to read.

Person channels are stored under the fake id ``a@b`` (spec §4; uids never contain ``@``) and
each party sees the other as the channel: the CMD goes to each party separately, naming the
peer in ``param.channel_id`` and sent "from" the peer so the RECV's channel is the peer too.

The notifier never imports the IM core: it hands :class:`Cmd` values to a ``send`` callable
that the composition root wires to the send flow (``/message/send`` with ``from_api``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from magpie.domain.channels import is_fake_id, parties
from magpie.domain.content import cmd_payload

__all__ = ["CMD_NAME", "Announcement", "Cmd", "CmdSender", "Notifier", "commands"]

log = logging.getLogger(__name__)

#: The CMD name clients listen for (TangSengDaoDao, spec §5.2).
CMD_NAME = "syncMessageExtra"


@dataclass(frozen=True, slots=True)
class Cmd:
    """One CMD to send as the business API would: from ``from_uid`` to ``channel_id`` (the
    peer uid for a person channel), only to ``subscribers`` when given. ``persisted`` selects
    sync-once into offline queues; otherwise sync-once + no-persist (online only)."""

    from_uid: str
    channel_id: str
    channel_type: int
    payload: bytes
    persisted: bool
    subscribers: tuple[str, ...] | None = None


#: Sends one CMD; returns whether the send flow accepted it.
CmdSender = Callable[[Cmd], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Announcement:
    """What a notifier's CMDs are called and how their ``param`` names the version: the
    extension notifier's ``syncMessageExtra`` with ``extra_version`` (the default); the
    reactions' ``syncMessageReaction`` with ``seq``."""

    cmd: str = CMD_NAME
    cursor: str = "extra_version"

    def payload(self, channel_id: str, channel_type: int, version: int) -> bytes:
        """The CMD's payload naming ``version`` in the channel as its receiver sees it."""
        param = {"channel_id": channel_id, "channel_type": channel_type, self.cursor: version}
        return cmd_payload(self.cmd, param)


def commands(
    channel_id: str,
    channel_type: int,
    extra_version: int,
    important: bool,
    what: Announcement = Announcement(),
) -> list[Cmd]:
    """The CMDs announcing ``extra_version`` (or ``what``'s version) in the channel stored as
    ``channel_id``."""
    if not is_fake_id(channel_id, channel_type):
        payload = what.payload(channel_id, channel_type, extra_version)
        return [Cmd("", channel_id, channel_type, payload, important)]
    first, second = parties(channel_id)
    out = []
    for me, peer in dict.fromkeys([(first, second), (second, first)]):
        payload = what.payload(peer, channel_type, extra_version)
        out.append(Cmd(peer, me, channel_type, payload, important, (me,)))
    return out


@dataclass(slots=True)
class _Pending:
    """A channel's open coalescing window."""

    extra_version: int
    important: bool
    timer: asyncio.TimerHandle | None = None


class Notifier:
    """Coalesces extension changes per channel and sends ``syncMessageExtra`` CMDs.

    ``window`` is in seconds (``Settings.ext_coalesce_ms / 1000``); 0 sends one CMD per
    change. ``what`` names the CMD and its version key (default ``syncMessageExtra`` with
    ``extra_version``). Must be used from one event loop; :meth:`close` sends what is
    pending."""

    def __init__(
        self,
        send: CmdSender,
        *,
        window: float,
        what: Announcement = Announcement(),
    ) -> None:
        self._send = send
        self._window = window
        self._what = what
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # The last delivery of each channel: the next one waits for it, so a channel's CMDs
        # are sent in extra_version order whatever the store's latency per call.
        self._last: dict[tuple[str, int], asyncio.Task[None]] = {}

    @property
    def pending(self) -> int:
        """Channels whose CMD waits for its coalescing window (a metrics probe)."""
        return len(self._pending)

    def changed(
        self, channel_id: str, channel_type: int, extra_version: int, *, important: bool
    ) -> None:
        """Note a committed change (never blocks); the CMD follows within the window."""
        key = (channel_id, channel_type)
        pending = self._pending.get(key)
        if pending is not None:
            pending.extra_version = max(pending.extra_version, extra_version)
            pending.important = pending.important or important
            return
        pending = _Pending(extra_version, important)
        self._pending[key] = pending
        if self._window <= 0:
            self._fire(key)
        else:
            loop = asyncio.get_running_loop()
            pending.timer = loop.call_later(self._window, self._fire, key)

    def _fire(self, key: tuple[str, int]) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        cmds = commands(*key, pending.extra_version, pending.important, self._what)
        task = asyncio.get_running_loop().create_task(self._deliver(cmds, self._last.get(key)))
        self._tasks.add(task)
        self._last[key] = task
        task.add_done_callback(lambda t: self._done(key, t))

    def _done(self, key: tuple[str, int], task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._last.get(key) is task:
            del self._last[key]

    async def _deliver(self, cmds: list[Cmd], after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait([after])  # its outcome is its own; only the order matters
        for cmd in cmds:
            try:
                if not await self._send(cmd):
                    log.info(
                        "%s CMD refused for a channel of type %d", self._what.cmd, cmd.channel_type
                    )
            except Exception:
                log.exception("%s CMD failed", self._what.cmd)

    async def flush(self) -> None:
        """Send every pending CMD now and wait until all CMDs in flight are sent."""
        for key in list(self._pending):
            self._fire(key)
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def close(self) -> None:
        """Flush (at shutdown, before the send flow and the store stop)."""
        await self.flush()

"""Typing notices (``POST /message/typing``): an online-only ``typing`` CMD to the channel's
other members, at most one per user and channel per ``min_interval``.

The limiter is this node's memory (a notice that goes to another node's rate window is
allowed there too, which only lets a user type twice as often through two nodes). Entries
older than the interval are dropped whenever the table reaches ``max_entries``, so it stays
bounded whatever the number of typists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from magpie.core.notices import TYPING, to_channel, to_peer
from magpie.domain.channels import is_fake_id, peer_of
from magpie.domain.content import cmd_payload
from magpie.ext.notify import CmdSender
from magpie.store.interface import Store

__all__ = ["Typing"]

log = logging.getLogger(__name__)

#: Rate-limit entries kept at most before the old ones are swept.
MAX_ENTRIES = 100_000


class Typing:
    """Sends typing notices, rate-limited per (user, channel).

    ``min_interval`` and ``expire`` are in seconds; ``clock`` is monotonic seconds."""

    def __init__(
        self,
        store: Store,
        send: CmdSender,
        *,
        min_interval: float,
        expire: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._store = store
        self._send = send
        self.min_interval = min_interval
        self.expire = expire
        self._clock = clock
        self._max_entries = max_entries
        self._last: dict[tuple[str, str, int], float] = {}

    def wait_left(self, uid: str, channel_id: str, channel_type: int) -> float:
        """Seconds until ``uid`` may send the next notice in the channel (0: now)."""
        last = self._last.get((uid, channel_id, channel_type))
        if last is None:
            return 0.0
        return max(0.0, last + self.min_interval - self._clock())

    async def notice(self, uid: str, channel_id: str, channel_type: int) -> float:
        """Tell the channel (storage id; the caller checked membership) that ``uid`` is
        typing. Returns 0 when sent, else the seconds to wait (nothing was sent)."""
        wait = self.wait_left(uid, channel_id, channel_type)
        if wait > 0:
            return wait
        self._remember((uid, channel_id, channel_type))
        param = {"from_uid": uid, "channel_type": channel_type}
        param["expires_in_ms"] = round(self.expire * 1000)
        if is_fake_id(channel_id, channel_type):
            peer = peer_of(channel_id, uid)
            cmd = to_peer(uid, peer, cmd_payload(TYPING, {**param, "channel_id": uid}))
        else:
            members = await self._store.get_subscribers(channel_id, channel_type)
            payload = cmd_payload(TYPING, {**param, "channel_id": channel_id})
            found = to_channel(channel_id, channel_type, (m for m in members if m != uid), payload)
            if found is None:
                return 0.0
            cmd = found
        if not await self._send(cmd):
            log.info("typing CMD refused in a channel of type %d", channel_type)
        return 0.0

    def _remember(self, key: tuple[str, str, int]) -> None:
        now = self._clock()
        if len(self._last) >= self._max_entries:
            cutoff = now - self.min_interval
            self._last = {k: t for k, t in self._last.items() if t > cutoff}
        self._last[key] = now

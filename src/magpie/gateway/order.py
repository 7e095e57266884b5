"""Per-channel delivery order on one node: RECVs of a channel leave in ``message_seq`` order.

Several nodes commit into one channel at once; each publishes its message after its commit,
and the bus carries each node's events in order but says nothing about the order *between*
publishers (``magpie.bus.interface``). So seq 6, committed on node B, can reach node C before
seq 5 from node A. :class:`ChannelOrder` sits between the bus and the gateway's delivery and
keeps, per channel, the next seq this node expects:

* the expected seq (or any seq of a channel with nothing held) is delivered at once — the
  only cost of the common case is one dict lookup;
* a seq above it is **held**; when the missing ones arrive (normally within a millisecond or
  two) everything held that is now contiguous goes out in seq order;
* if the gap is still open ``hold`` seconds after the first held event, the missing messages
  are **read from the store** (committed: the held, later seq committed after them) and
  delivered, in order, to the recipients of the held events, before the held ones; a late bus
  copy of a message delivered that way is dropped. (Such a message carries no sending
  connection to leave out; the gateway knows its own SENDs under way and leaves it out.)
  A store that cannot answer, or a seq the store does not have, is **skipped** (the held
  messages go out; clients fill by sync);
* a channel this node has no state for is held for ``hold`` too when ``hold_unknown`` (a
  cluster: its first event may be overtaking an earlier one); the first seq of a channel, and
  every first delivery on a single node (both stores publish a channel in commit order), go
  out at once;
* a seq below the expected one that was not delivered from the store (a second frame of one
  event split by the bus, or one that was skipped) is delivered late rather than lost.

Sync-once commands carry a per-user queue seq instead (``Delivery.queue_seqs``): they are
ordered the same way per recipient — an event for several users is split into one per user —
with gaps read from that user's queue (``read_queue``). This matters beyond looks: a master
device's RECVACK of queue seq *q* moves the queue's cursor past every lower seq, so a lower
one still on its way from another node would be lost from the queue if the device went away
before it arrived. Messages without a channel seq (no-persist) pass straight through.
Channels and queues idle for two sweeps are forgotten (:meth:`sweep`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from magpie.bus.interface import Delivery
from magpie.store.interface import StoredMessage

__all__ = ["ChannelOrder", "Fetch", "OrderCounts", "QueueFetch"]

log = logging.getLogger(__name__)

#: Reads the committed messages of a channel with ``first <= seq < end`` (ascending).
Fetch = Callable[[str, int, int, int], Awaitable[Sequence[StoredMessage]]]
#: Reads a user's queued commands with ``first <= queue seq < end``: (queue seq, message).
QueueFetch = Callable[[str, int, int], Awaitable[Sequence[tuple[int, StoredMessage]]]]
#: The "channel type" of a user's queue line (channel types are positive).
_QUEUE = -1
#: Most messages one store read fills (a longer gap is filled by several reads).
_FILL_MAX = 500
#: Seqs delivered from the store remembered per channel (to drop their late bus copies).
_FILLED_KEEP = 1024

Key = tuple[str, int]


@dataclass(slots=True)
class OrderCounts:
    """What the orderer did (exported as ``magpie_delivery_order_total{outcome}``)."""

    held: int = 0
    filled: int = 0
    skipped: int = 0
    late: int = 0
    dropped: int = 0


@dataclass(slots=True, eq=False)
class _Line:
    """One channel's state: the next seq expected (0: unknown, first events held)."""

    next: int
    gen: int
    held: dict[int, list[Delivery]] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    filling: bool = False
    filled: set[int] = field(default_factory=set)


class ChannelOrder:
    """Orders a node's deliveries per channel (module doc)."""

    def __init__(
        self,
        deliver: Callable[[Delivery], None],
        fetch: Fetch,
        *,
        hold: float,
        hold_unknown: bool,
        fetch_queue: QueueFetch | None = None,
        online: Callable[[str], bool] = lambda uid: True,
    ) -> None:
        self._deliver = deliver
        self._fetch = fetch
        self._fetch_queue = fetch_queue
        self._online = online
        self.hold = hold
        self.hold_unknown = hold_unknown
        self.counts = OrderCounts()
        self._lines: dict[Key, _Line] = {}
        self._gen = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._lines)

    def accept(self, event: Delivery) -> None:
        """Deliver ``event`` now, or hold it until the seqs before it were delivered."""
        msg = event.message
        if event.queue_seqs:
            self._accept_queued(event)
            return
        seq = msg.message_seq
        if not seq:
            self._deliver(event)
            return
        self._accept_at((msg.channel_id, msg.channel_type), seq, event)

    def _accept_queued(self, event: Delivery) -> None:
        """A sync-once command: ordered per recipient by its queue seq (module doc). Only
        recipients online on this node have a line: the others have nobody to deliver to
        here (they pull their queue when they connect), and a big group's offline members
        must not cost a line, a hold and a queue read each."""
        queue_seqs = event.queue_seqs
        if self._fetch_queue is None:
            self._deliver(event)
            return
        single = len(event.recipients) == 1
        for uid in event.recipients:
            key = (uid, _QUEUE)
            if not self._online(uid):
                self._lines.pop(key, None)  # it starts anew when the user is back
                continue
            seq = queue_seqs.get(uid, 0)
            if single:
                one = event
            else:
                mine = {uid: seq} if seq else {}
                one = Delivery(event.message, (uid,), event.exclude_conn, mine)
            if seq:
                self._accept_at(key, seq, one)
            else:
                self._deliver(one)

    def _accept_at(self, key: Key, seq: int, event: Delivery) -> None:
        line = self._lines.get(key)
        if line is None:
            if seq == 1 or not self.hold_unknown:
                self._lines[key] = _Line(seq + 1, self._gen)
                self._deliver(event)
                return
            line = self._lines[key] = _Line(0, self._gen)
            self._hold(key, line, seq, event)
            return
        line.gen = self._gen
        expected = line.next
        if seq == expected:
            line.next = seq + 1
            self._deliver(event)
            if line.held:
                self._release(key, line)
        elif expected == 0 or seq > expected:
            self._hold(key, line, seq, event)
        elif seq in line.filled:
            self.counts.dropped += 1  # its copy from the store went out already
        else:
            # Below the expected seq and not from the store: the second frame of a split
            # event, or a message skipped (store unreachable) or overtaken by a channel's
            # first held events for longer than the hold. Late rather than lost.
            self.counts.late += 1
            self._deliver(event)

    def sweep(self) -> None:
        """Forget channels with no event since the previous sweep (call periodically)."""
        gen = self._gen
        stale = [
            key
            for key, line in self._lines.items()
            if line.gen < gen and not line.held and not line.filling
        ]
        for key in stale:
            del self._lines[key]
        self._gen = gen + 1

    async def close(self) -> None:
        """Cancel timers and store reads; what is held is dropped (clients sync)."""
        for line in self._lines.values():
            if line.timer is not None:
                line.timer.cancel()
                line.timer = None
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._lines.clear()

    # --- holding and releasing ---------------------------------------------------------------

    def _hold(self, key: Key, line: _Line, seq: int, event: Delivery) -> None:
        self.counts.held += 1
        line.held.setdefault(seq, []).append(event)
        if line.timer is None and not line.filling:
            loop = asyncio.get_running_loop()
            line.timer = loop.call_later(self.hold, self._expired, key, line)

    def _release(self, key: Key, line: _Line) -> None:
        """Deliver the held events that are now contiguous; stop the timer if none is left."""
        held = line.held
        while line.next in held:
            seq = line.next
            line.next = seq + 1
            for event in held.pop(seq):
                self._deliver(event)
        if not held and line.timer is not None:
            line.timer.cancel()
            line.timer = None

    def _expired(self, key: Key, line: _Line) -> None:
        line.timer = None
        if self._lines.get(key) is not line or not line.held:
            return
        if line.next == 0:  # a channel seen first: start at the lowest seq that arrived
            line.next = min(line.held)
            self._release(key, line)
            if not line.held:
                return
        line.filling = True
        task = asyncio.get_running_loop().create_task(self._fill(key, line))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, key: Key, line: _Line) -> None:
        """Read the gap below the lowest held seq from the store and deliver it in order."""
        try:
            while line.held:
                first = line.next
                end = min(min(line.held), first + _FILL_MAX)
                try:
                    found = await self._read(key, first, end)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the store is down: skip the gap
                    log.warning(
                        "delivery order: reading seqs %d-%d of %s/%d failed (%s); skipping",
                        first, end - 1, key[0], key[1], exc,
                    )  # fmt: skip
                    found = ()
                self._apply(key, line, found, end)
        finally:
            line.filling = False
        if line.held and line.timer is None and self._lines.get(key) is line:
            line.timer = asyncio.get_running_loop().call_later(self.hold, self._expired, key, line)

    async def _read(self, key: Key, first: int, end: int) -> Sequence[tuple[int, StoredMessage]]:
        """The committed messages of a line with ``first <= seq < end``: (seq, message)."""
        if key[1] == _QUEUE and self._fetch_queue is not None:
            return await self._fetch_queue(key[0], first, end)
        return [(m.message_seq, m) for m in await self._fetch(key[0], key[1], first, end)]

    def _apply(
        self, key: Key, line: _Line, found: Sequence[tuple[int, StoredMessage]], end: int
    ) -> None:
        """Deliver the messages read for ``[line.next, end)``, then what is contiguous."""
        by_seq = dict(found)
        recipients = tuple(
            dict.fromkeys(u for events in line.held.values() for e in events for u in e.recipients)
        )
        while line.next < end:
            seq = line.next
            line.next = seq + 1
            events = line.held.pop(seq, None)
            if events is not None:  # arrived on the bus while the store was read
                for event in events:
                    self._deliver(event)
                continue
            message = by_seq.get(seq)
            if message is None:
                self.counts.skipped += 1
                continue
            self.counts.filled += 1
            line.filled.add(seq)
            if key[1] == _QUEUE:
                self._deliver(Delivery(message, (key[0],), "", {key[0]: seq}))
            else:
                self._deliver(Delivery(message, recipients))
        if len(line.filled) > _FILLED_KEEP:
            floor = line.next - _FILLED_KEEP
            line.filled = {s for s in line.filled if s >= floor}
        held = line.held
        while line.next in held:
            seq = line.next
            line.next = seq + 1
            for event in held.pop(seq):
                self._deliver(event)

"""The delivery trace of one node: which devices acknowledged which messages, and when.

A bounded in-memory ring (``trace_capacity`` acknowledgements, oldest dropped first), filled
on the gateway's RECVACK path at the cost of one tuple and one ``deque.append``; and a
smaller ring of the ``syncMessageExtra`` CMDs this node sent (channel, ``extra_version``
announced, the CMD's message id), so the acknowledgements of a message's *latest change*
can be found too. Nothing is persisted and nothing is shared: in a cluster every node keeps
the acknowledgements of the devices connected to it, and an administrator asks each node
(``GET /admin/messages/{message_id}`` answers for the node it reaches).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["DEFAULT_TRACE_CAPACITY", "Ack", "CmdSent", "DeliveryTrace"]

#: Acknowledgements kept by a trace built without a capacity of its own (tests, tools).
DEFAULT_TRACE_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class Ack:
    """One RECVACK: a device of ``uid`` acknowledged ``message_id`` at ``at_ms``."""

    message_id: int
    uid: str
    device_flag: int
    device_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class CmdSent:
    """A ``syncMessageExtra`` CMD (``message_id``) announcing ``extra_version`` of the
    channel stored as ``channel_id``/``channel_type``."""

    channel_id: str
    channel_type: int
    extra_version: int
    message_id: int
    at_ms: int


class DeliveryTrace:
    """The node's bounded rings of acknowledgements and CMDs (see the module docstring)."""

    def __init__(
        self, capacity: int, clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000
    ) -> None:
        self.capacity = capacity
        self._clock_ms = clock_ms
        self._acks: deque[tuple[int, str, int, str, int]] = deque(maxlen=capacity)
        self._cmds: deque[CmdSent] = deque(maxlen=max(1, capacity // 10))
        #: The hot path's bound method: ``record_ack((message_id, uid, flag, device, ms))``.
        self.record_ack = self._acks.append

    def ack(self, message_id: int, uid: str, device_flag: int, device_id: str) -> None:
        """Record one acknowledgement now."""
        self.record_ack((message_id, uid, device_flag, device_id, self._clock_ms()))

    def cmd_sent(
        self, channel_id: str, channel_type: int, extra_version: int, message_id: int
    ) -> None:
        """Record a ``syncMessageExtra`` CMD this node sent."""
        self._cmds.append(
            CmdSent(channel_id, channel_type, extra_version, message_id, self._clock_ms())
        )

    def acks_of(self, message_ids: Iterable[int]) -> list[Ack]:
        """The recorded acknowledgements of ``message_ids``, oldest first."""
        wanted = set(message_ids)
        return [Ack(*entry) for entry in self._acks if entry[0] in wanted]

    def cmds_announcing(
        self, channel_id: str, channel_type: int, extra_version: int
    ) -> list[CmdSent]:
        """The CMDs of the channel that announced ``extra_version`` or later (a device that
        acknowledged one of them was told of that change), oldest first."""
        return [
            c
            for c in self._cmds
            if c.channel_id == channel_id
            and c.channel_type == channel_type
            and c.extra_version >= extra_version
        ]

    @property
    def oldest_ms(self) -> int:
        """When the oldest kept acknowledgement was recorded (0: none kept)."""
        return self._acks[0][4] if self._acks else 0

    def __len__(self) -> int:
        return len(self._acks)

"""One client connection: its keys, its outbound queue, its unacked RECVs and its pending work.

The outbound queue is bounded in frames and bytes. A frame is written straight to the socket
while nothing is queued and the socket's buffer is small (the common case: no task switch, no
copy); otherwise it waits in a deque, drained when the transport says its buffer went below
the low-water mark (and, as a safety net, polled while frames wait). A session that would go
over either bound is a *slow consumer*: it is closed, and nobody else waits for it — its client
reconnects and resyncs (I5).

Inbound, the session is the wire's :class:`~magpie.gateway.wire.WireHandler`: bytes go to the
gateway's :class:`SessionEvents` synchronously. Work that must await the store (a SEND, a
master device's RECVACK of a persisted command) is queued in :attr:`Session.work` and done in
arrival order by one task per busy session; while more than ``max_pending`` items wait, the
socket is not read (back-pressure instead of an unbounded queue).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from magpie.gateway.wire import Wire
from magpie.logs import ConnectionLog
from magpie.metrics import Traffic
from magpie.protocol.connection import Connection
from magpie.protocol.crypto import SessionCipher
from magpie.protocol.packets import Send

__all__ = ["OutboundLimits", "Phase", "Session", "SessionEvents", "Work"]

log = logging.getLogger(__name__)

#: Below this many buffered bytes a frame is written directly instead of being queued.
_DIRECT_WRITE_BELOW = 64 * 1024
#: While frames wait in the queue, how often the buffer is looked at again (seconds), in case
#: the transport never crossed its high-water mark and so will not say when it drained.
_DRAIN_POLL = 0.05

#: A unit of work that awaits the store: a SEND, or the message_seq of a RECVACK to apply to
#: the user's persisted-command queue.
Work = Send | int


class Phase(Enum):
    """Where a connection is (see :mod:`magpie.gateway.server`)."""

    AWAIT_CONNECT = "await_connect"  # no CONNECT yet; the connect timer runs
    AUTHENTICATING = "authenticating"  # CONNECT read; token check and keys under way
    ESTABLISHED = "established"  # CONNACK sent: packets flow
    CLOSED = "closed"  # refused, closed or gone


@dataclass(frozen=True, slots=True)
class OutboundLimits:
    """Per-session bounds."""

    max_frames: int
    max_bytes: int
    max_inflight: int


class SessionEvents(Protocol):
    """The gateway's handlers of a session's wire events."""

    def session_data(self, session: Session, data: bytes) -> None:
        """Bytes from the client."""
        ...

    def session_invalid(self, session: Session, reason: str) -> None:
        """Something that is not WuKongIM arrived."""
        ...

    def session_lost(self, session: Session) -> None:
        """The socket is gone."""
        ...


class Session:
    """State of one client connection, from accept to close."""

    __slots__ = (
        "_drain_timer",
        "_events",
        "_on_slow",
        "_queue",
        "_queued_bytes",
        "cipher",
        "closed",
        "conn",
        "conn_id",
        "device_flag",
        "device_id",
        "device_level",
        "inflight",
        "last_seen",
        "limits",
        "log",
        "phase",
        "refusals",
        "timer",
        "traffic",
        "uid",
        "work",
        "worker",
        "ws",
    )

    def __init__(
        self,
        ws: Wire,
        conn: Connection,
        conn_id: str,
        limits: OutboundLimits,
        on_slow: Callable[[Session], None],
        traffic: Traffic,
        events: SessionEvents | None = None,
    ) -> None:
        #: The connection's wire (WebSocket or TCP; the name is historical).
        self.ws = ws
        #: Frame and byte counts of the session's transport (shared by its sessions).
        self.traffic = traffic
        self.conn = conn
        self.conn_id = conn_id
        self.limits = limits
        self.phase = Phase.AWAIT_CONNECT
        self.uid = ""
        self.device_flag = 0
        self.device_level = 0
        self.device_id = ""
        self.cipher: SessionCipher | None = None
        #: Unacknowledged persisted RECVs: message_id -> frame (same key, resendable as is).
        self.inflight: dict[int, bytes] = {}
        self.last_seen = 0.0
        self.closed = False
        #: SENDs refused by the rate limit since the last one accepted.
        self.refusals = 0
        self.log = ConnectionLog(log, conn_id, ws.remote)
        #: The connect timer until CONNECT arrives.
        self.timer: asyncio.TimerHandle | None = None
        #: Work that awaits the store, in arrival order, and the task doing it.
        self.work: deque[Work] | None = None
        self.worker: asyncio.Task[None] | None = None
        self._events = events
        self._on_slow = on_slow
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._drain_timer: asyncio.TimerHandle | None = None

    # WireHandler --------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        """Bytes from the client: to the gateway."""
        if self._events is not None:
            self._events.session_data(self, data)

    def on_invalid(self, reason: str) -> None:
        """Not WuKongIM: to the gateway."""
        if self._events is not None:
            self._events.session_invalid(self, reason)

    def on_writable(self) -> None:
        """The socket drained: write what waits."""
        self._drain()

    def on_lost(self) -> None:
        """The socket is gone."""
        self.closed = True
        self.phase = Phase.CLOSED
        self._stop_timers()
        if self._events is not None:
            self._events.session_lost(self)

    # outbound -----------------------------------------------------------------------------

    def push(self, frame: bytes) -> bool:
        """Queue one frame (one packet per WebSocket message, spec §3); false if the session
        is closed or was just closed as a slow consumer."""
        if self.closed:
            return False
        if not self._queue and self.ws.buffered() < _DIRECT_WRITE_BELOW:
            self.ws.write(frame)
            traffic = self.traffic
            traffic.frames_out += 1
            traffic.bytes_out += len(frame)
            return True
        if (
            len(self._queue) >= self.limits.max_frames
            or self._queued_bytes + self.ws.buffered() + len(frame) > self.limits.max_bytes
        ):
            self._on_slow(self)
            return False
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._arm_drain()
        return True

    def track(self, message_id: int, frame: bytes) -> bool:
        """Remember an unacked persisted RECV for retries; false when over ``max_inflight``."""
        if len(self.inflight) >= self.limits.max_inflight and message_id not in self.inflight:
            return False
        self.inflight[message_id] = frame
        return True

    @property
    def queued(self) -> int:
        """Frames waiting in the queue."""
        return len(self._queue)

    def _arm_drain(self) -> None:
        if self._drain_timer is None and not self.closed:
            loop = asyncio.get_running_loop()
            self._drain_timer = loop.call_later(_DRAIN_POLL, self._drain)

    def _drain(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        queue = self._queue
        ws = self.ws
        while queue and ws.buffered() < _DIRECT_WRITE_BELOW:
            frame = queue.popleft()
            self._queued_bytes -= len(frame)
            ws.write(frame)
            self.traffic.count_out(frame)
        if queue and not self.closed:
            self._arm_drain()

    def _stop_timers(self) -> None:
        for timer in (self.timer, self._drain_timer):
            if timer is not None:
                timer.cancel()
        self.timer = None
        self._drain_timer = None

    # closing ------------------------------------------------------------------------------

    def close_soon(self, code: int, reason: str, delay: float = 0.0) -> None:
        """Mark closed and close the socket (after ``delay`` seconds, so a DISCONNECT just
        written can reach the client)."""
        if self.closed:
            return
        self.closed = True
        self.phase = Phase.CLOSED
        if not delay:  # a slow consumer: what it has not read is dropped
            self._queue.clear()
            self._queued_bytes = 0
            self._stop_timers()
            self.ws.close(code, reason)
            return
        asyncio.get_running_loop().call_later(delay, self._close_late, code, reason)

    def _close_late(self, code: int, reason: str) -> None:
        self._drain()
        self._stop_timers()
        self.ws.close(code, reason)

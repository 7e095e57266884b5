"""One authenticated client connection: its keys, its outbound queue and its unacked RECVs.

The outbound queue is bounded in frames and bytes. A frame is written straight to the socket
while nothing is queued and the socket's buffer is small (the common case: no task switch, no
copy); otherwise it waits in a deque drained by one task per busy session. A session that
would go over either bound is a *slow consumer*: it is closed, and nobody else waits for it —
its client reconnects and resyncs (I5).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from magpie.gateway.ws import ConnectionClosed, WsConn
from magpie.logs import ConnectionLog
from magpie.metrics import Traffic
from magpie.protocol.connection import Connection
from magpie.protocol.crypto import SessionCipher

__all__ = ["OutboundLimits", "Pending", "Session"]

log = logging.getLogger(__name__)

#: Below this many buffered bytes a frame is written directly instead of being queued.
_DIRECT_WRITE_BELOW = 64 * 1024


@dataclass(frozen=True, slots=True)
class OutboundLimits:
    """Per-session bounds."""

    max_frames: int
    max_bytes: int
    max_inflight: int


@dataclass(slots=True)
class Pending:
    """An unacknowledged persisted RECV: its frame (same key, so resendable as is)."""

    frame: bytes
    attempts: int = 0


class Session:
    """State of one connection after a successful CONNECT."""

    __slots__ = (
        "_drainer",
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
        "traffic",
        "uid",
        "ws",
    )

    def __init__(
        self,
        ws: WsConn,
        conn: Connection,
        conn_id: str,
        limits: OutboundLimits,
        on_slow: Callable[[Session], None],
        traffic: Traffic,
    ) -> None:
        self.ws = ws
        self.traffic = traffic
        self.conn = conn
        self.conn_id = conn_id
        self.limits = limits
        self.uid = ""
        self.device_flag = 0
        self.device_level = 0
        self.device_id = ""
        self.cipher: SessionCipher | None = None
        self.inflight: dict[int, Pending] = {}
        self.last_seen = 0.0
        self.closed = False
        self.log = ConnectionLog(log, conn_id, ws.remote)
        self._on_slow = on_slow
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._drainer: asyncio.Task[None] | None = None

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
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return True

    def track(self, message_id: int, frame: bytes) -> bool:
        """Remember an unacked persisted RECV for retries; false when over ``max_inflight``."""
        if len(self.inflight) >= self.limits.max_inflight and message_id not in self.inflight:
            return False
        self.inflight[message_id] = Pending(frame)
        return True

    @property
    def queued(self) -> int:
        """Frames waiting in the queue."""
        return len(self._queue)

    async def _drain(self) -> None:
        try:
            while self._queue:
                frame = self._queue.popleft()
                self._queued_bytes -= len(frame)
                await self.ws.send(frame)
                self.traffic.count_out(frame)
        except ConnectionClosed:
            self.closed = True
        finally:
            self._drainer = None

    def close_soon(self, code: int, reason: str, delay: float = 0.0) -> None:
        """Mark closed and close the socket in the background (after ``delay`` seconds, so a
        DISCONNECT just written can reach the client)."""
        if self.closed:
            return
        self.closed = True
        if not delay:  # a slow consumer: what it has not read is dropped
            self._queue.clear()
            self._queued_bytes = 0
        asyncio.get_running_loop().create_task(self._close_later(code, reason, delay))

    async def _close_later(self, code: int, reason: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        try:
            await self.ws.close(code, reason)
        except Exception:  # the socket may already be gone; closing is best effort
            self.log.debug("close failed", exc_info=True)

"""The thin adapter between Magpie's gateway and the WebSocket library.

The gateway sees only :class:`WsConn`; swapping the library (``websockets`` today, chosen in
``docs/architecture.md``) touches this file alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

__all__ = ["ConnectionClosed", "WebsocketsConn", "WsConn", "start_server"]

log = logging.getLogger(__name__)

_OPEN = State.OPEN


class WsConn(Protocol):
    """One WebSocket connection as the gateway uses it."""

    @property
    def remote(self) -> str:
        """The peer address, for logs."""
        ...

    async def recv(self) -> bytes | str:
        """The next message; raises :class:`ConnectionClosed` when the socket is gone."""
        ...

    def write(self, frame: bytes) -> None:
        """Queue one binary message without waiting for flow control."""
        ...

    async def send(self, frame: bytes) -> None:
        """Send one binary message, waiting while the peer's buffer is full."""
        ...

    def buffered(self) -> int:
        """Bytes written but not yet accepted by the kernel."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection."""
        ...


class WebsocketsConn:
    """:class:`WsConn` over a ``websockets`` server connection."""

    __slots__ = ("_c", "_p")

    def __init__(self, conn: ServerConnection) -> None:
        self._c = conn
        self._p = conn.protocol

    @property
    def remote(self) -> str:
        """The peer address, ``host:port``."""
        address = self._c.remote_address
        if isinstance(address, tuple) and len(address) >= 2:
            return f"{address[0]}:{address[1]}"
        return str(address)

    async def recv(self) -> bytes | str:
        """The next message."""
        return await self._c.recv()

    def write(self, frame: bytes) -> None:
        """Write without flow control: what ``websockets.broadcast`` does for one connection
        (skipped unless open; a failure is logged, not raised), minus its per-call setup."""
        conn = self._c
        if self._p.state is not _OPEN or conn.send_in_progress is not None:
            return
        try:
            self._p.send_binary(frame)
            conn.send_data()
        except Exception as exc:
            log.warning("skipped write: %s", exc)

    async def send(self, frame: bytes) -> None:
        """Write and wait for the buffer to drain below the high-water mark."""
        await self._c.send(frame)

    def buffered(self) -> int:
        """Size of the transport's write buffer."""
        transport = self._c.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait for it (bounded by the library)."""
        await self._c.close(code, reason)


async def start_server(
    handler: Callable[[WsConn], Awaitable[None]], host: str, port: int, max_size: int
) -> Server:
    """Listen on ``host:port`` and run ``handler`` for each connection."""

    async def _handle(conn: ServerConnection) -> None:
        await handler(WebsocketsConn(conn))

    # WuKongIM clients never use compression, and WebSocket-level pings are not needed: the
    # gateway has its own idle timeout fed by the SDK's PING packets (spec §3).
    return await serve(
        _handle,
        host,
        port,
        max_size=max_size,
        compression=None,
        ping_interval=None,
        max_queue=32,
        close_timeout=2,
    )

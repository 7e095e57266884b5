"""The plain TCP transport of the gateway: WuKongIM's native framing (iOS, Android, Flutter SDKs).

Over TCP the packets follow each other on the byte stream, each framed by its own header and
variable-length size (spec §1.2); the connection's incremental decoder takes the stream cut
anywhere, so the bytes of every read go to the handler as they are. There is no transport
handshake: admission sees the remote address only, and closing means flushing what is
buffered and closing the socket (the close code and reason exist for WebSocket only).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from magpie.gateway.wire import Accept, Admission, Handshake, WireHandler

__all__ = ["TcpWire", "start_tcp_server"]

log = logging.getLogger(__name__)

#: The same write watermarks as the WebSocket transport.
WRITE_HIGH_WATER = 64 * 1024
WRITE_LOW_WATER = 16 * 1024


class _Server:
    """What every connection of one listening socket shares."""

    __slots__ = ("accept", "admission")

    def __init__(self, accept: Accept, admission: Admission) -> None:
        self.accept = accept
        self.admission = admission


class TcpWire(asyncio.Protocol):
    """One TCP connection: the asyncio protocol and the gateway's :class:`Wire`."""

    __slots__ = ("_closing", "_handler", "_handshake", "_lost", "_server", "_t")

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._t: asyncio.Transport | None = None
        self._handler: WireHandler | None = None
        self._handshake: Handshake | None = None
        self._closing = False
        self._lost: asyncio.Future[None] | None = None

    # asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server's transport (uvloop's TCPTransport does not subclass asyncio's).
        transport = cast(asyncio.Transport, transport)
        self._t = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        peer: Any = transport.get_extra_info("peername") or ("", 0)
        handshake = Handshake("tcp", str(peer[0]), int(peer[1]))
        refusal = self._server.admission.admit(handshake)
        if refusal is not None:
            log.info("refused %s: %s", handshake.remote, refusal.reason)
            self.close(refusal.code, refusal.reason)
            return
        self._handshake = handshake
        self._handler = self._server.accept(self)

    def data_received(self, data: bytes) -> None:
        handler = self._handler
        if handler is not None and not self._closing:
            handler.on_data(data)

    def eof_received(self) -> bool:
        return False  # the peer is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.on_lost()
        handshake, self._handshake = self._handshake, None
        if handshake is not None:
            self._server.admission.release(handshake)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._t = None

    def pause_writing(self) -> None:
        """The session notices through :meth:`buffered` and queues."""

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.on_writable()

    # Wire ---------------------------------------------------------------------------------

    @property
    def remote(self) -> str:
        """The peer address."""
        return self._handshake.remote if self._handshake is not None else "?"

    @property
    def handshake(self) -> Handshake | None:
        """What the connection was admitted with."""
        return self._handshake

    def write(self, frame: bytes) -> None:
        """Bytes onto the stream (the transport buffers what the kernel refuses)."""
        if not self._closing and self._t is not None:
            self._t.write(frame)

    def buffered(self) -> int:
        """Size of the transport's write buffer."""
        return 0 if self._t is None else self._t.get_write_buffer_size()

    def pause_reading(self) -> None:
        """Stop reading from the socket."""
        if self._t is not None and not self._closing:
            self._t.pause_reading()

    def resume_reading(self) -> None:
        """Read again."""
        if self._t is not None and not self._closing:
            self._t.resume_reading()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Flush what is buffered, then close the socket."""
        if self._closing or self._t is None:
            return
        self._closing = True
        self._t.close()

    async def wait_closed(self) -> None:
        """Until the socket is gone."""
        if self._t is None:
            return
        if self._lost is None:
            self._lost = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._lost)


async def start_tcp_server(
    accept: Accept, admission: Admission, host: str, port: int, *, reuse_port: bool = False
) -> asyncio.Server:
    """Listen on ``host:port``; ``accept`` gets every admitted connection's :class:`Wire`
    (``reuse_port``: ``SO_REUSEPORT``, as for the WebSocket listener)."""
    server = _Server(accept, admission)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: TcpWire(server), host, port, reuse_port=reuse_port or None
    )

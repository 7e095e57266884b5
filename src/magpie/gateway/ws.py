"""The WebSocket transport of the gateway, on picows (callback API, no coroutine per frame).

The gateway sees only :class:`~magpie.gateway.wire.Wire` and
:class:`~magpie.gateway.wire.WireHandler`; the library (picows, chosen by measurement in
``docs/architecture.md``) is confined to this file. A binary frame's payload — whole message or
fragment: the WuKongIM decoder takes any cut — goes to the handler synchronously from the
read callback. A text message is not WuKongIM (:meth:`WireHandler.on_invalid`). Closing is the
RFC 6455 handshake: our close frame, then the socket is dropped when the peer answers or after
``close_timeout``; a peer's close frame is answered and the socket dropped at once. PING frames
are answered by picows; WuKongIM's own PING packets keep connections alive (spec §3).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

from magpie.gateway.wire import Accept, Admission, Handshake, WireHandler

__all__ = ["WsWire", "start_ws_server"]

log = logging.getLogger(__name__)

_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_TEXT = WSMsgType.TEXT
_CLOSE = WSMsgType.CLOSE
#: picows's own per-connection lines ("New connection accepted", "Disconnected") are INFO;
#: the gateway logs connections itself, so picows speaks only from WARNING up by default.
_LIBRARY_LOGGER = "magpie.gateway.picows"
#: Initial read buffer per connection (picows's default is 16 KiB): idle connections are the
#: common case of an IM server, and a WuKongIM packet from a client is small (a SEND of a
#: short text is ~350 bytes); the buffer doubles on demand for larger ones.
READ_BUFFER_INIT = 2048
#: Above this many buffered bytes the transport asks us to stop writing; the session's own
#: bounded queue takes over until it drains below the low-water mark.
WRITE_HIGH_WATER = 64 * 1024
WRITE_LOW_WATER = 16 * 1024


class _Server:
    """What every connection of one listening socket shares."""

    __slots__ = ("accept", "admission", "close_timeout", "loop")

    def __init__(
        self,
        accept: Accept,
        admission: Admission,
        close_timeout: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.accept = accept
        self.admission = admission
        self.close_timeout = close_timeout
        self.loop = loop


class WsWire(WSListener):
    """One WebSocket connection: picows's listener and the gateway's :class:`Wire`."""

    __slots__ = (
        "_buffered",
        "_closer",
        "_closing",
        "_handler",
        "_handshake",
        "_send",
        "_server",
        "_t",
        "_text",
    )

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._t: WSTransport | None = None
        self._handler: WireHandler | None = None
        self._handshake: Handshake | None = None
        self._closing = False
        self._text = False  # inside a fragmented text message
        self._closer: asyncio.TimerHandle | None = None
        # The transport's methods on the write path, bound once (per frame they are looked
        # up through two objects otherwise); no-ops until connected.
        self._send: Callable[[WSMsgType, bytes], None] = _ignore
        self._buffered: Callable[[], int] = _nothing_buffered

    # picows callbacks ---------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._t = transport
        under = transport.underlying_transport
        under.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        self._send = transport.send
        self._buffered = under.get_write_buffer_size
        handshake = _handshake(transport)
        refusal = self._server.admission.admit(handshake)
        if refusal is not None:
            log.info("refused %s: %s", handshake.remote, refusal.reason)
            self.close(refusal.code, refusal.reason)
            return
        self._handshake = handshake
        self._handler = self._server.accept(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        handler = self._handler
        if handler is None or self._closing:
            if frame.msg_type == _CLOSE:
                self._peer_closed(transport, frame)
            return  # refused, or closing: what the peer still sends is dropped
        kind = frame.msg_type
        if kind is _BINARY or (kind is _CONTINUATION and not self._text):
            handler.on_data(frame.get_payload_as_bytes())
        elif kind is _TEXT:
            self._text = not frame.fin
            handler.on_invalid("WuKongIM packets travel in binary WebSocket messages")
        elif kind is _CONTINUATION:
            self._text = not frame.fin
        elif kind is _CLOSE:
            self._peer_closed(transport, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._closing = True
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.on_lost()
        handshake, self._handshake = self._handshake, None
        if handshake is not None:
            self._server.admission.release(handshake)

    def pause_writing(self) -> None:
        """The session notices through :meth:`buffered` and queues."""

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.on_writable()

    def _peer_closed(self, transport: WSTransport, frame: WSFrame) -> None:
        if not transport.is_close_frame_sent:
            transport.send_close(frame.get_close_code())
        self._closing = True
        transport.disconnect()

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
        """One binary message, written now (the transport buffers what the kernel refuses)."""
        if not self._closing:
            self._send(_BINARY, frame)

    def buffered(self) -> int:
        """Size of the transport's write buffer."""
        return self._buffered()

    def pause_reading(self) -> None:
        """Stop reading from the socket."""
        if self._t is not None and not self._closing:
            self._t.underlying_transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again."""
        if self._t is not None and not self._closing:
            self._t.underlying_transport.resume_reading()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send our close frame; the socket goes when the peer answers or after the timeout."""
        t = self._t
        if self._closing or t is None:
            return
        self._closing = True
        if not t.is_close_frame_sent:
            t.send_close(_close_code(code), reason.encode()[:123])
        self._closer = self._server.loop.call_later(self._server.close_timeout, t.disconnect)

    async def wait_closed(self) -> None:
        """Until the socket is gone."""
        if self._t is not None:
            await self._t.wait_disconnected()


def _ignore(kind: WSMsgType, frame: bytes) -> None:
    """Writing before the connection is up: nothing to write to."""


def _nothing_buffered() -> int:
    return 0


def _close_code(code: int) -> WSCloseCode:
    try:
        return WSCloseCode(code)
    except ValueError:
        return WSCloseCode.POLICY_VIOLATION


def _handshake(transport: WSTransport) -> Handshake:
    peer: Any = transport.underlying_transport.get_extra_info("peername") or ("", 0)
    request: WSUpgradeRequest = transport.request
    return Handshake(
        transport="ws",
        remote_host=str(peer[0]),
        remote_port=int(peer[1]),
        path=request.path.decode("latin-1"),
        headers=request.headers,  # case-insensitive already; held by picows anyway
    )


async def start_ws_server(
    accept: Accept,
    admission: Admission,
    host: str,
    port: int,
    *,
    max_frame_size: int,
    handshake_timeout: float,
    close_timeout: float = 2.0,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Listen on ``host:port``; ``accept`` gets every admitted connection's :class:`Wire`.
    ``reuse_port``: share the port with other processes (``SO_REUSEPORT``; the kernel spreads
    new connections over them)."""
    library_log = logging.getLogger(_LIBRARY_LOGGER)
    if library_log.level == logging.NOTSET:
        library_log.setLevel(logging.WARNING)
    server = _Server(accept, admission, close_timeout, asyncio.get_running_loop())

    def listener(_request: WSUpgradeRequest) -> WsWire:
        return WsWire(server)

    return await ws_create_server(
        listener,
        host,
        port,
        # A LoggerAdapter, not a Logger: picows then keeps no child logger per connection.
        logger_name=logging.LoggerAdapter(library_log, {}),
        websocket_handshake_timeout=handshake_timeout,
        enable_auto_ping=False,  # the gateway's idle timeout is fed by WuKongIM PINGs
        enable_auto_pong=True,
        max_frame_size=max_frame_size,
        read_buffer_init_size=READ_BUFFER_INIT,
        # uvloop's own TCP transport, not aiofastnet's: ~5 KB less per idle connection and no
        # measurable CPU difference (docs/architecture.md, "Choice of WebSocket library").
        use_aiofastnet=False,
        reuse_port=reuse_port or None,
    )

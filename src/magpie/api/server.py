"""The HTTP server of a node: uvicorn's httptools protocol (llhttp, in C) on the node's uvloop
event loop, with the read deadlines, head size cap and connection caps uvicorn lacks.

uvicorn closes an idle keep-alive connection, but a socket that sends nothing, half a request
head, or a body shorter than it declared is kept forever — a few thousand of them exhaust the
process's file descriptors (and the WebSocket gateway shares the process) — and its httptools
protocol reads a request head of any size. So each connection runs a small state machine over
the parser's callbacks:

==========  ===========================================  ====================================
phase       from … until …                               deadline
==========  ===========================================  ====================================
``head``    the server starts waiting (accept, or the    ``http_header_timeout`` (a dripped
            previous response sent; a pipelined request  head does not extend it)
            that begins) … the head is complete
``body``    the head is complete … the whole body read   ``http_body_timeout``
(none)      the request read … its response sent         —
==========  ===========================================  ====================================

A missed deadline aborts the connection (its descriptor is free at once). A request head (URL
and header lines) above :data:`MAX_HEAD_BYTES` is answered ``400`` and the connection closed,
as h11 does above its 16 KiB. A response the client does not read stalls the transport's
writes; after ``http_body_timeout`` of stall the connection is aborted too. Over a connection
cap (total, or per client address; connections of a trusted proxy count only in the total) a
new socket gets ``503`` and is closed at once. The node's ASGI app is served with
``proxy_headers`` off: the client address behind a proxy is resolved by
:mod:`magpie.api.guard` with the node's own trusted-proxy list.

httptools rather than h11 (uvicorn's pure-Python parser) by measurement: ``python -m bench api``
(docs/architecture.md, "Performance").
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from magpie.errors import StartupError
from magpie.guard import Defences, Over, address_key

__all__ = ["MAX_HEAD_BYTES", "HttpServer", "HttpTimeouts"]

#: The most bytes of URL and header names and values one request head may have (h11's
#: default limit, which uvicorn's h11 protocol applied before).
MAX_HEAD_BYTES = 16 * 1024


def _raw_response(status: str, code: str, msg: str, extra: str = "") -> bytes:
    """A complete ``connection: close`` JSON answer, written before the request is read."""
    body = json.dumps({"status": int(status[:3]), "code": code, "msg": msg}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


#: The answer to a connection over a cap (it is closed right after).
_BUSY = _raw_response(
    "503 Service Unavailable", "unavailable", "too many connections", "retry-after: 1\r\n"
)
_NO_UPGRADE = _raw_response(
    "400 Bad Request", "bad_request", "WebSocket is served on the gateway port"
)


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    """Seconds: request head, request body (and a stalled response), idle keep-alive."""

    header: float
    body: float
    keepalive: float


class _Phase(enum.Enum):
    HEAD = "head"
    BODY = "body"


class HeadTooLarge(Exception):
    """Raised in a parser callback: httptools stops, uvicorn answers 400 and closes."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read deadlines, a head size cap and connection caps
    (see the module)."""

    defences: ClassVar[Defences]
    timeouts: ClassVar[HttpTimeouts]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admitted = False
        self._gate_key: str | None = None
        self._phase: _Phase | None = None
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = _peer_host(transport)
        key = None if self.defences.proxies.trusts(peer) else address_key(peer)
        over = self.defences.http_gate.enter(key)
        if over is not None:
            self.defences.refused("http", "conn_total" if over is Over.TOTAL else "conn_per_ip")
            transport.write(_BUSY)
            transport.close()
            return
        self._admitted = True
        self._gate_key = key
        super().connection_made(transport)
        self._enter(_Phase.HEAD)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self.defences.http_gate.leave(self._gate_key)
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            super().data_received(data)

    # parser callbacks: the phase follows the request being read

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._enter(_Phase.HEAD)

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._enter(_Phase.BODY)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._enter(None)

    def on_response_complete(self) -> None:
        waiting = bool(self.pipeline)  # a pipelined request read already starts now
        super().on_response_complete()
        if self._phase is None and not waiting:
            self._enter(_Phase.HEAD)

    def handle_websocket_upgrade(self) -> None:
        """No WebSocket on the HTTP port (the gateway has its own)."""
        self.transport.write(_NO_UPGRADE)
        self.transport.close()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self.loop.call_later(self.timeouts.body, self._expire, "write")

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self.defences.refused("http", "head_size")
            raise HeadTooLarge(f"request head above {MAX_HEAD_BYTES} bytes")

    def _enter(self, phase: _Phase | None) -> None:
        """Arm the deadline of ``phase`` (when it changed; a dripped head keeps its own)."""
        if phase is self._phase:
            return
        self._phase = phase
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if phase is not None:
            seconds = self.timeouts.header if phase is _Phase.HEAD else self.timeouts.body
            self._deadline = self.loop.call_later(seconds, self._expire, phase.value)

    def _expire(self, phase: str) -> None:
        if phase == "write":
            self._stall = None
        else:
            self._deadline = None
        if self.transport is not None and not self.transport.is_closing():
            self.defences.timed_out(phase)
            self.transport.abort()

    def _disarm(self) -> None:
        for handle in (self._deadline, self._stall):
            if handle is not None:
                handle.cancel()
        self._deadline = self._stall = None


def _peer_host(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


def _protocol_class(defences: Defences, timeouts: HttpTimeouts) -> type[GuardedHttpProtocol]:
    """A protocol class bound to this node's defences (uvicorn instantiates the class)."""

    class NodeHttpProtocol(GuardedHttpProtocol):
        pass

    NodeHttpProtocol.defences = defences
    NodeHttpProtocol.timeouts = timeouts
    return NodeHttpProtocol


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a Magpie node: the node owns SIGTERM/SIGINT, not uvicorn, and a stop
    request takes effect at once instead of at uvicorn's next 0.1 s tick."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    def request_exit(self) -> None:
        """Begin the graceful shutdown now."""
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        """uvicorn's tick loop (it refreshes the Date header), woken early by a stop request."""
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's graceful shutdown; with no connection or request left to drain, its fixed
        0.1 s grace pause is skipped (lifespan is off, so closing the listeners is all)."""
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or ():
            sock.close()
        for server in self.servers:
            await server.wait_closed()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """One HTTP listener of the node serving an ASGI app."""

    def __init__(
        self,
        app: object,
        listener: socket.socket,
        defences: Defences,
        timeouts: HttpTimeouts,
    ) -> None:
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            http=_protocol_class(defences, timeouts),
            # uvicorn logs every malformed request at WARNING; that is a log anybody could
            # fill. Refusals are counted in the metrics instead.
            log_level="error",
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=cast(int, timeouts.keepalive),
        )
        self._server = _EmbeddedServer(config)
        self._listener = listener
        self._task: asyncio.Task[None] | None = None
        self.port: int = listener.getsockname()[1]

    async def start(self) -> None:
        """Serve on the listener."""
        server = self._server
        self._task = asyncio.get_running_loop().create_task(server.serve([self._listener]))
        while not server.started:
            if self._task.done():
                self._listener.close()
                await self._task
                raise StartupError("the HTTP API did not start", "run with --debug to see why")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop accepting, finish the requests in progress, close the connections."""
        if self._task is not None:
            self._server.request_exit()
            await self._task
            self._task = None

"""The HTTP server of a node: uvicorn (h11) inside the node's event loop, with the read
timeouts and connection caps uvicorn lacks.

uvicorn closes an idle keep-alive connection, but a socket that sends nothing, half a request
head, or a body shorter than it declared is kept forever — a few thousand of them exhaust the
process's file descriptors (and the WebSocket gateway shares the process). So each connection
runs a small state machine over h11's view of the client (``their_state``):

==========  ======================================  =========================================
phase       h11 ``their_state``                      deadline
==========  ======================================  =========================================
``head``    ``IDLE`` (waiting for a request head)   ``http_header_timeout`` from the moment
                                                     the server starts waiting (accept, or
                                                     the previous response sent)
``body``    ``SEND_BODY``                           ``http_body_timeout`` after the head
(none)      ``DONE``/``MUST_CLOSE`` (app working)   —
==========  ======================================  =========================================

A missed deadline aborts the connection (its descriptor is free at once). A response the client
does not read stalls the transport's writes; after ``http_body_timeout`` of stall the
connection is aborted too. Over a connection cap (total, or per client address; connections
of a trusted proxy count only in the total) a new socket gets ``503`` and is closed at once.
The node's ASGI app is served with ``proxy_headers`` off: the client address behind a proxy is
resolved by :mod:`magpie.api.guard` with the node's own trusted-proxy list.
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

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from magpie.errors import StartupError
from magpie.guard import Defences, Over, address_key

__all__ = ["HttpServer", "HttpTimeouts"]


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


#: The phases with a read deadline, by h11's state of the client.
_PHASES: dict[object, _Phase] = {
    h11.IDLE: _Phase.HEAD,
    h11.SEND_BODY: _Phase.BODY,
}


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read deadlines and connection caps (see the module)."""

    defences: ClassVar[Defences]
    timeouts: ClassVar[HttpTimeouts]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admitted = False
        self._gate_key: str | None = None
        self._phase: _Phase | None = None
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
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self.defences.http_gate.leave(self._gate_key)
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
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

    def _watch(self) -> None:
        """Arm the deadline of the phase h11 says the client is in (when it changed)."""
        state = self.conn.their_state
        phase = (
            _Phase.HEAD if state is h11.IDLE else _Phase.BODY if state is h11.SEND_BODY else None
        )
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


def _protocol_class(defences: Defences, timeouts: HttpTimeouts) -> type[GuardedH11Protocol]:
    """A protocol class bound to this node's defences (uvicorn instantiates the class)."""

    class NodeH11Protocol(GuardedH11Protocol):
        pass

    NodeH11Protocol.defences = defences
    NodeH11Protocol.timeouts = timeouts
    return NodeH11Protocol


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

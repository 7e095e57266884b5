"""What the gateway needs of a client connection, whatever carries its bytes.

Two transports carry the same WuKongIM packets: WebSocket (:mod:`magpie.gateway.ws`, one or
more packets per binary message) and plain TCP (:mod:`magpie.gateway.tcp`, the protocol's own
length prefix frames them; the incremental decoder takes any cut of the stream). Both are
*callback-driven*: bytes are handed to the connection's :class:`WireHandler` synchronously as
they are read, so the gateway decides per packet whether it must leave the callback (only to
await the store) instead of waking a coroutine per frame.

Before a connection carries any WuKongIM byte it passes the :class:`Admission` hook with
what is known of it (:class:`Handshake`: transport, remote address, and for WebSocket the
request path and headers, e.g. ``Origin``). A :class:`Refusal` closes it at once (WebSocket:
right after the upgrade — the library picks a listener from the request before it knows the
peer — with a close frame carrying the refusal's code and reason; TCP: the socket is closed).
Every admitted connection is released exactly once when it is gone, so the hook can count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ADMIT_ALL",
    "Accept",
    "Admission",
    "Handshake",
    "Refusal",
    "Wire",
    "WireHandler",
]


@dataclass(frozen=True, slots=True)
class Handshake:
    """A new client connection as the admission hook sees it."""

    #: ``"ws"`` or ``"tcp"``.
    transport: str
    #: The peer's IP address as the socket reports it (a proxy's, behind one).
    remote_host: str
    remote_port: int
    #: The WebSocket request path (``""`` over TCP).
    path: str = ""
    #: The WebSocket request headers, names in lower case (empty over TCP).
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str | None:
        """The ``Origin`` header (browsers send it; native clients and TCP do not)."""
        return self.headers.get("origin")

    @property
    def remote(self) -> str:
        """``host:port`` for logs."""
        return f"{self.remote_host}:{self.remote_port}"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection is not admitted: a WebSocket close code (1008 policy violation,
    1013 try again later) and a short reason for the peer and the log."""

    code: int
    reason: str


class Admission(Protocol):
    """Decides which connections may speak WuKongIM (caps, Origin allow-list)."""

    def admit(self, handshake: Handshake) -> Refusal | None:
        """``None`` to accept, or why not. Called once per connection, before any packet."""
        ...

    def release(self, handshake: Handshake) -> None:
        """An admitted connection is gone (called exactly once per admitted connection)."""
        ...


class _AdmitAll:
    """The admission that refuses nobody."""

    __slots__ = ()

    def admit(self, handshake: Handshake) -> Refusal | None:
        return None

    def release(self, handshake: Handshake) -> None:
        return None


#: Admits every connection (the default until caps or an Origin allow-list are configured).
ADMIT_ALL: Admission = _AdmitAll()


class Wire(Protocol):
    """One client connection's byte pipe, as the gateway uses it."""

    @property
    def remote(self) -> str:
        """The peer address, for logs."""
        ...

    @property
    def handshake(self) -> Handshake | None:
        """What the connection was admitted with (``None`` once it is gone)."""
        ...

    def write(self, frame: bytes) -> None:
        """Queue bytes without waiting (one packet per WebSocket message; raw over TCP)."""
        ...

    def buffered(self) -> int:
        """Bytes written but not yet accepted by the kernel."""
        ...

    def pause_reading(self) -> None:
        """Stop reading until :meth:`resume_reading` (back-pressure on a busy client)."""
        ...

    def resume_reading(self) -> None:
        """Read again."""
        ...

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start closing (WebSocket: closing handshake bounded by a timeout; TCP: flush and
        close). Idempotent; :meth:`WireHandler.on_lost` follows once the socket is gone."""
        ...

    async def wait_closed(self) -> None:
        """Return once the socket is gone."""
        ...


class WireHandler(Protocol):
    """The gateway's side of one connection; every method is called on the event loop."""

    def on_data(self, data: bytes) -> None:
        """Bytes of the WuKongIM stream, in order, cut anywhere."""
        ...

    def on_invalid(self, reason: str) -> None:
        """The transport got something that is not WuKongIM bytes (a WebSocket text
        message); the connection should be closed as a protocol violation."""
        ...

    def on_writable(self) -> None:
        """The socket's write buffer drained below its low-water mark."""
        ...

    def on_lost(self) -> None:
        """The socket is gone (called once, also after :meth:`Wire.close`)."""
        ...


#: Called once per admitted connection: returns the handler that gets its events.
Accept = Callable[[Wire], WireHandler]

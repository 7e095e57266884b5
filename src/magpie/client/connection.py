"""The connection loop: dial, handshake, heartbeat, read, and redial with backoff.

One :class:`Connector` keeps one user's link to the server up for as long as the client is
open. Each *link* is a :class:`~magpie.client.raw.RawClient` (handshake, encryption, msgKey,
one packet per WebSocket message); when it dies the connector waits a jittered exponential
backoff and dials a new one. The state moves only through
:data:`~magpie.client.state.CONNECTION_TRANSITIONS`; every change is published.

While a link is up, four tasks run and the first to finish ends the link:

* *inbound*: RECVs in batches of up to ``recv_batch`` go to the handler, which caches them and
  then RECVACKs them;
* *control*: PONGs feed the heartbeat; a DISCONNECT (kick) ends the link for good;
* *heartbeat*: a PING every ``heartbeat_interval``; no PONG within ``pong_timeout`` means the
  link is dead (a half-open TCP connection sends nothing, so only this notices it);
* the socket closing.

Which CONNACK refusals stop the client (spec §3: ConnectFail, no reconnect): credentials
(2 auth_fail, 14 query_token_error, 21 client_key_is_empty) and bans (19). Any other reason
(15 system_error, 22 rate_limit …) is treated as transient and retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from websockets.exceptions import WebSocketException

from magpie.client.errors import ClientClosed, ConnectRefused
from magpie.client.options import ClientOptions
from magpie.client.raw import ConnectRefused as RawRefused
from magpie.client.raw import RawClient, ReceivedMessage
from magpie.client.state import (
    CONNECTION_TRANSITIONS,
    ConnectionState,
    ConnectionTrigger,
    StateChange,
    StateMachine,
    backoff_delay,
)
from magpie.errors import ProtocolError
from magpie.protocol.connection import State
from magpie.protocol.packets import Disconnect, Ping, Pong, ReasonCode

__all__ = ["FATAL_REASONS", "Connector", "LinkHandler"]

log = logging.getLogger(__name__)

#: CONNACK reasons after which the client stops trying (module docstring).
FATAL_REASONS = frozenset(
    {
        ReasonCode.AUTH_FAIL,
        ReasonCode.QUERY_TOKEN_ERROR,
        ReasonCode.CLIENT_KEY_IS_EMPTY,
        ReasonCode.BAN,
    }
)
_DIAL_ERRORS = (OSError, TimeoutError, WebSocketException, ProtocolError)
_CLOSE_TIMEOUT = 2.0

ConnectionChange = StateChange[ConnectionState, ConnectionTrigger]


class LinkHandler(Protocol):
    """What the connector calls while links come and go (the client)."""

    async def link_up(self, link: RawClient) -> None:
        """A link completed its handshake (resend, sync)."""

    async def received(self, link: RawClient, batch: Sequence[ReceivedMessage]) -> None:
        """RECVs arrived on ``link``: cache them, then RECVACK them."""

    def link_down(self) -> None:
        """The link is gone."""

    def state_changed(self, change: ConnectionChange) -> None:
        """The connection state changed."""


class Connector:
    """Keeps one user's connection up (see the module docstring)."""

    def __init__(
        self,
        url: str,
        uid: str,
        token: str,
        device_flag: int,
        options: ClientOptions,
        handler: LinkHandler,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._url, self._uid, self._token, self._device_flag = url, uid, token, device_flag
        self._options = options
        self._handler = handler
        self._rand = rand
        self._machine: StateMachine[ConnectionState, ConnectionTrigger] = StateMachine(
            CONNECTION_TRANSITIONS, ConnectionState.IDLE
        )
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._link: RawClient | None = None
        self._changed = asyncio.Event()
        #: Set when the client stopped for good (refused or kicked): the reason.
        self.failure: ClientClosed | ConnectRefused | None = None

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        return self._machine.state

    @property
    def link(self) -> RawClient | None:
        """The current link while CONNECTED."""
        return self._link

    def start(self) -> None:
        """Start connecting in the background."""
        self._fire(ConnectionTrigger.START)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop: close the link and stop redialling."""
        if not self._machine.can(ConnectionTrigger.CLOSE):
            return
        self._closing = True
        while self._task is not None and not self._task.done():
            # Repeated: a cancellation can be lost when it races a completing await.
            self._task.cancel()
            await asyncio.wait([self._task], timeout=0.1)
        self._fire(ConnectionTrigger.CLOSE)

    async def wait_connected(self) -> None:
        """Wait until CONNECTED; :class:`ClientClosed` if the client stopped for good."""
        while self.state is not ConnectionState.CONNECTED:
            if self.state.terminal:
                raise self._stopped()
            self._changed.clear()
            await self._changed.wait()

    def _stopped(self) -> ClientClosed:
        detail = f": {self.failure.message}" if self.failure else ""
        return ClientClosed(f"the client is {self.state.value}{detail}", self.state.value)

    def _fire(
        self,
        trigger: ConnectionTrigger,
        *,
        reason: int | None = None,
        delay: float | None = None,
        detail: str = "",
    ) -> None:
        change = self._machine.fire(trigger, reason=reason, delay=delay, detail=detail)
        log.debug("connection %s: %s -> %s", self._uid, change.old.name, change.new.name)
        self._changed.set()
        self._handler.state_changed(change)

    # --- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            link = await self._dial()
            if link is None:
                if self.state.terminal:
                    return
                trigger = ConnectionTrigger.DIAL_FAILED
            else:
                attempt = 0
                kick = await self._serve(link)
                if kick is not None:
                    self.failure = ClientClosed(f"kicked: {kick.reason}", "kicked")
                    self._fire(ConnectionTrigger.KICK, reason=kick.reason_code, detail=kick.reason)
                    return
                trigger = ConnectionTrigger.LINK_LOST
            delay = self._backoff(attempt)
            attempt += 1
            self._fire(trigger, delay=delay)
            await asyncio.sleep(delay)
            if not self._closing:
                self._fire(ConnectionTrigger.RETRY)

    def _backoff(self, attempt: int) -> float:
        o = self._options
        return backoff_delay(
            attempt, o.backoff_initial, o.backoff_max, o.backoff_jitter, self._rand
        )

    async def _dial(self) -> RawClient | None:
        """A link that completed its handshake, or ``None`` (retry later, or refused)."""
        link = RawClient(
            self._url, self._uid, self._token, device_flag=self._device_flag, auto_ack=False
        )
        timeout = self._options.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                await link.connect(timeout)
        except RawRefused as exc:
            await _drop(link)
            self._refused(exc.reason)
            return None
        except _DIAL_ERRORS as exc:
            log.debug("dial %s failed: %s", self._url, exc)
            await _drop(link)
            return None
        except BaseException:  # cancelled (closing): do not leave a half-open socket
            with contextlib.suppress(Exception):
                link.abort()
            raise
        return link

    def _refused(self, reason: int) -> None:
        if reason not in FATAL_REASONS:
            log.info("CONNECT refused with reason %d; will retry", reason)
            return
        self.failure = ConnectRefused("the server refused the connection", reason)
        self._fire(ConnectionTrigger.REFUSED, reason=reason)

    async def _serve(self, link: RawClient) -> Disconnect | None:
        """Run the link until it ends; returns the DISCONNECT if the server kicked us."""
        self._link = link
        self._fire(ConnectionTrigger.CONNACK_OK)
        pongs = asyncio.Event()
        tasks: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self._inbound(link)),
            asyncio.ensure_future(self._control(link, pongs)),
            asyncio.ensure_future(self._heartbeat(link, pongs)),
            asyncio.ensure_future(link.closed.wait()),
        ]
        try:
            await self._handler.link_up(link)
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._end_link(link, tasks)
        return _kick_of(link, tasks[1])

    async def _end_link(self, link: RawClient, tasks: list[asyncio.Future[Any]]) -> None:
        self._link = None
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.debug("link task ended with %r", result)
        await _drop(link)
        self._handler.link_down()

    async def _inbound(self, link: RawClient) -> None:
        limit = self._options.recv_batch
        while True:
            batch = [await link.messages.get()]
            while len(batch) < limit and not link.messages.empty():
                batch.append(link.messages.get_nowait())
            await self._handler.received(link, batch)

    async def _control(self, link: RawClient, pongs: asyncio.Event) -> Disconnect:
        while True:
            packet = await link.packets.get()
            if isinstance(packet, Pong):
                pongs.set()
            elif isinstance(packet, Disconnect):
                return packet

    async def _heartbeat(self, link: RawClient, pongs: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self._options.heartbeat_interval)
            pongs.clear()
            await link.write(Ping())
            try:
                async with asyncio.timeout(self._options.pong_timeout):
                    await pongs.wait()
            except TimeoutError:
                log.info("no PONG within %.1f s: the link is dead", self._options.pong_timeout)
                return


def _kick_of(link: RawClient, control: asyncio.Future[Any]) -> Disconnect | None:
    """The DISCONNECT that ended ``link``, if one did (it may still be queued when the
    socket's close won the race)."""
    if control.done() and not control.cancelled():
        result = control.exception() or control.result()
        if isinstance(result, Disconnect):
            return result
    while not link.packets.empty():
        packet = link.packets.get_nowait()
        if isinstance(packet, Disconnect):
            return packet
    if link.conn.state is State.CLOSED:
        return Disconnect(ReasonCode.CONNECT_KICK, "")
    return None


async def _drop(link: RawClient) -> None:
    """Close a link, aborting the TCP connection if the close handshake hangs."""
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await link.close()
    except (TimeoutError, *_DIAL_ERRORS):
        with contextlib.suppress(Exception):
            link.abort()

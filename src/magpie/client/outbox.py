"""Sends waiting for their SENDACK, resent on every new link until acknowledged.

A send gets a ``client_msg_no`` (the server's idempotency key, I2) and a ``client_seq``
(what the SENDACK echoes, spec §1.6) once, when it is made. Whenever a link comes up every
pending send is written on it, in ``client_seq`` order, with the *same* ``client_msg_no`` and
``client_seq`` and without the DUP flag — what SDK 1.0.4 does (spec §3) — so a SEND whose
SENDACK was lost with the old link is stored once: the server answers the resend with the
original message_id and seq.

A send leaves the outbox when its SENDACK arrives (success or refusal), when its caller gives
up (timeout, cancellation), or when the client closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from websockets.exceptions import WebSocketException

from magpie.client.errors import InvalidArgument, SendRefused
from magpie.client.model import Channel, SendResult
from magpie.client.raw import RawClient
from magpie.errors import ProtocolError
from magpie.protocol.packets import ReasonCode, Sendack, Setting

__all__ = ["Outbox", "PendingSend"]

log = logging.getLogger(__name__)

_LINK_ERRORS = (ConnectionError, OSError, WebSocketException, ProtocolError)
_MAX_CLIENT_SEQ = 2**32 - 1  # a u32 on the wire (spec §1.6)


@dataclass(eq=False)
class PendingSend:
    """One send in flight."""

    channel: Channel
    payload: bytes
    client_msg_no: str
    client_seq: int
    future: asyncio.Future[SendResult]
    written_on: int = 0  # number of the last link it was written on (0: none)
    setting: Setting = Setting.NONE  # e.g. RECEIPT: count who reads it


class Outbox:
    """The pending sends of one client. ``on_stored(send, ack)`` runs after a successful
    SENDACK and before the send's caller is answered (the client caches the message)."""

    def __init__(self, on_stored: Callable[[PendingSend, Sendack], Awaitable[None]]) -> None:
        self._on_stored = on_stored
        self._pending: dict[str, PendingSend] = {}
        self._client_seq = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self,
        channel: Channel,
        payload: bytes,
        client_msg_no: str,
        setting: Setting = Setting.NONE,
    ) -> PendingSend:
        """A new pending send (not written yet)."""
        if client_msg_no in self._pending:
            raise InvalidArgument("client_msg_no", "a send with this client_msg_no is pending")
        self._client_seq = self._client_seq % _MAX_CLIENT_SEQ + 1
        future: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        send = PendingSend(
            channel, payload, client_msg_no, self._client_seq, future, setting=setting
        )
        self._pending[client_msg_no] = send
        return send

    def flush(self, link: RawClient, link_no: int) -> None:
        """Write every pending send not yet written on ``link`` (the client's ``link_no``-th
        link, numbered from 1), oldest first."""
        for send in sorted(self._pending.values(), key=lambda s: s.client_seq):
            if send.written_on != link_no:
                send.written_on = link_no
                task = asyncio.get_running_loop().create_task(self._attempt(link, send))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def forget(self, send: PendingSend) -> None:
        """Stop tracking ``send`` (its caller gave up)."""
        if self._pending.get(send.client_msg_no) is send:
            del self._pending[send.client_msg_no]
        send.future.cancel()

    def fail_all(self, error: Exception) -> None:
        """Answer every pending send with ``error`` (the client closed or gave up)."""
        for send in list(self._pending.values()):
            if not send.future.done():
                send.future.set_exception(error)
        self._pending.clear()

    async def close(self) -> None:
        """Stop every attempt in progress."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _attempt(self, link: RawClient, send: PendingSend) -> None:
        ch = send.channel
        packet = link.seal(
            ch.channel_id,
            ch.channel_type,
            send.payload,
            send.client_seq,
            send.client_msg_no,
            setting=send.setting,
        )
        try:
            ack = await link.send_sealed(packet)
        except _LINK_ERRORS as exc:  # the link died; the next one resends
            log.debug("send %s interrupted: %r", send.client_msg_no, exc)
            return
        if self._pending.get(send.client_msg_no) is not send:
            return  # its caller gave up meanwhile
        del self._pending[send.client_msg_no]
        await self._answer(send, ack)

    async def _answer(self, send: PendingSend, ack: Sendack) -> None:
        if ack.reason_code != ReasonCode.SUCCESS:
            if not send.future.done():
                send.future.set_exception(SendRefused(ack.reason_code, send.client_msg_no))
            return
        try:
            await self._on_stored(send, ack)
        except Exception:
            log.exception("caching sent message %d failed", ack.message_id)
        result = SendResult(send.channel, ack.message_id, ack.message_seq, send.client_msg_no)
        if not send.future.done():
            send.future.set_result(result)

"""The in-process :class:`~magpie.cards.port.ImPort`: the card service inside a Magpie node.

It lives outside ``magpie.cards`` because it is the one place that knows both sides: the
send flow (:class:`~magpie.core.messaging.Messaging`), the extension service, the store
*interface* and the core's access decisions (membership). ``update`` passes the card
service's pure decision straight to :meth:`ExtService.update
<magpie.ext.service.ExtService.update>`, which runs it inside the store transaction — the
same atomicity a business server gets from ``/message/extra/update`` with compare-and-set,
minus the round trips and retries. Business webhooks go through the ``emit`` callable the
composition root passes (none: dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from magpie.cards.port import ImMessage, Outgoing, Sent
from magpie.core.access import AccessControl
from magpie.core.messaging import Messaging, SendRequest
from magpie.domain.ext import Actor, ExtState, Mutate, OpRecord, UpdateResult
from magpie.errors import BadRequest
from magpie.ext.service import ExtService
from magpie.protocol.packets import Flags, ReasonCode
from magpie.store.interface import Store

__all__ = ["CardSendRefused", "Emit", "InProcessPort"]

#: Raises one business webhook (``event``, JSON-able data); must not block.
Emit = Callable[[str, Mapping[str, Any]], None]


class CardSendRefused(BadRequest):
    """The send flow refused the card message (400, with the WuKongIM reason)."""

    code = "send_refused"


class InProcessPort:
    """:class:`~magpie.cards.port.ImPort` over a node's own services."""

    def __init__(
        self,
        messaging: Messaging,
        ext: ExtService,
        store: Store,
        access: AccessControl,
        emit: Emit | None = None,
    ) -> None:
        self._messaging = messaging
        self._ext = ext
        self._store = store
        self._access = access
        self._emit = emit

    async def send(self, message: Outgoing) -> Sent:
        """Through the send flow as the business API (the card service checked who may)."""
        result = await self._messaging.send(
            SendRequest(
                from_uid=message.from_uid,
                channel_id=message.channel_id,
                channel_type=message.channel_type,
                payload=message.payload,
                client_msg_no=message.client_msg_no,
                flags=Flags.RED_DOT,
                from_api=True,
            )
        )
        if result.reason is not ReasonCode.SUCCESS:
            name = result.reason.name.lower()
            raise CardSendRefused(f"send refused: {name}", reason=int(result.reason))
        return Sent(result.message_id, result.message_seq)

    async def message(self, message_id: int) -> ImMessage | None:
        """A channel-log message (sync-once commands are not)."""
        m = await self._store.get_message(message_id)
        if m is None or m.message_seq <= 0:
            return None
        return ImMessage(
            message_id=m.message_id,
            message_seq=m.message_seq,
            channel_id=m.channel_id,
            channel_type=m.channel_type,
            from_uid=m.from_uid,
            payload=m.payload,
            timestamp=m.timestamp,
        )

    async def extension(self, message_id: int) -> ExtState | None:
        """The message's extension, if any."""
        return await self._ext.get(message_id)

    async def update(
        self,
        message_id: int,
        *,
        mutate: Mutate,
        action_id: str,
        actor: Actor,
        operation: str,
        patch: Mapping[str, Any],
        important: bool,
    ) -> UpdateResult:
        """The extension primitive: ``mutate`` runs inside the store transaction."""
        return await self._ext.update(
            message_id,
            mutate=mutate,
            action_id=action_id,
            actor=actor,
            operation=operation,
            patch=patch,
            important=important,
        )

    async def is_member(self, channel_id: str, channel_type: int, uid: str) -> bool:
        """A subscriber of the channel; a party of a person channel (``a@b``)."""
        return await self._access.is_member(channel_id, channel_type, uid)

    async def ops(self, message_id: int, after_op_id: int, limit: int) -> list[OpRecord]:
        """The operation log."""
        return await self._ext.ops(message_id, after_op_id, limit)

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        """Hand the event to the node's webhook dispatcher (if one runs)."""
        if self._emit is not None:
            self._emit(event, data)

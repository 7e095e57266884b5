"""What the node's events become as business webhooks (spec §6.1).

:class:`NodeWebhooks` turns the node's events into webhook entries on a
:class:`~magpie.api.webhooks.WebhookDispatcher`: after every committed message ``msg.notify``
(and ``msg.offline`` for its recipients without an online master device), on every connect
and disconnect ``user.onlinestatus``, and the events services raise (``card.action``). It
decides nothing about *whether* webhooks run or what calls it: the composition root
(``magpie.app``) builds it when ``webhook_url`` is set and registers its methods with the
send flow, the gateway and the card service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from magpie.api.presence import Presence, offline_uids, onlinestatus_entry
from magpie.api.render import message_resp
from magpie.api.webhooks import WebhookDispatcher
from magpie.protocol.packets import Flags
from magpie.store.interface import StoredMessage

__all__ = ["NodeWebhooks"]


class NodeWebhooks:
    """The node's business webhooks over one dispatcher; ``presence`` is the gateway."""

    def __init__(self, dispatcher: WebhookDispatcher, presence: Presence) -> None:
        self.dispatcher = dispatcher
        self._presence = presence

    async def start(self) -> None:
        """Start delivering."""
        await self.dispatcher.start()

    async def stop(self) -> None:
        """Drain and stop delivering."""
        await self.dispatcher.stop()

    async def after_commit(self, message: StoredMessage, recipients: Sequence[str]) -> None:
        """``msg.notify`` for every stored message; ``msg.offline`` for its recipients with no
        online master device. Online-only (no-persist) messages trigger neither."""
        if message.flags & Flags.NO_PERSIST:
            return
        resp = message_resp(message)
        self.dispatcher.notify(resp)
        to_uids = offline_uids(self._presence, message.from_uid, recipients)
        if to_uids:
            self.dispatcher.offline(resp, to_uids)

    def on_presence(self, uid: str, device_flag: int, online: bool, conn_id: str) -> None:
        """A connection registered (``online``) or left: a ``user.onlinestatus`` entry.
        Synchronous and non-blocking."""
        entry = onlinestatus_entry(self._presence, uid, device_flag, online, conn_id)
        self.dispatcher.online_status(entry)

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        """A business event raised by a service built on the node (``card.action``).
        Synchronous and non-blocking."""
        self.dispatcher.event(event, dict(data))

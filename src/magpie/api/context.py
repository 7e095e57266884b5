"""Everything the HTTP API needs from the node, built by the composition root (``magpie.app``).

:class:`ApiContext` holds the services the routes call and owns the webhook dispatcher's
lifetime: :meth:`ApiContext.start` registers the after-commit hook (``msg.notify``,
``msg.offline``) and, when the gateway reports presence changes, the ``user.onlinestatus``
callback; :meth:`ApiContext.stop` drains and stops the dispatcher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from magpie.api.presence import Presence, PresenceSource, offline_uids, onlinestatus_entry
from magpie.api.render import message_resp
from magpie.api.webhooks import WebhookConfig, WebhookDispatcher
from magpie.bus.interface import Bus
from magpie.cards.service import CardService
from magpie.config import Settings
from magpie.core.messaging import Messaging
from magpie.errors import StoreError
from magpie.ext.service import ExtService
from magpie.metrics import Metrics
from magpie.protocol.packets import Flags
from magpie.store.interface import Store, StoredMessage

__all__ = ["ApiContext"]

#: Largest request body accepted (before JSON decoding), unless payloads may be larger.
MAX_BODY_BYTES = 2 * 1024 * 1024


@dataclass
class ApiContext:
    """The node's services as the API sees them; ``ws_addr`` is what ``/route`` returns."""

    settings: Settings
    api_key: str
    store: Store
    bus: Bus
    messaging: Messaging
    gateway: Presence
    metrics: Metrics
    ws_addr: str
    ext: ExtService
    #: The card service (``/cards`` routes and card projections in sync rows); ``None``: off.
    cards: CardService | None = None
    webhooks: WebhookDispatcher | None = field(default=None, init=False)
    started: bool = field(default=False, init=False)

    @property
    def body_limit(self) -> int:
        """Largest request body in bytes: 2 MiB, or room for a max-size base64 payload."""
        return max(MAX_BODY_BYTES, self.settings.max_payload_bytes * 2)

    def is_ready(self) -> bool:
        """The store is open and the gateway listens."""
        try:
            _ = self.store.epoch  # raises StoreError unless the store is open
        except StoreError:
            return False
        return self.started and self.gateway.port > 0

    async def start(self) -> None:
        """Start the webhook dispatcher (when ``webhook_url`` is set) and its hooks."""
        if self.settings.webhook_url:
            self.webhooks = WebhookDispatcher(self._webhook_config(), self.metrics)
            await self.webhooks.start()
            self.messaging.add_after_commit(self._after_commit)
            if isinstance(self.gateway, PresenceSource):
                self.gateway.add_presence_listener(self.on_presence)
        self.started = True

    async def stop(self) -> None:
        """Drain and stop the webhook dispatcher."""
        self.started = False
        if self.webhooks is not None:
            await self.webhooks.stop()
            self.webhooks = None

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        """Raise a business webhook for a service built on the node (``card.action``);
        dropped when webhooks are off. Synchronous and non-blocking."""
        if self.webhooks is not None:
            self.webhooks.event(event, dict(data))

    def on_presence(self, uid: str, device_flag: int, online: bool, conn_id: str) -> None:
        """Gateway callback after a connection registered (``online``) or left: queues a
        ``user.onlinestatus`` entry. Synchronous and non-blocking."""
        if self.webhooks is not None:
            entry = onlinestatus_entry(self.gateway, uid, device_flag, online, conn_id)
            self.webhooks.online_status(entry)

    def _webhook_config(self) -> WebhookConfig:
        s = self.settings
        secret = (s.webhook_secret or self.api_key).encode()
        return WebhookConfig(
            url=s.webhook_url,
            secret=secret,
            batch_interval=s.webhook_batch_interval,
            attempts=s.webhook_attempts,
        )

    async def _after_commit(self, message: StoredMessage, recipients: Sequence[str]) -> None:
        """``msg.notify`` for every stored message; ``msg.offline`` for its recipients with no
        online master device. Online-only (no-persist) messages trigger neither."""
        hooks = self.webhooks
        if hooks is None or message.flags & Flags.NO_PERSIST:
            return
        resp = message_resp(message)
        hooks.notify(resp)
        to_uids = offline_uids(self.gateway, message.from_uid, recipients)
        if to_uids:
            hooks.offline(resp, to_uids)

"""Everything the HTTP API needs from the node, built by the composition root (``magpie.app``).

:class:`ApiContext` holds the services the routes call, access decisions included
(:class:`~magpie.core.access.AccessControl`). Webhooks are not its business: the composition
root wires them (:mod:`magpie.api.hooks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from magpie.api.presence import Presence
from magpie.bus.interface import Bus
from magpie.cards.service import CardService
from magpie.config import Settings
from magpie.core.access import AccessControl
from magpie.core.messaging import Messaging
from magpie.errors import StoreError
from magpie.ext.service import ExtService
from magpie.metrics import Metrics
from magpie.store.interface import Store

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
    #: Who may do what (shared with the gateway and the send flow).
    access: AccessControl
    #: The card service (``/cards`` routes and card projections in sync rows); ``None``: off.
    cards: CardService | None = None
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
        """Mark the API started (``/ready``)."""
        self.started = True

    async def stop(self) -> None:
        """Mark the API stopped."""
        self.started = False

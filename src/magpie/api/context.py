"""Everything the HTTP API needs from the node, built by the composition root (``magpie.app``).

:class:`ApiContext` holds the services the routes call, access decisions included
(:class:`~magpie.core.access.AccessControl`). Webhooks are not its business: the composition
root wires them (:mod:`magpie.api.hooks`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from magpie.api.history import ReadGate
from magpie.api.presence import Presence
from magpie.bus.interface import Bus
from magpie.cards.service import CardService
from magpie.config import Settings
from magpie.core.access import AccessControl
from magpie.core.conversation import Conversation
from magpie.core.messaging import Messaging
from magpie.core.nodes import Directory
from magpie.errors import StoreError, StoreUnavailable
from magpie.ext.service import ExtService
from magpie.gateway.trace import DEFAULT_TRACE_CAPACITY, DeliveryTrace
from magpie.metrics import Metrics
from magpie.store.interface import Store

__all__ = ["ApiContext"]

#: Seconds ``/ready`` waits for the database's answer.
PING_TIMEOUT = 2.0
#: Largest request body accepted (before JSON decoding), unless payloads may be larger.
MAX_BODY_BYTES = 2 * 1024 * 1024


@dataclass
class ApiContext:
    """The node's services as the API sees them; ``ws_addr`` and ``tcp_addr`` are what
    ``/route`` returns (``tcp_addr`` empty when the node has no TCP listener)."""

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
    #: The conversation features' services (typing, ...; ``docs/conversation.md``).
    conv: Conversation
    #: ``host:port`` of the TCP gateway for ``/route`` (empty: no TCP listener).
    tcp_addr: str = ""
    #: The card service (``/cards`` routes and card projections in sync rows); ``None``: off.
    cards: CardService | None = None
    #: This node's delivery trace (``/admin/messages/{message_id}``).
    trace: DeliveryTrace = field(default_factory=lambda: DeliveryTrace(DEFAULT_TRACE_CAPACITY))
    #: The cluster's live nodes for ``/route``; ``None``: this node only.
    directory: Directory | None = None
    started: bool = field(default=False, init=False)
    #: The bound on history reads at once (``history_max_concurrent*``).
    reads: ReadGate = field(init=False)

    def __post_init__(self) -> None:
        self.reads = ReadGate.of(self.settings, self.metrics.history_refused.inc)

    @property
    def body_limit(self) -> int:
        """Largest request body in bytes: 2 MiB, or room for a max-size base64 payload."""
        return max(MAX_BODY_BYTES, self.settings.max_payload_bytes * 2)

    async def readiness(self) -> dict[str, str]:
        """The state of each dependency (safe to show anybody: no host or detail, which go to
        the log): ``store`` up / unreachable / not open (one round trip, at most
        :data:`PING_TIMEOUT`), ``gateway`` listening / not listening, ``bus`` up / down /
        in-process."""
        states = {"store": "up", "gateway": "listening", "bus": "up"}
        try:
            _ = self.store.epoch  # raises StoreError unless the store is open
            async with asyncio.timeout(PING_TIMEOUT):
                await self.store.ping()
        except StoreUnavailable:
            states["store"] = "unreachable"
        except TimeoutError:
            states["store"] = "unreachable"
        except StoreError:
            states["store"] = "not open"
        if not self.started or self.gateway.port <= 0:
            states["gateway"] = "not listening"
        health = self.bus.health()
        if not health.ok:
            states["bus"] = "down"
        elif health.detail == "in-process":
            states["bus"] = "in-process"
        return states

    async def start(self) -> None:
        """Mark the API started (``/ready``)."""
        self.started = True

    async def stop(self) -> None:
        """Mark the API stopped."""
        self.started = False

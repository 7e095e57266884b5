"""Cross-node fan-out hints. The bus is never the source of truth: the store is.

A node publishes an event after the store has committed; every node (itself included)
delivers it to the connections it holds. The memory bus does this inside one process; a Redis
bus carries the same events between nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from magpie.store.interface import StoredMessage

__all__ = ["Bus", "BusEvent", "Delivery", "Handler", "Kick"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """Deliver ``message`` to the online connections of ``recipients``.

    ``exclude_conn`` is the sending connection (it already shows its own message);
    ``queue_seqs`` maps a recipient to the per-user queue seq of a persisted sync-once
    command, sent as that recipient's ``message_seq``."""

    message: StoredMessage
    recipients: tuple[str, ...]
    exclude_conn: str = ""
    queue_seqs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Kick:
    """Disconnect ``uid``'s connections with ``device_flag`` (all flags when ``None``), except
    ``keep_conn``, sending DISCONNECT(``reason_code``, ``reason``) first."""

    uid: str
    device_flag: int | None
    reason_code: int
    reason: str
    keep_conn: str = ""


BusEvent = Delivery | Kick
Handler = Callable[[BusEvent], None]


class Bus(Protocol):
    """Publish/subscribe of :data:`BusEvent` between nodes."""

    def subscribe(self, handler: Handler) -> None:
        """Call ``handler`` for every event published on any node."""
        ...

    async def publish(self, event: BusEvent) -> None:
        """Send ``event`` to every subscriber (after the store committed)."""
        ...

    async def start(self) -> None:
        """Connect."""
        ...

    async def close(self) -> None:
        """Disconnect."""
        ...

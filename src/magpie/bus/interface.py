"""Cross-node fan-out hints and the presence registry. The bus is never the source of truth:
the store is.

A node publishes an event after the store has committed. The publishing node's own handlers
run at once, in process; every *other* node that holds a connection of a recipient gets the
event too, and no other node does (the memory bus has no other nodes). Which node holds whom
is the **presence registry**: the gateway reports each authenticated connection
(:meth:`Bus.register`) and each departure (:meth:`Bus.unregister`).

Guarantees every backend gives (``tests/bus/test_bus_contract.py`` checks them):

* the publishing node's handlers have seen an event when :meth:`Bus.publish` returns;
* a node whose :meth:`Bus.register` of ``uid`` returned before ``publish`` was called gets
  the event, unless the bus is down (then remote deliveries are dropped and counted; clients
  fill the gap by sync);
* events from one node reach another node in publication order;
* ``publish`` never waits for the network: a slow or absent bus drops, it does not block
  the send path;
* a dead node's registrations stop attracting events within the presence TTL.

Connection ids (``exclude_conn``, ``keep_conn``) are local to the publishing node; other nodes
receive the event with them empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from magpie.store.interface import StoredMessage

__all__ = ["Bus", "BusEvent", "BusHealth", "Delivery", "Handler", "Kick"]


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


@dataclass(frozen=True, slots=True)
class BusHealth:
    """Whether the bus reaches the other nodes (``/ready``); ``detail`` says why not."""

    ok: bool
    detail: str


class Bus(Protocol):
    """Publish/subscribe of :data:`BusEvent` between nodes, routed by presence."""

    @property
    def node_id(self) -> int:
        """This node's id in the cluster."""
        ...

    def assign(self, node_id: int) -> None:
        """Take this node's id (leased from the store at start, before :meth:`start`)."""
        ...

    def subscribe(self, handler: Handler) -> None:
        """Call ``handler`` for every event this node should deliver (its own publications
        and those of other nodes that name a uid registered here). Handlers must not block."""
        ...

    async def publish(self, event: BusEvent) -> None:
        """Hand ``event`` (after the store committed) to this node's handlers, then queue it
        for the other nodes holding its recipients; never waits for the network."""
        ...

    async def register(self, uid: str) -> None:
        """One more connection of ``uid`` on this node. Returns once other nodes' publications
        would find it (bounded: at once when the bus is down)."""
        ...

    def unregister(self, uid: str) -> None:
        """One connection of ``uid`` left this node (pairs with one :meth:`register`)."""
        ...

    def health(self) -> BusHealth:
        """Whether the bus currently reaches the other nodes."""
        ...

    async def start(self) -> None:
        """Connect; raises :class:`~magpie.errors.ConfigError` naming the setting when the
        bus cannot be reached or this node's id is taken."""
        ...

    async def close(self) -> None:
        """Withdraw this node's registrations and disconnect."""
        ...

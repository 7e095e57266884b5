"""The in-process bus of the embedded default: publish calls the handlers directly."""

from __future__ import annotations

from magpie.bus._local import Counts, run_handlers
from magpie.bus.interface import BusEvent, BusHealth, Handler

__all__ = ["MemoryBus"]

_HEALTHY = BusHealth(True, "in-process")


class MemoryBus:
    """One process, no network: events reach this process's handlers synchronously. The
    presence registry is a count of connections per uid (the gateway's pairing is checkable;
    there is no other node to route to)."""

    def __init__(self, node_id: int = 0) -> None:
        self._node_id = node_id
        self._handlers: list[Handler] = []
        self._counts = Counts()

    @property
    def node_id(self) -> int:
        """The id given at construction or by :meth:`assign`."""
        return self._node_id

    def assign(self, node_id: int) -> None:
        """Take this node's id."""
        self._node_id = node_id

    def subscribe(self, handler: Handler) -> None:
        """Register a handler."""
        self._handlers.append(handler)

    async def publish(self, event: BusEvent) -> None:
        """Run every handler."""
        run_handlers(self._handlers, event)

    async def register(self, uid: str) -> None:
        """Count one more connection of ``uid``."""
        self._counts.add(uid)

    def unregister(self, uid: str) -> None:
        """Count one connection of ``uid`` less."""
        self._counts.remove(uid)

    def connections(self, uid: str) -> int:
        """How many connections of ``uid`` are registered (for tests and introspection)."""
        return self._counts.get(uid)

    def health(self) -> BusHealth:
        """Always healthy: nothing to reach."""
        return _HEALTHY

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Drop the handlers and registrations."""
        self._handlers.clear()
        self._counts.clear()

"""The in-process bus of the embedded default: publish calls the handlers directly."""

from __future__ import annotations

import logging

from magpie.bus.interface import BusEvent, Handler

__all__ = ["MemoryBus"]

log = logging.getLogger(__name__)


class MemoryBus:
    """One process, no network: events reach this process's handlers synchronously."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        """Register a handler."""
        self._handlers.append(handler)

    async def publish(self, event: BusEvent) -> None:
        """Run every handler; one failing handler does not stop the others."""
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("bus handler failed for %s", type(event).__name__)

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Drop the handlers."""
        self._handlers.clear()

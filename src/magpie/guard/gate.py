"""Connection caps: how many connections are open, in all and per key (an address, a uid).

A :class:`Gate` is plain counting — :meth:`Gate.enter` admits a connection or names the cap it
would break, :meth:`Gate.leave` gives its place back — so the same caps work for the HTTP
server's sockets and the WebSocket gateway's. A cap of 0 is no cap.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["Gate", "GateCaps", "Over"]


class Over(enum.Enum):
    """Which cap a refused connection would have broken (a metric label)."""

    TOTAL = "conn_total"
    PER_KEY = "conn_per_key"


@dataclass(frozen=True, slots=True)
class GateCaps:
    """The caps: ``total`` open connections, ``per_key`` of one key (0 = no cap)."""

    total: int
    per_key: int


class Gate:
    """Counts open connections against :class:`GateCaps`."""

    def __init__(self, caps: GateCaps) -> None:
        self.caps = caps
        self.open = 0
        self._per_key: dict[Hashable, int] = {}

    def count(self, key: Hashable) -> int:
        """Connections open under ``key``."""
        return self._per_key.get(key, 0)

    def enter(self, key: Hashable | None) -> Over | None:
        """Admit one connection under ``key`` (``None``: counted only in the total); returns
        the cap it would break instead, and then counts nothing."""
        caps = self.caps
        if caps.total and self.open >= caps.total:
            return Over.TOTAL
        if key is not None:
            held = self._per_key.get(key, 0)
            if caps.per_key and held >= caps.per_key:
                return Over.PER_KEY
            self._per_key[key] = held + 1
        self.open += 1
        return None

    def attach(self, key: Hashable) -> Over | None:
        """Count a connection admitted without a key under ``key`` now (when its address is
        learnt later, e.g. from a trusted proxy's header); the total is not counted again."""
        held = self._per_key.get(key, 0)
        if self.caps.per_key and held >= self.caps.per_key:
            return Over.PER_KEY
        self._per_key[key] = held + 1
        return None

    def leave(self, key: Hashable | None) -> None:
        """Give back the place of a connection admitted under ``key``."""
        self.open -= 1
        if key is not None:
            held = self._per_key[key] - 1
            if held:
                self._per_key[key] = held
            else:
                del self._per_key[key]

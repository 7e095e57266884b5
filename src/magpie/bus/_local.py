"""What every bus backend does locally: run this node's handlers, count its connections."""

from __future__ import annotations

import logging

from magpie.bus.interface import BusEvent, Handler

__all__ = ["Counts", "run_handlers"]

log = logging.getLogger("magpie.bus")


def run_handlers(handlers: list[Handler], event: BusEvent) -> None:
    """Run every handler; one failing handler does not stop the others."""
    for handler in handlers:
        try:
            handler(event)
        except Exception:
            log.exception("bus handler failed for %s", type(event).__name__)


class Counts:
    """Connections per uid on this node. :meth:`add` and :meth:`remove` say whether the uid
    appeared or disappeared: only those transitions change the presence registry."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def add(self, uid: str) -> bool:
        """One more connection; true when it is the uid's first."""
        n = self._counts.get(uid, 0)
        self._counts[uid] = n + 1
        return n == 0

    def remove(self, uid: str) -> bool:
        """One connection less; true when it was the uid's last (false for an unknown uid)."""
        n = self._counts.get(uid, 0)
        if n > 1:
            self._counts[uid] = n - 1
            return False
        return self._counts.pop(uid, None) is not None

    def get(self, uid: str) -> int:
        """Connections of ``uid``."""
        return self._counts.get(uid, 0)

    def uids(self) -> set[str]:
        """Every uid with a connection here."""
        return set(self._counts)

    def clear(self) -> None:
        """Forget everything."""
        self._counts.clear()

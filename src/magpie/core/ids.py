"""Message ids: 64-bit snowflakes (spec §4), as WuKongIM allocates them.

Layout: 41 bits of milliseconds since the Twitter epoch (1288834974657), 10 bits of node id,
12 bits of per-millisecond step. The clock is injected, so the generator is deterministic in
tests; a clock that goes backwards never produces a smaller id.

A node's id is leased from the store at start (``magpie.core.nodes``), after the generator is
built: :meth:`Snowflake.assign` gives it the id and the lease's validity check, and no id is
issued while the lease is not valid (the node could not renew it; another process may take
the id once it runs out).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from magpie.errors import StoreUnavailable

__all__ = ["SNOWFLAKE_EPOCH_MS", "Snowflake"]

SNOWFLAKE_EPOCH_MS = 1288834974657
_NODE_BITS = 10
_STEP_BITS = 12
_STEP_MASK = (1 << _STEP_BITS) - 1


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Snowflake:
    """A strictly increasing id generator for one node."""

    def __init__(self, node_id: int | None, clock_ms: Callable[[], int] = _now_ms) -> None:
        self._node = -1
        self._valid: Callable[[], bool] | None = None
        if node_id is not None:
            self.assign(node_id)
        self._clock = clock_ms
        self._last_ms = 0
        self._step = 0

    @property
    def node_id(self) -> int:
        """The node id in the ids (-1 before :meth:`assign`)."""
        return self._node

    def assign(self, node_id: int, valid: Callable[[], bool] | None = None) -> None:
        """Issue ids of ``node_id`` from now on, and only while ``valid()`` (when given)."""
        if not 0 <= node_id < (1 << _NODE_BITS):
            raise ValueError(f"node_id must be 0–1023, got {node_id}")
        self._node = node_id
        self._valid = valid

    def next_id(self) -> int:
        """The next id; never repeats, never decreases. :class:`StoreUnavailable` while the
        node's id lease is not valid (no id assigned yet, or not renewed in time)."""
        if self._node < 0 or (self._valid is not None and not self._valid()):
            raise StoreUnavailable("this node's id lease is not renewed (the store is unreachable)")
        now = max(self._clock(), self._last_ms)
        if now == self._last_ms:
            self._step = (self._step + 1) & _STEP_MASK
            if self._step == 0:  # 4096 ids in one ms: borrow the next millisecond
                now += 1
        else:
            self._step = 0
        self._last_ms = now
        return (
            ((now - SNOWFLAKE_EPOCH_MS) << (_NODE_BITS + _STEP_BITS))
            | (self._node << _STEP_BITS)
            | self._step
        )

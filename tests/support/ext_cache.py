"""A client's extension cache as a pure value: the model the API tests sync into.

The SDK keeps the same rule in SQLite (``magpie.client.cache``); this in-memory model lets the
server's tests check what a client following :func:`magpie.domain.ext.apply_if_newer` ends up
with, and lets a property test check that the rule converges whatever the delivery order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from magpie.domain.ext import ExtState, apply_if_newer


def apply_all(cache: Mapping[int, ExtState], rows: Iterable[ExtState]) -> dict[int, ExtState]:
    """A new mapping ``message_id -> row`` with each of ``rows`` applied if newer."""
    out = dict(cache)
    for row in rows:
        out[row.message_id] = apply_if_newer(out.get(row.message_id), row)
    return out


@dataclass(frozen=True, slots=True)
class ExtCache:
    """A client's extensions of one channel: the rows, the sync cursor (the highest
    ``extra_version`` received) and the store epoch they came from."""

    epoch: str = ""
    rows: Mapping[int, ExtState] = field(default_factory=dict)
    cursor: int = 0

    def apply(self, epoch: str, rows: Iterable[ExtState]) -> ExtCache:
        """The cache after a sync answer from a store with ``epoch``, each row applied if
        newer. When the cache came from another epoch (I7) the answer was computed for a
        cursor that means nothing any more: the result is an empty cache of the new epoch
        (cursor 0), and the caller syncs again. A fresh cache (epoch ``""``) adopts the epoch.
        """
        if self.epoch and epoch != self.epoch:
            return ExtCache(epoch)
        incoming = list(rows)
        cursor = max([self.cursor, *(r.extra_version for r in incoming)])
        return ExtCache(epoch, apply_all(self.rows, incoming), cursor)

    def needs_reset(self, epoch: str) -> bool:
        """Whether an answer with ``epoch`` invalidates this cache."""
        return bool(self.epoch) and epoch != self.epoch

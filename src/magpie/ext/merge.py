"""The client side of message extensions: the apply-if-newer rule (ARCHITECTURE I6, I7).

Shared by the server (which renders sync rows with :meth:`ExtSnapshot.to_json`) and the
Python SDK (which parses them with :meth:`ExtSnapshot.from_json` and keeps an
:class:`ExtCache` per channel). It therefore imports **nothing but the standard library**: the
client package may import this module and nothing else of ``magpie.ext``.

The rule: a row replaces the cached row of its message only if it is newer, i.e. its
``(version, extra_version)`` is greater. ``version`` is the message's change counter (+1 per
accepted change, one winner per version); ``extra_version`` is the channel's counter and
breaks ties for TangSengDaoDao rows, which carry no ``version`` (spec §5.2). So applying any
permutation of a stream of rows, with duplicates, gives the same cache as applying it in
order: the result is, per message, the greatest row seen. A cache whose store epoch differs
from the server's is dropped (I7).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ExtCache", "ExtSnapshot", "apply_all", "apply_if_newer"]


@dataclass(frozen=True, slots=True)
class ExtSnapshot:
    """One message's extension as a sync row carries it (``/message/extra/sync``)."""

    message_id: int
    version: int = 0
    extra_version: int = 0
    message_seq: int = 0
    channel_id: str = ""
    channel_type: int = 0
    status: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    revoke: int = 0
    revoker: str = ""
    readed_count: int = 0
    content_edit: Mapping[str, Any] | None = None
    edited_at: int = 0
    updated_at: int = 0
    updated_by_uid: str = ""
    updated_by_device: str = ""

    @property
    def order(self) -> tuple[int, int]:
        """What "newer" compares: ``(version, extra_version)``."""
        return (self.version, self.extra_version)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> ExtSnapshot:
        """Parse a sync row; absent fields (TSDD omits zero values) take their defaults.
        ``message_id_str`` is preferred to ``message_id``: JavaScript cannot hold an int64."""
        by = row.get("updated_by") or {}
        return cls(
            message_id=int(row.get("message_id_str") or row["message_id"]),
            version=int(row.get("version", 0)),
            extra_version=int(row.get("extra_version", 0)),
            message_seq=int(row.get("message_seq", 0)),
            channel_id=str(row.get("channel_id", "")),
            channel_type=int(row.get("channel_type", 0)),
            status=str(row.get("status", "")),
            extra=dict(row.get("extra") or {}),
            revoke=int(row.get("revoke", 0)),
            revoker=str(row.get("revoker", "")),
            readed_count=int(row.get("readed_count", 0)),
            content_edit=row.get("content_edit") or None,
            edited_at=int(row.get("edited_at", 0)),
            updated_at=int(row.get("updated_at", 0)),
            updated_by_uid=str(by.get("uid", "")),
            updated_by_device=str(by.get("device", "")),
        )

    def to_json(self) -> dict[str, Any]:
        """The sync row: WuKongIM / TangSengDaoDao names (spec §5.2) plus Magpie's ``status``,
        ``extra``, ``version``, ``updated_at`` (an HLC value) and ``updated_by``."""
        return {
            "message_id": self.message_id,
            "message_id_str": str(self.message_id),
            "message_seq": self.message_seq,
            "channel_id": self.channel_id,
            "channel_type": self.channel_type,
            "extra_version": self.extra_version,
            "version": self.version,
            "status": self.status,
            "extra": dict(self.extra),
            "revoke": self.revoke,
            "revoker": self.revoker,
            "readed_count": self.readed_count,
            "content_edit": None if self.content_edit is None else dict(self.content_edit),
            "edited_at": self.edited_at,
            "updated_at": self.updated_at,
            "updated_by": {"uid": self.updated_by_uid, "device": self.updated_by_device},
        }


def apply_if_newer(cached: ExtSnapshot | None, incoming: ExtSnapshot) -> ExtSnapshot:
    """``incoming`` if it is newer than ``cached`` (or nothing is cached), else ``cached``."""
    if cached is None:
        return incoming
    if cached.message_id != incoming.message_id:
        raise ValueError("rows of different messages")
    return incoming if incoming.order > cached.order else cached


def apply_all(
    cache: Mapping[int, ExtSnapshot], rows: Iterable[ExtSnapshot]
) -> dict[int, ExtSnapshot]:
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
    rows: Mapping[int, ExtSnapshot] = field(default_factory=dict)
    cursor: int = 0

    def apply(self, epoch: str, rows: Iterable[ExtSnapshot]) -> ExtCache:
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

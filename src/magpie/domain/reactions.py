"""Reactions: emoji that members add to a message, per (user, emoji) (``docs/conversation.md``).

A :class:`Reaction` is the current state of one (message, uid, emoji): added, or removed
(``deleted``, a tombstone kept so that a client that synced the add learns of the remove).
Every change takes the channel's next ``seq`` (its *reaction version*, allocated in the
change's transaction), so a client syncs a channel's reactions incrementally from the
highest seq it holds, and applying rows in any order, with duplicates, gives the same state:
a row replaces the held row of its (message, uid, emoji) only if its ``seq`` is greater
(:func:`apply_reaction`).

:func:`summarise` turns rows into the per-emoji summary a message shows (``count``, who
reacted, the highest seq) — the JS SDK's ``Reaction {emoji, count, users, seq}``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_EMOJI_BYTES",
    "Reaction",
    "ReactionKey",
    "Summary",
    "apply_reaction",
    "emoji_problem",
    "summarise",
]

#: Longest emoji (UTF-8 bytes): room for a flag, a family or a skin-toned emoji, or a short
#: name like ``:thumbsup:``.
MAX_EMOJI_BYTES = 32

#: What a reaction row is about: ``(message_id, uid, emoji)``.
ReactionKey = tuple[int, str, str]


@dataclass(frozen=True, slots=True)
class Reaction:
    """One (message, uid, emoji) and its state. ``channel_id`` is the storage id unless a
    rendering for one viewer said otherwise; ``created_at`` (unix seconds) is when it last
    changed."""

    message_id: int
    channel_id: str
    channel_type: int
    uid: str
    emoji: str
    seq: int
    deleted: bool = False
    created_at: int = 0

    @property
    def key(self) -> ReactionKey:
        """``(message_id, uid, emoji)``."""
        return (self.message_id, self.uid, self.emoji)

    def to_json(self, channel_id: str | None = None) -> dict[str, Any]:
        """The sync row (TangSengDaoDao's ``/reaction/sync`` shape); ``channel_id`` replaces
        the stored one (a viewer's peer uid for a person channel)."""
        return {
            "message_id": self.message_id,
            "message_id_str": str(self.message_id),
            "channel_id": self.channel_id if channel_id is None else channel_id,
            "channel_type": self.channel_type,
            "seq": self.seq,
            "uid": self.uid,
            "emoji": self.emoji,
            "is_deleted": int(self.deleted),
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Reaction:
        """Parse a sync row (``message_id_str`` preferred: JavaScript cannot hold an int64)."""
        return cls(
            message_id=int(row.get("message_id_str") or row["message_id"]),
            channel_id=str(row.get("channel_id", "")),
            channel_type=int(row.get("channel_type", 0)),
            uid=str(row["uid"]),
            emoji=str(row["emoji"]),
            seq=int(row["seq"]),
            deleted=bool(int(row.get("is_deleted", 0))),
            created_at=int(row.get("created_at", 0)),
        )


def apply_reaction(
    held: Mapping[ReactionKey, Reaction], row: Reaction
) -> dict[ReactionKey, Reaction]:
    """``held`` with ``row`` applied if its seq is greater than the held row's."""
    out = dict(held)
    current = out.get(row.key)
    if current is None or row.seq > current.seq:
        out[row.key] = row
    return out


@dataclass(frozen=True, slots=True)
class Summary:
    """One emoji on one message: how many reacted with it, who (in the order they did), and
    the highest seq among them."""

    emoji: str
    count: int
    users: tuple[str, ...]
    seq: int

    def to_json(self) -> dict[str, Any]:
        """``{"emoji", "count", "users", "seq"}``."""
        return {
            "emoji": self.emoji,
            "count": self.count,
            "users": list(self.users),
            "seq": self.seq,
        }


def summarise(rows: Iterable[Reaction]) -> dict[int, list[Summary]]:
    """Per message, the summaries of its live (not deleted) reactions, emoji in the order of
    their first live seq."""
    live = sorted((r for r in rows if not r.deleted), key=lambda r: r.seq)
    grouped: dict[int, dict[str, list[Reaction]]] = {}
    for r in live:
        grouped.setdefault(r.message_id, {}).setdefault(r.emoji, []).append(r)
    return {
        mid: [
            Summary(emoji, len(rs), tuple(r.uid for r in rs), max(r.seq for r in rs))
            for emoji, rs in by_emoji.items()
        ]
        for mid, by_emoji in grouped.items()
    }


def emoji_problem(emoji: object, max_bytes: int = MAX_EMOJI_BYTES) -> str | None:
    """What is wrong with ``emoji`` (``None``: nothing): 1–``max_bytes`` bytes of UTF-8 with
    no white space, no control or format character other than the joiners and variation
    selectors emoji are made of."""
    if not isinstance(emoji, str) or not emoji:
        return "must be a non-empty string"
    try:
        size = len(emoji.encode())
    except UnicodeEncodeError:
        return "is not valid Unicode"
    if size > max_bytes:
        return f"must be at most {max_bytes} bytes of UTF-8"
    for ch in emoji:
        category = unicodedata.category(ch)
        if ch.isspace() or category in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp"):
            return "must not hold white space or control characters"
        if category == "Cf" and ch not in _EMOJI_FORMAT:
            return "must not hold invisible format characters"
    return None


#: The format characters emoji sequences use: zero-width joiner, variation selectors, tag
#: characters (subdivision flags) and the tag terminator.
_EMOJI_FORMAT = frozenset(
    ["\u200d", "\ufe0e", "\ufe0f", *(chr(c) for c in range(0xE0020, 0xE0080))]
)

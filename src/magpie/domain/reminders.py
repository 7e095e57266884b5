"""Mentions and reminders (``docs/conversation.md``, item 4).

A message may mention members: ``mention: {"uids": [...], "all": 1}`` in its payload (the
WuKongIM/TangSengDaoDao key the JS SDK writes from ``content.mention``). Each mentioned member
gets a :class:`Reminder` — "@you in this conversation" — created in the message's own
transaction. A user's reminders carry a per-user ``version`` that only grows (a reminder
created, or marked done, takes the user's next one), so a client syncs them incrementally and
every device converges: a row replaces the held row of its ``reminder_id`` when its version
is greater.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from magpie.domain.channels import uid_problem

__all__ = [
    "MAX_MENTIONS",
    "MENTION",
    "Mention",
    "NewReminder",
    "Reminder",
    "read_mention",
    "reminders_problem",
]

#: Reminder type of a mention (TangSengDaoDao's ``ReminderTypeMentionMe``).
MENTION = 1
#: Most uids one ``mention`` may name.
MAX_MENTIONS = 1000


@dataclass(frozen=True, slots=True)
class Mention:
    """Who a message mentions: some uids, or everybody (``all``)."""

    uids: tuple[str, ...] = ()
    all: bool = False


def read_mention(content: Mapping[str, Any]) -> Mention | None:
    """The ``mention`` of a message's content (``None`` without one); ``ValueError`` with a
    message fit for the sender when it is malformed."""
    raw = content.get("mention")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError("mention must be an object")
    everybody = raw.get("all") or 0
    if not isinstance(everybody, int) or everybody not in (0, 1):
        raise ValueError("mention.all must be 0 or 1")
    uids = raw.get("uids") or []
    if not isinstance(uids, list) or len(uids) > MAX_MENTIONS:
        raise ValueError(f"mention.uids must be an array of at most {MAX_MENTIONS} uids")
    for uid in uids:
        problem = uid_problem(uid)
        if problem is not None:
            raise ValueError(f"mention.uids: a uid {problem}")
    return Mention(tuple(dict.fromkeys(uids)), bool(everybody))


@dataclass(frozen=True, slots=True)
class NewReminder:
    """A reminder to create with a message, for ``uid`` (a recipient of the message)."""

    uid: str
    reminder_type: int = MENTION
    text: str = ""


@dataclass(frozen=True, slots=True)
class Reminder:
    """A stored reminder of ``uid`` about a message (channel: storage id unless a rendering
    for a viewer said otherwise)."""

    reminder_id: int
    uid: str
    channel_id: str
    channel_type: int
    message_id: int
    message_seq: int
    reminder_type: int
    publisher: str
    text: str
    version: int
    done: bool = False

    def to_json(self, channel_id: str | None = None) -> dict[str, Any]:
        """The sync row (TangSengDaoDao's ``/message/reminder/sync`` shape)."""
        return {
            "id": self.reminder_id,
            "channel_id": self.channel_id if channel_id is None else channel_id,
            "channel_type": self.channel_type,
            "publisher": self.publisher,
            "message_seq": self.message_seq,
            "message_id": str(self.message_id),
            "reminder_type": self.reminder_type,
            "uid": self.uid,
            "text": self.text,
            "data": None,
            "is_locate": 1,
            "version": self.version,
            "done": int(self.done),
        }

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Reminder:
        """Parse a sync row."""
        return cls(
            reminder_id=int(row["id"]),
            uid=str(row.get("uid", "")),
            channel_id=str(row.get("channel_id", "")),
            channel_type=int(row.get("channel_type", 0)),
            message_id=int(row["message_id"]),
            message_seq=int(row.get("message_seq", 0)),
            reminder_type=int(row.get("reminder_type", MENTION)),
            publisher=str(row.get("publisher", "")),
            text=str(row.get("text", "")),
            version=int(row["version"]),
            done=bool(int(row.get("done", 0))),
        )


def reminders_problem(reminders: Sequence[NewReminder], recipients: Sequence[str]) -> str:
    """What is wrong with reminders to create with a message (``""``: nothing): each must be
    for one of the message's ``recipients``."""
    if not reminders:  # the common case: no set of a large group's members per message
        return ""
    allowed = set(recipients)
    if any(r.uid not in allowed for r in reminders):
        return "a reminder is for a uid that is not a recipient"
    return ""

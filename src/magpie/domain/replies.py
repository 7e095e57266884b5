"""Replies: a message quoting another (``docs/conversation.md``, item 1).

A reply carries the WuKongIM/TangSengDaoDao ``reply`` object in its payload (the JS SDK writes
it from ``content.reply``): ``{"message_id", "message_seq", "from_uid", "from_name",
"root_message_id"?, "payload"}``. The server checks it names a message of the same channel and
replaces ``payload`` with a preview of the quoted message's current content
(:func:`preview`), so a preview cannot be forged; served copies then show the quoted
message's state at serving time (:func:`served_reply`): revoked, or edited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_PREVIEW_BYTES",
    "PREVIEW_CHARS",
    "Quote",
    "has_reply",
    "preview",
    "read_reply",
    "reply_object",
    "served_reply",
]

#: Longest text of a preview (characters); longer text is cut.
PREVIEW_CHARS = 200
#: Largest preview (compact JSON bytes); a bigger content previews as its type only.
MAX_PREVIEW_BYTES = 2048
#: Longest ``from_name``.
MAX_NAME = 128

_ID = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class Quote:
    """What a reply names: the quoted message's id, and (0 / "": not given) its seq, sender
    and the thread's root id; the sender's display name as the client gave it."""

    message_id: int
    message_seq: int = 0
    from_uid: str = ""
    from_name: str = ""
    root_message_id: int = 0


def _id(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a message id")
    if isinstance(value, int) and 0 < value < 2**63:
        return value
    if isinstance(value, str) and _ID.fullmatch(value) and 0 < int(value) < 2**63:
        return int(value)
    raise ValueError(f"{what} must be a message id (a number or a decimal string)")


def read_reply(content: Mapping[str, Any]) -> Quote | None:
    """The ``reply`` of a message's content (``None`` without one); ``ValueError`` with a
    message fit for the sender when it is malformed."""
    raw = content.get("reply")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError("reply must be an object")
    seq = raw.get("message_seq") or 0
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError("reply.message_seq must be a non-negative integer")
    who, name = raw.get("from_uid") or "", raw.get("from_name") or ""
    if not isinstance(who, str) or not isinstance(name, str) or len(name) > MAX_NAME:
        raise ValueError(
            f"reply.from_uid and reply.from_name must be strings (a name ≤ {MAX_NAME})"
        )
    root = raw.get("root_message_id")
    return Quote(
        _id(raw.get("message_id"), "reply.message_id"),
        seq,
        who,
        name,
        0 if root in (None, "", 0) else _id(root, "reply.root_message_id"),
    )


def preview(content: Mapping[str, Any]) -> dict[str, Any]:
    """A quoted content as a reply shows it: without its own ``reply`` and ``mention``, text
    cut to :data:`PREVIEW_CHARS`, and only its ``type`` when still bigger than
    :data:`MAX_PREVIEW_BYTES`."""
    out = {k: v for k, v in content.items() if k not in ("reply", "mention")}
    text = out.get("content")
    if isinstance(text, str) and len(text) > PREVIEW_CHARS:
        out["content"] = text[:PREVIEW_CHARS] + "…"
    size = len(json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode())
    return out if size <= MAX_PREVIEW_BYTES else {"type": content.get("type")}


def reply_object(quote: Quote, from_uid: str, shown: Mapping[str, Any]) -> dict[str, Any]:
    """The stored ``reply`` object: ids as strings (JavaScript cannot hold an int64)."""
    out: dict[str, Any] = {
        "message_id": str(quote.message_id),
        "message_seq": quote.message_seq,
        "from_uid": from_uid,
        "from_name": quote.from_name,
        "payload": dict(shown),
    }
    if quote.root_message_id:
        out["root_message_id"] = str(quote.root_message_id)
    return out


def has_reply(payload: bytes) -> bool:
    """Whether a payload may hold a ``reply`` (a cheap test before decoding it)."""
    return b'"reply"' in payload


def served_reply(
    reply: Mapping[str, Any], revoked: bool, content_edit: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``reply`` object as served now: ``revoke: 1`` and no ``payload`` once the quoted
    message was revoked; the preview of its edit once it was edited."""
    out = dict(reply)
    if revoked:
        out.pop("payload", None)
        out["revoke"] = 1
    elif content_edit is not None:
        out["payload"] = preview(content_edit)
    return out

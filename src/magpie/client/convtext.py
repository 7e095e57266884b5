"""Messages and their changing state as readable text, never raw JSON (what ``magpie chat``
prints; sans-I/O, so tests call it directly).

.. code-block:: text

    alice: lunch at noon?  ↪ bob: "are we…"  @you  · edited · read by 2 · 👍 2 (alice, bob)

* :func:`body_text` — a message's content: its text, ``[image dot.png 3×2, 120 B]``,
  ``[file notes.txt, 10 B]``, ``[card vote@1: Lunch]`` (``/card`` shows the card), else
  ``[message of type N]``;
* :func:`reply_text` — the quote: ``↪ alice: "lunch at noon?"`` (``↪ alice: (withdrawn)``
  once the original was revoked, its edit once edited — from the original's extension when
  the client holds it, so a reply follows its original);
* :func:`chips` — reactions: ``👍 2 (alice, bob) · 🎉 1 (carol)``;
* :func:`state_tags` — ``edited``, ``withdrawn``, ``read by N``, a card's status;
* :func:`value_text` — any JSON value as ``key=value`` text (for a card's ``extra``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from magpie.client.model import FILE_TYPE, IMAGE_TYPE, Reaction, Reply, mentions
from magpie.domain.ext import ExtState

__all__ = [
    "body_text",
    "chips",
    "line",
    "reply_text",
    "size_text",
    "state_tags",
    "typing_text",
    "value_text",
]

#: Characters of a quoted preview shown before "…".
PREVIEW_CHARS = 40
_CARD_TYPE = 3000


def size_text(size: object) -> str:
    """``120 B``, ``3.4 KiB``, ``2.0 MiB``."""
    n = size if isinstance(size, int) and not isinstance(size, bool) else 0
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


def value_text(value: Any) -> str:
    """A JSON value as readable text: objects as ``k=v, …``, lists comma-separated."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={value_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def body_text(content: Mapping[str, Any]) -> str:
    """A message's content as one readable line."""
    kind = content.get("type")
    text = content.get("content")
    if kind == 1 and isinstance(text, str):
        return " ".join(text.split("\n"))
    name = content.get("name") or "file"
    if kind == IMAGE_TYPE:
        w, h = content.get("width"), content.get("height")
        return f"[image {name} {w}×{h}, {size_text(content.get('size'))}]"
    if kind == FILE_TYPE:
        return f"[file {name}, {size_text(content.get('size'))}]"
    card = content.get("card")
    if kind == _CARD_TYPE and isinstance(card, Mapping):
        return f"[card {card.get('type', '?')}: {card.get('title') or text or ''}]".replace(
            ": ]", "]"
        )
    if isinstance(text, str) and text:
        return f"{text} [message of type {kind}]"
    return f"[message of type {kind}]"


def _preview(content: Mapping[str, Any]) -> str:
    body = body_text(content) if content else "…"
    return body if len(body) <= PREVIEW_CHARS else body[: PREVIEW_CHARS - 1] + "…"


def reply_text(reply: Reply, original: ExtState | None = None) -> str:
    """The quote a reply shows; ``original`` (the quoted message's extension, if known)
    wins over the preview the reply carries: withdrawn, or its edit."""
    who = reply.from_name or reply.from_uid or "?"
    if reply.revoked or (original is not None and original.fields.revoke):
        return f"↪ {who}: (withdrawn)"
    preview = reply.preview
    if original is not None and original.fields.content_edit is not None:
        preview = original.fields.content_edit
    return f'↪ {who}: "{_preview(preview)}"'


def chips(reactions: Iterable[Reaction]) -> str:
    """Reaction chips: ``👍 2 (alice, bob) · 🎉 1 (carol)``; ``""`` for none."""
    return " · ".join(f"{r.emoji} {r.count} ({', '.join(r.users)})" for r in reactions)


def state_tags(ext: ExtState | None) -> list[str]:
    """What changed since the message was sent: ``withdrawn`` (then nothing else),
    ``edited``, ``read by N``, a card's ``status``."""
    if ext is None:
        return []
    f = ext.fields
    if f.revoke:
        return ["withdrawn"]
    tags = ["edited"] if f.content_edit is not None else []
    if f.readed_count:
        tags.append(f"read by {f.readed_count}")
    if f.status:
        tags.append(f"status {f.status}")
    return tags


def typing_text(uid: str) -> str:
    """``bob is typing…``."""
    return f"{uid} is typing…"


def line(
    content: Mapping[str, Any],
    from_uid: str,
    viewer: str,
    ext: ExtState | None = None,
    reactions: Sequence[Reaction] = (),
    original: ExtState | None = None,
) -> str:
    """``from: body`` with the quote, ``@you``, state tags and reaction chips: a revoked
    message shows ``(withdrawn)`` instead of its body, an edited one its edit; ``original``
    is the quoted message's extension (see :func:`reply_text`)."""
    if ext is not None and ext.fields.revoke:
        parts = [f"{from_uid}: (withdrawn)"]
    else:
        shown = content
        if ext is not None and ext.fields.content_edit is not None:
            shown = ext.fields.content_edit
        parts = [f"{from_uid}: {body_text(shown)}"]
        if (reply := Reply.of(content)) is not None:
            parts.append(reply_text(reply, original))
        if mentions(content, viewer):
            parts.append("@you")
    tags = [t for t in state_tags(ext) if t != "withdrawn"]
    if chips_line := chips(reactions):
        tags.append(chips_line)
    return "  ".join(parts) + "".join(f" · {t}" for t in tags)

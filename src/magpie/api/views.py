"""The only ways a message extension leaves the HTTP API, so card state is projected by
construction (``docs/cards.md``).

A card message's extension stores the card service's whole state under ``extra["card"]``
(ballots, hidden tallies, survey answers ...). Two renderings exist, and no other module of
the API turns an :class:`~magpie.domain.ext.ExtState` into JSON:

* :func:`user_rows` (and :func:`messages_with_extra`, built on it) — what a *client* gets
  (``/message/extra/sync`` rows, ``message_extra`` of ``/channel/messagesync``): the channel
  id as the caller sees it, and the card state replaced by the caller's projection (the
  object ``GET /cards/{message_id}`` returns). Card-shaped state that cannot be projected
  (the card service is off, the message is not a card) is dropped: it fails closed.
* :func:`business_row` — the business server's raw view (storage channel ids, the stored
  ``extra``), for endpoints that take the business API key only.
* :func:`reaction_rows` and :func:`summaries` render the other state that changes after a
  message was sent, its reactions (rows of ``/reaction/sync``, the ``reactions`` of a
  message), and :func:`reminder_rows` a user's reminders, with channel ids as the viewer sees
  them.
* :func:`caller_row` — for endpoints that take the business key *or* a user token (a user
  revoking or editing their own message): the raw view for the business key, the user's
  projection (:func:`user_rows`) for a user. The credential decides, here. A test
  (``tests/api/test_views.py``) checks that only business-only route modules use it, and
  another walks every client-facing route and CMD for unprojected card state
  (``tests/cards/test_projection_walk.py``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from typing import Any

from magpie.api.context import ApiContext
from magpie.api.render import message_resp
from magpie.cards import STATE_KEY
from magpie.cards.model import CardState
from magpie.core.access import Caller
from magpie.domain.channels import visible_channel_id
from magpie.domain.content import decode_content
from magpie.domain.ext import ExtState
from magpie.domain.reactions import Reaction, Summary
from magpie.domain.reminders import Reminder
from magpie.domain.replies import has_reply, served_reply
from magpie.store.interface import StoredMessage

__all__ = [
    "business_row",
    "caller_row",
    "messages_with_extra",
    "reaction_rows",
    "reminder_rows",
    "summaries",
    "user_rows",
]


def business_row(state: ExtState) -> dict[str, Any]:
    """The raw extension row (business view: storage channel id, stored ``extra``). Only
    for endpoints that take the business API key alone."""
    return state.to_json()


async def user_rows(ctx: ApiContext, states: Sequence[ExtState], caller: Caller) -> list[Any]:
    """The rows of ``states`` as ``caller`` may see them: visible channel ids, card state
    replaced by the caller's projection. A user caller already passed the channel's read
    check; for the business key (acting for ``caller.uid``, maybe nobody) membership is
    asked."""
    member = None if caller.business else True
    rows = []
    for state in states:
        channel_id = visible_channel_id(state.channel_id, state.channel_type, caller.uid)
        row = state.to_json(channel_id)
        if CardState.from_extra(state.extra) is not None:
            view = None
            if ctx.cards is not None:
                view = await ctx.cards.project_state(state, caller.uid, member)
            extra = {k: v for k, v in row["extra"].items() if k != STATE_KEY}
            row["extra"] = extra if view is None else {**extra, STATE_KEY: view}
        rows.append(row)
    return rows


async def caller_row(ctx: ApiContext, state: ExtState, caller: Caller) -> dict[str, Any]:
    """``state`` as ``caller`` may see it: the business view for the business key, else the
    user's projection (a user has passed the message's read check)."""
    if caller.business:
        return business_row(state)
    (row,) = await user_rows(ctx, [state], caller)
    out: dict[str, Any] = row
    return out


def reaction_rows(rows: Iterable[Reaction], viewer: str) -> list[dict[str, Any]]:
    """Reaction rows (``/reaction/sync``) with the channel as ``viewer`` sees it."""
    return [r.to_json(visible_channel_id(r.channel_id, r.channel_type, viewer)) for r in rows]


def reminder_rows(rows: Iterable[Reminder], viewer: str) -> list[dict[str, Any]]:
    """Reminder rows (``/message/reminder/sync``) with the channel as ``viewer`` sees it."""
    return [r.to_json(visible_channel_id(r.channel_id, r.channel_type, viewer)) for r in rows]


def summaries(items: Sequence[Summary]) -> list[dict[str, Any]]:
    """A message's reaction summaries (``reactions``: emoji, count, users, seq)."""
    return [item.to_json() for item in items]


async def messages_with_extra(
    ctx: ApiContext, messages: Sequence[StoredMessage], caller: Caller
) -> list[dict[str, Any]]:
    """MessageResps as ``caller`` sees them, each with its extension as ``message_extra``
    (``None`` if it was never changed) and its reaction summaries as ``reactions``, so a
    freshly loaded page is already current; a reply's ``reply`` shows its quoted message as
    it is now (revoked, or edited)."""
    ids = [m.message_id for m in messages]
    reactions = await ctx.store.reaction_summaries(ids)
    quotes = await _quotes(ctx, messages)
    exts = await ctx.ext.states(ids)
    present = [exts[m.message_id] for m in messages if m.message_id in exts]
    rendered = await user_rows(ctx, present, caller)
    rows = {s.message_id: row for s, row in zip(present, rendered, strict=True)}
    out = []
    for m in messages:
        resp = message_resp(m, caller.uid)
        if m.message_id in quotes:
            resp["payload"] = quotes[m.message_id]
        resp["message_extra"] = rows.get(m.message_id)
        resp["reactions"] = summaries(reactions.get(m.message_id, ()))
        out.append(resp)
    return out


async def _quotes(ctx: ApiContext, messages: Sequence[StoredMessage]) -> dict[int, str]:
    """The base64 payloads of the replies among ``messages`` whose quoted message changed
    since (revoked or edited): their ``reply`` shows the quoted message's state now."""
    replies: dict[int, tuple[dict[str, Any], int]] = {}
    for m in messages:
        if not has_reply(m.payload):
            continue
        content = decode_content(m.payload)
        reply = None if content is None else content.get("reply")
        quoted = reply.get("message_id") if isinstance(reply, dict) else None
        if isinstance(quoted, str) and quoted.isdigit() and content is not None:
            replies[m.message_id] = (content, int(quoted))
    if not replies:
        return {}
    states = await ctx.ext.states([q for _, q in replies.values()])
    out = {}
    for mid, (content, quoted) in replies.items():
        state = states.get(quoted)
        if state is None or (not state.fields.revoke and state.fields.content_edit is None):
            continue
        shown = served_reply(content["reply"], state.fields.revoke, state.fields.content_edit)
        body = json.dumps({**content, "reply": shown}, separators=(",", ":"), ensure_ascii=False)
        out[mid] = base64.b64encode(body.encode()).decode("ascii")
    return out

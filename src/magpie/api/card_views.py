"""The projection hook of client-facing extension rows (``docs/cards.md``).

A card message's extension stores the card service's whole state under ``extra["card"]``
(ballots, hidden tallies, survey answers ...). Every rendering that reaches a user —
``/message/extra/sync`` rows and ``message_extra`` of ``/channel/messagesync`` — passes
through :func:`project_rows`, which replaces that state with the asking user's projection
(the object ``GET /cards/{message_id}`` returns). Rows of other messages are untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from magpie.api.context import ApiContext
from magpie.cards import STATE_KEY
from magpie.core.access import Caller
from magpie.domain.ext import ExtState

__all__ = ["project_message_extras", "project_rows"]


async def project_rows(
    ctx: ApiContext, pairs: Iterable[tuple[ExtState, dict[str, Any]]], caller: Caller
) -> None:
    """For each ``(state, rendered row)`` of a card message, replace the row's
    ``extra["card"]`` by ``caller``'s projection (in place). A user caller already passed
    the channel's membership check; for the business key it is asked."""
    cards = ctx.cards
    if cards is None:
        return
    member = None if caller.business else True
    for state, row in pairs:
        view = await cards.project_state(state, caller.uid, member)
        if view is not None:
            row["extra"] = {**row["extra"], STATE_KEY: view}


async def project_message_extras(
    ctx: ApiContext,
    messages: list[dict[str, Any]],
    exts: Mapping[int, ExtState],
    caller: Caller,
) -> None:
    """:func:`project_rows` over the ``message_extra`` of rendered MessageResps."""
    pairs = [
        (exts[m["message_id"]], m["message_extra"])
        for m in messages
        if m.get("message_extra") is not None and m["message_id"] in exts
    ]
    await project_rows(ctx, pairs, caller)

"""Reactions (``docs/conversation.md``, item 2), TangSengDaoDao's endpoints without ``/v1``.

* ``POST /reactions {login_uid?, channel_id, channel_type, message_id, emoji, action}`` —
  ``action`` ``add`` (default) or ``remove``; idempotent per (user, emoji). Answer:
  ``{"status":200,"data":{"changed", "seq", "row", "reactions"}}`` — ``row`` the caller's
  reaction row after the call (``null`` if never added), ``reactions`` the message's
  summaries.
* ``POST /reaction/sync {login_uid?, channel_id, channel_type, seq, limit}`` — the channel's
  rows with ``seq`` above the cursor, ascending (tombstones included): a bare array, with
  ``X-Magpie-More`` and ``X-Magpie-Epoch``.

A member of the channel only: 403 for the channel, 404 for a message the caller cannot read.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.history import MORE_HEADER, reader
from magpie.api.http import bare, ok_data
from magpie.api.openapi import EXT_REJECTION
from magpie.api.routes._shared import SEQ, array_of, data_schema
from magpie.api.routes.sync import EPOCH_HEADER
from magpie.api.schema import (
    ChannelId,
    ChannelType,
    Choice,
    Field,
    Integer,
    IntOrString,
    Object,
    String,
    Uid,
    request,
)
from magpie.api.views import reaction_rows, summaries
from magpie.config import Settings
from magpie.core.access import Caller
from magpie.domain.channels import names_channel
from magpie.domain.reactions import MAX_EMOJI_BYTES
from magpie.errors import BadRequest, NotFound

__all__ = ["endpoints"]

#: Default and largest ``limit`` of ``/reaction/sync`` (TSDD's).
DEFAULT_SYNC_LIMIT, MAX_SYNC_LIMIT = 100, 1000

_LOGIN_UID = Field(Uid(allow_empty=True), default="", doc="the member (optional with a user token)")


@request
class ReactReq:
    """``/reactions``."""

    login_uid: str = _LOGIN_UID
    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())
    message_id: int = Field(IntOrString(1), doc="a number or a decimal string")
    emoji: str = Field(String(MAX_EMOJI_BYTES, 1), doc="an emoji or a short name")
    action: str = Field(Choice(("add", "remove")), default="add")


@request
class ReactionSyncReq:
    """``/reaction/sync``."""

    login_uid: str = _LOGIN_UID
    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())
    seq: int = Field(SEQ, default=0, doc="cursor: the highest seq held; 0 = from the start")
    limit: int = Field(Integer(0, MAX_SYNC_LIMIT), default=DEFAULT_SYNC_LIMIT, doc="0 = default")


REACT = Object.of(ReactReq)
REACTION_SYNC = Object.of(ReactionSyncReq)


async def _member(ctx: ApiContext, request: Request, login_uid: str) -> Caller:
    caller = await require_user_or_token(request, ctx.access, login_uid, field="login_uid")
    if not caller.uid:
        raise BadRequest("login_uid is required with the business key", field="login_uid")
    return caller


async def react(ctx: ApiContext, request: Request, req: ReactReq) -> Response:
    """Add or remove the caller's emoji on a message of the channel."""
    caller = await _member(ctx, request, req.login_uid)
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    msg = await ctx.store.get_message(req.message_id)
    if msg is None or not names_channel(
        msg.channel_id, msg.channel_type, channel_id, req.channel_type
    ):
        raise NotFound("no such message in this channel", field="message_id")
    outcome = await ctx.conv.reactions.react(
        caller.uid, req.message_id, req.emoji, add=req.action == "add"
    )
    mine = [] if outcome.row is None else reaction_rows([outcome.row], caller.uid)
    live = (await ctx.store.reaction_summaries([req.message_id])).get(req.message_id, [])
    data = {
        "changed": outcome.changed,
        "seq": 0 if outcome.row is None else outcome.row.seq,
        "row": mine[0] if mine else None,
        "reactions": summaries(live),
    }
    return ok_data(data)


async def reaction_sync(ctx: ApiContext, request: Request, req: ReactionSyncReq) -> Response:
    """The channel's reaction rows after the cursor."""
    caller = await _member(ctx, request, req.login_uid)
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    limit = req.limit or DEFAULT_SYNC_LIMIT
    async with ctx.reads.slot(reader(caller)):
        rows = await ctx.store.sync_reactions(channel_id, req.channel_type, req.seq, limit + 1)
    more = len(rows) > limit
    headers = {MORE_HEADER: str(int(more)), EPOCH_HEADER: ctx.store.epoch}
    return bare(reaction_rows(rows[:limit], caller.uid), headers=headers)


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The reaction routes."""
    row = {"$ref": "#/components/schemas/Reaction"}
    summary = {"$ref": "#/components/schemas/ReactionSummary"}
    answer = {
        "type": "object",
        "properties": {
            "changed": {"type": "boolean"},
            "seq": {"type": "integer"},
            "row": {"oneOf": [row, {"type": "null"}]},
            "reactions": array_of(summary),
        },
    }
    return [
        Endpoint(
            "POST",
            "/reactions",
            "Add or remove the caller's emoji on a message",
            Access.USER,
            react,
            body=REACT,
            response=data_schema(answer),
            tag="conversation",
            errors=(
                (404, "no such message in the channel"),
                (
                    400,
                    "bad input; a revoked message (rejection: revoked); a new emoji beyond "
                    "reaction_max_emoji (code too_many_emoji)",
                    EXT_REJECTION,
                ),
            ),
        ),
        Endpoint(
            "POST",
            "/reaction/sync",
            "A channel's reaction rows after a seq",
            Access.USER,
            reaction_sync,
            body=REACTION_SYNC,
            response=array_of(row),
            tag="conversation",
        ),
    ]

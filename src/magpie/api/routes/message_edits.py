"""Revoke and edit (``docs/conversation.md``, item 6): the business key, or a user's own
token. Both go through the extension primitive (a versioned change, an operation-log row, the
``syncMessageExtra`` CMD).

* ``POST /message/revoke {message_id, channel_id?, channel_type?, revoker?, action_id?}`` —
  the business key names the ``revoker``; a user revokes their own message, or any message
  of a group they administer (role 1 or 2).
* ``POST /message/edit {message_id, channel_id?, channel_type?, content_edit, actor_uid?,
  action_id?}`` — a user edits only their own message and keeps its content ``type``.

A user's message must be in a channel they belong to (and in the named channel, when one is
named): 404 otherwise, so an outsider learns nothing; a given ``revoker`` / ``actor_uid`` must
be the token's user (403). The answer's row is the caller's view
(:func:`magpie.api.views.caller_row`: card state projected for a user)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.openapi import EXT_REJECTION
from magpie.api.routes._changes import CHANGED, answer, check_channel
from magpie.api.schema import (
    AnyObject,
    ChannelId,
    ChannelType,
    Field,
    Flag,
    IntOrString,
    Object,
    String,
    Uid,
    request,
)
from magpie.api.views import caller_row
from magpie.config import Settings
from magpie.core.access import Caller
from magpie.domain.channels import names_channel
from magpie.domain.content import check_content, decode_content
from magpie.domain.ext import Actor, UpdateResult
from magpie.domain.members import is_admin
from magpie.errors import BadRequest, Forbidden, NotFound
from magpie.ext.service import MAX_ACTION_ID_LENGTH, new_action_id
from magpie.store.interface import StoredMessage

__all__ = ["endpoints"]

#: Longest ``actor_device``.
MAX_DEVICE_LENGTH = 128

_MESSAGE_ID = IntOrString(1)
_ACTION_ID = String(MAX_ACTION_ID_LENGTH, 1)
_DEVICE = String(MAX_DEVICE_LENGTH)
_IN_CHANNEL_ID = "if given, the message must be in this channel (else 404)"
_IN_CHANNEL_TYPE = "if given, the message's channel type (else 404)"
_FRESH_ACTION_ID = "idempotency key; absent = a fresh one"


@request
class RevokeReq:
    """``/message/revoke``."""

    message_id: int = Field(_MESSAGE_ID)
    channel_id: str = Field(ChannelId(), default="", doc=_IN_CHANNEL_ID)
    channel_type: int = Field(ChannelType(), default=0, doc=_IN_CHANNEL_TYPE)
    revoker: str = Field(
        Uid(allow_empty=True),
        default="",
        doc="who revoked the message: required with the API key; a user token's user",
    )
    action_id: str = Field(_ACTION_ID, default="", doc=_FRESH_ACTION_ID)
    actor_device: str = Field(_DEVICE, default="")
    important: int = Field(Flag(), default=1, doc="1 (default) = persisted sync-once CMD")


@request
class EditReq:
    """``/message/edit``."""

    message_id: int = Field(_MESSAGE_ID)
    channel_id: str = Field(ChannelId(), default="", doc=_IN_CHANNEL_ID)
    channel_type: int = Field(ChannelType(), default=0, doc=_IN_CHANNEL_TYPE)
    content_edit: dict[str, Any] = Field(
        AnyObject("the edited content: a JSON object with an integer type")
    )
    action_id: str = Field(_ACTION_ID, default="", doc=_FRESH_ACTION_ID)
    actor_uid: str = Field(
        Uid(allow_empty=True), default="", doc="who made the change (recorded); a user token's user"
    )
    actor_device: str = Field(_DEVICE, default="", doc="the actor's device (recorded)")
    important: int = Field(Flag(), default=0, doc="1 = persisted sync-once CMD")


REVOKE = Object.of(RevokeReq)
EDIT = Object.of(EditReq)


async def _users_message(
    ctx: ApiContext, caller: Caller, req: RevokeReq | EditReq
) -> StoredMessage:
    """The channel-log message a user changes: in the named channel (when named) and in a
    channel the user belongs to; 404 otherwise (an outsider learns nothing)."""
    msg = await ctx.store.get_message(req.message_id)
    found = msg is not None and msg.message_seq > 0
    if (
        msg is None
        or not found
        or not names_channel(msg.channel_id, msg.channel_type, req.channel_id, req.channel_type)
    ):
        raise NotFound("no such message", field="message_id")
    if not await ctx.access.is_member(msg.channel_id, msg.channel_type, caller.uid):
        raise NotFound("no such message", field="message_id")
    return msg


async def _may_revoke(ctx: ApiContext, caller: Caller, req: RevokeReq) -> None:
    """A user revokes their own message, or any in a group they administer (403)."""
    msg = await _users_message(ctx, caller, req)
    if msg.from_uid == caller.uid:
        return
    if not is_admin(await ctx.access.role(msg.channel_id, msg.channel_type, caller.uid)):
        raise Forbidden("only the sender or a group admin may revoke a message")


async def _may_edit(ctx: ApiContext, caller: Caller, req: EditReq) -> None:
    """A user edits only their own message, keeping its content type (403 / 400)."""
    msg = await _users_message(ctx, caller, req)
    if msg.from_uid != caller.uid:
        raise Forbidden("only the sender may edit a message")
    original = decode_content(msg.payload) or {}
    if original.get("type") != req.content_edit.get("type"):
        raise BadRequest("an edit keeps the message's content type", field="content_edit")


async def revoke(ctx: ApiContext, request: Request, req: RevokeReq) -> Response:
    """Mark a message revoked (once)."""
    caller = await require_user_or_token(request, ctx.access, req.revoker, field="revoker")
    if caller.business:
        if not req.revoker:
            raise BadRequest("revoker is required with the API key", field="revoker")
        await check_channel(ctx, req.message_id, req.channel_id, req.channel_type)
    else:
        await _may_revoke(ctx, caller, req)
    result = await ctx.ext.revoke(
        req.message_id,
        revoker=caller.uid,
        action_id=req.action_id or new_action_id(),
        actor=Actor(caller.uid, req.actor_device),
        important=bool(req.important),
    )
    return await _answer(ctx, result, caller)


async def edit(ctx: ApiContext, request: Request, req: EditReq) -> Response:
    """Replace a message's displayed content (``content_edit``, ``edited_at``)."""
    caller = await require_user_or_token(request, ctx.access, req.actor_uid, field="actor_uid")
    try:
        check_content(req.content_edit)
    except ValueError:
        msg = "content_edit needs an integer 'type' (spec §4)"
        raise BadRequest(msg, field="content_edit") from None
    if caller.business:
        await check_channel(ctx, req.message_id, req.channel_id, req.channel_type)
    else:
        await _may_edit(ctx, caller, req)
    result = await ctx.ext.edit(
        req.message_id,
        content_edit=req.content_edit,
        action_id=req.action_id or new_action_id(),
        actor=Actor(caller.uid, req.actor_device),
        important=bool(req.important),
    )
    return await _answer(ctx, result, caller)


async def _answer(ctx: ApiContext, result: UpdateResult, caller: Caller) -> Response:
    return answer(result, await caller_row(ctx, result.state, caller))


_ERRORS = (
    (400, "invalid input, or an invalid change (e.g. of a revoked message)", EXT_REJECTION),
    (404, "no such message (in the named channel, or in a channel of the user)"),
    (
        403,
        "a user may not change this message (not the sender, not a group admin)",
        EXT_REJECTION,
    ),
    # an action id is idempotent across every kind of change: a repeat answers as the first
    (409, "a repeated action id whose first attempt was a conflict or stale", EXT_REJECTION),
    (413, "body or a field above its limit, or the state would be", EXT_REJECTION),
)


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """Revoke and edit."""
    return [
        Endpoint(
            "POST",
            "/message/revoke",
            "Revoke a message (the business key, the sender, or a group admin)",
            Access.USER,
            revoke,
            body=REVOKE,
            response=CHANGED,
            tag="extensions",
            errors=_ERRORS,
        ),
        Endpoint(
            "POST",
            "/message/edit",
            "Edit a message's content (the business key or the sender)",
            Access.USER,
            edit,
            body=EDIT,
            response=CHANGED,
            tag="extensions",
            errors=_ERRORS,
        ),
    ]

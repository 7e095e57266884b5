"""The thread view (``docs/conversation.md``, item 1): ``POST /message/replies {login_uid?,
channel_id, channel_type, message_id, after_seq, limit}`` — the messages of the channel that
quote ``message_id``, oldest first after ``after_seq``, rendered like ``/channel/messagesync``
messages (extension, reactions, replies showing the quoted message's state), at most
``history_max_bytes`` of them: ``{"status":200,"data":{"messages":[…],"more":0|1}}``. A member of
the channel only (403); a message that is not in the channel is 404."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.history import MORE_HEADER, AnswerBudget, JsonBytes, reader
from magpie.api.routes._shared import MESSAGE_RESP, SEQ, array_of, data_schema
from magpie.api.routes.sync import EPOCH_HEADER
from magpie.api.schema import (
    ChannelId,
    ChannelType,
    Field,
    Integer,
    IntOrString,
    Object,
    Uid,
    request,
)
from magpie.api.views import messages_with_extra
from magpie.config import Settings
from magpie.errors import NotFound

__all__ = ["endpoints"]

#: Default and largest ``limit``.
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


@request
class RepliesReq:
    """``/message/replies``."""

    login_uid: str = Field(
        Uid(allow_empty=True), default="", doc="the reader; required with the business key"
    )
    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())
    message_id: int = Field(IntOrString(1), doc="the quoted message")
    after_seq: int = Field(SEQ, default=0, doc="paging cursor: the last seq read")
    limit: int = Field(Integer(0, MAX_LIMIT), default=DEFAULT_LIMIT, doc="0 = default")


REPLIES = Object.of(RepliesReq)


async def replies(ctx: ApiContext, request: Request, req: RepliesReq) -> Response:
    """The replies to a message of the channel."""
    caller = await require_user_or_token(request, ctx.access, req.login_uid, field="login_uid")
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    root = await ctx.store.get_message(req.message_id)
    if root is None or (root.channel_id, root.channel_type) != (channel_id, req.channel_type):
        raise NotFound("no such message in this channel", field="message_id")
    limit = req.limit or DEFAULT_LIMIT
    budget = AnswerBudget(ctx.settings.history_max_bytes)
    async with ctx.reads.slot(reader(caller)):
        found = await ctx.store.get_replies(req.message_id, req.after_seq, limit + 1)
        rendered = await messages_with_extra(ctx, found[:limit], caller)
    for item in rendered:
        if not budget.add(item):
            break
    more = int(len(found) > limit or budget.full)
    headers = {MORE_HEADER: str(more), EPOCH_HEADER: ctx.store.epoch}
    body = budget.object({"more": more}, "messages")
    return JsonBytes(b'{"status":200,"data":' + body + b"}", headers=headers)


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The thread route."""
    page = {
        "type": "object",
        "properties": {
            "messages": array_of(MESSAGE_RESP),
            "more": {"type": "integer", "enum": [0, 1]},
        },
    }
    return [
        Endpoint(
            "POST",
            "/message/replies",
            "The replies to a message (its thread)",
            Access.USER,
            replies,
            body=REPLIES,
            response=data_schema(page),
            tag="conversation",
            errors=((404, "no such message in the channel"),),
        )
    ]

"""Read state (``docs/conversation.md``, items 3a and 3b), TangSengDaoDao's endpoints without
``/v1`` (and WuKongIM's ``/conversations/clearUnread``).

* ``POST /message/readed {login_uid?, channel_id, channel_type, message_ids}`` — a member
  reports messages read (the JS SDK's ``messageReadedCallback``); first reads of messages with
  the receipt setting are counted: ``{"status":200,"data":{"applied":[…],"skipped":[…]}}``
  (ids as strings). An id that is not a message of the channel is 404 and nothing changes.
* ``GET /messages/{message_id}/receipt?login_uid=&readed=1|0&after=&limit=`` — the sender (or
  the business key): who read it (``readed=1``, by uid, paged by ``after``) or which current
  members have not (``readed=0``); another member gets 403, an outsider 404.
* ``POST /conversations/clearUnread {uid?, channel_id, channel_type, message_seq}`` — the user
  moves their read position (0: to the last message); the answer is the conversation row.
* ``POST /conversation/extra/sync {uid?, version}`` — the user's conversations changed after
  ``version`` as TangSengDaoDao conversation extras (``browse_to`` = the read position), for
  the JS SDK's ``syncConversationExtrasCallback``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.history import MORE_HEADER, reader
from magpie.api.http import bare, ok_data
from magpie.api.render import conversation_resp
from magpie.api.routes._shared import SEQ, array_of, data_schema, props
from magpie.api.routes.sync import EPOCH_HEADER
from magpie.api.schema import (
    Array,
    ChannelId,
    ChannelType,
    Field,
    IntOrString,
    Object,
    String,
    Uid,
    request,
)
from magpie.config import Settings
from magpie.core.access import Caller
from magpie.core.channels import validate_uid
from magpie.domain.channels import PERSON, fake_channel_id, parties, visible_channel_id
from magpie.errors import BadRequest, Forbidden, NotFound

__all__ = ["endpoints"]

#: Most message ids in one ``/message/readed``.
MAX_READ_IDS = 1000
#: Default and largest ``limit`` of the receipt list.
DEFAULT_RECEIPT_LIMIT, MAX_RECEIPT_LIMIT = 100, 1000

_MESSAGE_ID = IntOrString(1)


@request
class ReadedReq:
    """``/message/readed``."""

    login_uid: str = Field(
        Uid(allow_empty=True), default="", doc="the reader (optional with a user token)"
    )
    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())
    message_ids: Sequence[int] = Field(
        Array(_MESSAGE_ID, MAX_READ_IDS, 1), doc="numbers or decimal strings"
    )


@request
class ReceiptQuery:
    """``GET /messages/{message_id}/receipt``."""

    login_uid: str = Field(
        Uid(allow_empty=True), default="", doc="the sender (optional with a user token)"
    )
    readed: int = Field(IntOrString(0, 1), default=1, doc="1: who read it; 0: who has not")
    after: str = Field(String(128), default="", doc="readed=1: paging cursor, the last uid")
    limit: int = Field(IntOrString(1, MAX_RECEIPT_LIMIT), default=DEFAULT_RECEIPT_LIMIT)


@request
class ClearUnreadReq:
    """``/conversations/clearUnread``."""

    uid: str = Field(Uid(allow_empty=True), default="", doc="the user (optional with a token)")
    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())
    message_seq: int = Field(SEQ, default=0, doc="read up to this seq; 0 = the last message")


@request
class ExtraSyncReq:
    """``/conversation/extra/sync``."""

    uid: str = Field(Uid(allow_empty=True), default="", doc="the user (optional with a token)")
    version: int = Field(SEQ, default=0, doc="only conversations changed after this version")


READED = Object.of(ReadedReq)
RECEIPT = Object.of(ReceiptQuery)
CLEAR_UNREAD = Object.of(ClearUnreadReq)
EXTRA_SYNC = Object.of(ExtraSyncReq)


async def _user(ctx: ApiContext, request: Request, uid: str, field: str) -> Caller:
    """The user acting: a token's user, or the business key naming ``uid``."""
    caller = await require_user_or_token(request, ctx.access, uid, field=field)
    if not caller.uid:
        raise BadRequest(f"{field} is required with the business key", field=field)
    return caller


# --- receipts ------------------------------------------------------------------------------


async def readed(ctx: ApiContext, request: Request, req: ReadedReq) -> Response:
    """Count the caller's first reads of messages with the receipt setting."""
    caller = await _user(ctx, request, req.login_uid, "login_uid")
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    reading = ctx.conv.reading
    messages = await reading.messages_of(channel_id, req.channel_type, req.message_ids)
    outcome = await reading.mark_read(caller.uid, messages)
    data = {
        "applied": [str(i) for i in outcome.applied],
        "skipped": [str(i) for i in outcome.skipped],
    }
    return ok_data(data)


async def receipt(ctx: ApiContext, request: Request, req: ReceiptQuery) -> Response:
    """Who read a message (or who has not): for its sender and the business key."""
    caller = await require_user_or_token(request, ctx.access, req.login_uid, field="login_uid")
    message_id = _MESSAGE_ID.parse(request.path_params.get("message_id"), "message_id")
    msg = await ctx.store.get_message(message_id)
    if msg is None or msg.message_seq <= 0:
        raise NotFound("no such message", field="message_id")
    if not caller.business:
        if not await ctx.access.is_member(msg.channel_id, msg.channel_type, caller.uid):
            raise NotFound("no such message", field="message_id")
        if msg.from_uid != caller.uid:
            raise Forbidden("only the sender sees who read a message")
    reading = ctx.conv.reading
    async with ctx.reads.slot(reader(caller)):
        if req.readed:
            page = await reading.readers(message_id, req.after, req.limit + 1)
            rows = [{"uid": r.uid, "readed_at": r.at_ms} for r in page]
        else:
            done = await reading.all_readers(message_id)
            if msg.channel_type == PERSON:
                members = sorted(set(parties(msg.channel_id)))
            else:
                members = await ctx.store.get_subscribers(msg.channel_id, msg.channel_type)
            waiting = [u for u in members if u != msg.from_uid and u not in done and u > req.after]
            rows = [{"uid": u, "readed_at": 0} for u in waiting[: req.limit + 1]]
    more = int(len(rows) > req.limit)
    body = {"status": 200, "data": rows[: req.limit], "more": more}
    return bare(body, headers={MORE_HEADER: str(more)})


# --- read positions ------------------------------------------------------------------------


def _own_channel(uid: str, channel_id: str, channel_type: int) -> str:
    """The storage id of ``uid``'s conversation named ``channel_id``."""
    if channel_type == PERSON:
        validate_uid(channel_id, "channel_id")
        return fake_channel_id(uid, channel_id)
    return channel_id


async def clear_unread(ctx: ApiContext, request: Request, req: ClearUnreadReq) -> Response:
    """Move the caller's read position of a conversation (their own row: no membership
    needed, a user who left a group may still clear its badge)."""
    caller = await _user(ctx, request, req.uid, "uid")
    channel_id = _own_channel(caller.uid, req.channel_id, req.channel_type)
    row = await ctx.conv.reading.clear_unread(
        caller.uid, channel_id, req.channel_type, req.message_seq
    )
    return ok_data(conversation_resp(row, [], caller.uid))


async def extra_sync(ctx: ApiContext, request: Request, req: ExtraSyncReq) -> Response:
    """The caller's conversations changed after ``version`` as conversation extras."""
    caller = await _user(ctx, request, req.uid, "uid")
    async with ctx.reads.slot(reader(caller)):
        rows = await ctx.store.list_conversations(caller.uid)
    extras = [
        {
            "channel_id": visible_channel_id(r.channel_id, r.channel_type, caller.uid),
            "channel_type": r.channel_type,
            "browse_to": r.readed_to_msg_seq,
            "keep_message_seq": 0,
            "keep_offset_y": 0,
            "draft": "",
            "version": r.version,
        }
        for r in sorted(rows, key=lambda r: r.version)
        if r.version > req.version
    ]
    return bare(extras, headers={EPOCH_HEADER: ctx.store.epoch})


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The read-state routes."""
    ids = array_of({"type": "string"})
    readers = {
        "type": "object",
        "properties": {
            "status": {"type": "integer", "enum": [200]},
            "data": array_of(props(uid="string", readed_at="integer")),
            "more": {"type": "integer", "enum": [0, 1]},
        },
        "required": ["status", "data", "more"],
    }
    extra = props(
        channel_id="string",
        channel_type="integer",
        browse_to="integer",
        keep_message_seq="integer",
        keep_offset_y="integer",
        draft="string",
        version="integer",
    )
    conversation = {"$ref": "#/components/schemas/Conversation"}
    return [
        Endpoint(
            "POST",
            "/message/readed",
            "Report messages read (receipts of messages sent with the receipt setting)",
            Access.USER,
            readed,
            body=READED,
            response=data_schema(
                {"type": "object", "properties": {"applied": ids, "skipped": ids}}
            ),
            tag="conversation",
            errors=((404, "a message id that is not a message of the channel"),),
        ),
        Endpoint(
            "GET",
            "/messages/{message_id}/receipt",
            "Who read a message, or who has not (its sender only)",
            Access.USER,
            receipt,
            query=RECEIPT,
            response=readers,
            tag="conversation",
            errors=((404, "no such message for this caller"), (403, "not the sender")),
        ),
        Endpoint(
            "POST",
            "/conversations/clearUnread",
            "Move the user's read position of a conversation (clears its unread count)",
            Access.USER,
            clear_unread,
            body=CLEAR_UNREAD,
            response=data_schema(conversation),
            tag="conversation",
            errors=((404, "the user has no such conversation"),),
        ),
        Endpoint(
            "POST",
            "/conversation/extra/sync",
            "The user's conversation extras (read positions) changed after a version",
            Access.USER,
            extra_sync,
            body=EXTRA_SYNC,
            response=array_of(extra),
            tag="conversation",
        ),
    ]

"""Search (``docs/conversation.md``, item 8): ``POST /message/search {login_uid?, keyword,
channel_id?, channel_type?, limit, before_message_id?}`` — the caller's readable messages (the
groups they are in now, their person channels; one channel when named, which they must be
able to read: 403) whose text has every word of ``keyword`` as a word prefix, newest first,
rendered like ``/channel/messagesync`` messages. ``{"status":200,"data":{"messages":[…],
"more":0|1,"next":"<before_message_id of the next page>"}}``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.history import MORE_HEADER, AnswerBudget, JsonBytes, reader
from magpie.api.routes._shared import MESSAGE_RESP, array_of, data_schema
from magpie.api.routes.sync import EPOCH_HEADER
from magpie.api.schema import (
    ChannelId,
    ChannelType,
    Field,
    Integer,
    IntOrString,
    Object,
    String,
    Uid,
    request,
)
from magpie.api.views import messages_with_extra
from magpie.config import Settings
from magpie.domain.search import SearchQuery, search_terms
from magpie.errors import BadRequest

__all__ = ["endpoints"]

#: Default and largest ``limit``; longest ``keyword``.
DEFAULT_LIMIT, MAX_LIMIT, MAX_KEYWORD = 20, 100, 256


@request
class SearchReq:
    """``/message/search``."""

    login_uid: str = Field(
        Uid(allow_empty=True), default="", doc="the reader (optional with a user token)"
    )
    keyword: str = Field(String(MAX_KEYWORD, 1), doc="words; each matches as a word prefix")
    channel_id: str = Field(ChannelId(), default="", doc="only this channel (peer uid: person)")
    channel_type: int = Field(ChannelType(), default=0)
    limit: int = Field(Integer(1, MAX_LIMIT), default=DEFAULT_LIMIT)
    before_message_id: int = Field(
        IntOrString(0), default=0, doc="paging cursor: the answer's next; 0 = the newest"
    )


SEARCH = Object.of(SearchReq)


async def search(ctx: ApiContext, request: Request, req: SearchReq) -> Response:
    """The caller's readable messages matching the keyword."""
    caller = await require_user_or_token(request, ctx.access, req.login_uid, field="login_uid")
    if not caller.uid:
        raise BadRequest("login_uid is required with the business key", field="login_uid")
    try:
        terms = search_terms(req.keyword)
    except ValueError as exc:
        raise BadRequest(f"keyword {exc}", field="keyword") from None
    channel_id = ""
    if req.channel_id or req.channel_type:
        if not (req.channel_id and req.channel_type):
            raise BadRequest("name both channel_id and channel_type", field="channel_id")
        channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    query = SearchQuery(terms, channel_id, req.channel_type, req.before_message_id, req.limit + 1)
    budget = AnswerBudget(ctx.settings.history_max_bytes)
    async with ctx.reads.slot(reader(caller)):
        found = await ctx.store.search_messages(caller.uid, query)
        page = found[: req.limit]
        rendered = await messages_with_extra(ctx, page, caller)
    kept = 0
    for item in rendered:
        if not budget.add(item):
            break
        kept += 1
    more = int(len(found) > req.limit or kept < len(page))
    next_cursor = str(page[kept - 1].message_id) if more and kept else ""
    headers = {MORE_HEADER: str(more), EPOCH_HEADER: ctx.store.epoch}
    body = budget.object({"more": more, "next": next_cursor}, "messages")
    return JsonBytes(b'{"status":200,"data":' + body + b"}", headers=headers)


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The search route."""
    page = {
        "type": "object",
        "properties": {
            "more": {"type": "integer", "enum": [0, 1]},
            "next": {"type": "string", "description": "before_message_id of the next page"},
            "messages": array_of(MESSAGE_RESP),
        },
    }
    return [
        Endpoint(
            "POST",
            "/message/search",
            "Search the caller's readable messages by text",
            Access.USER,
            search,
            body=SEARCH,
            response=data_schema(page),
            tag="conversation",
        )
    ]

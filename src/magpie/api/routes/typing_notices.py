"""``POST /message/typing {login_uid?, channel_id, channel_type}`` (``docs/conversation.md``,
*Typing*): an online-only ``typing`` CMD to the channel's other members. A member only (403);
at most one notice per user and channel per ``typing_min_interval_ms`` (429 ``rate_limited``
with ``Retry-After`` otherwise, nothing sent)."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import RateLimited, error_response, ok
from magpie.api.routes._shared import OK
from magpie.api.schema import ChannelId, ChannelType, Field, Object, Uid, request
from magpie.config import Settings
from magpie.errors import BadRequest

__all__ = ["endpoints"]


@request
class TypingReq:
    """``/message/typing``."""

    login_uid: str = Field(
        Uid(allow_empty=True), default="", doc="the typist (optional with a user token)"
    )
    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())


TYPING = Object.of(TypingReq)


async def typing(ctx: ApiContext, request: Request, req: TypingReq) -> Response:
    """Tell the channel's other members that the caller is typing."""
    caller = await require_user_or_token(request, ctx.access, req.login_uid, field="login_uid")
    if not caller.uid:
        raise BadRequest("login_uid is required with the business key", field="login_uid")
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    wait = await ctx.conv.typing.notice(caller.uid, channel_id, req.channel_type)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        refusal = RateLimited(f"typing notices are limited; retry in {seconds} s")
        return error_response(refusal, {"Retry-After": str(seconds)})
    return ok()


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The typing route."""
    return [
        Endpoint(
            "POST",
            "/message/typing",
            "Tell a channel's online members that the caller is typing",
            Access.USER,
            typing,
            body=TYPING,
            response=OK,
            tag="conversation",
            errors=((429, "a notice within typing_min_interval_ms of the previous one"),),
        )
    ]

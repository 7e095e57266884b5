"""Business-server primitives for services built on Magpie (business key).

What a separate business server needs besides sending and ``/message/extra/update``:

* ``POST /message/get {message_id}`` → ``{"status":200,"data":{"message": MessageResp,
  "storage_channel_id": "a@b"|"g1", "extra": ExtRow|null}}`` — one message and its
  extension (business view: storage channel ids);
* ``POST /channel/member {channel_id, channel_type, uid}`` → ``{"status":200,"data":
  {"member": bool}}`` — a person channel by its storage id ``a@b`` (member = a party).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import ok_data
from magpie.api.render import message_resp
from magpie.api.routes._shared import data_schema, props
from magpie.api.schema import ChannelId, ChannelType, Field, IntOrString, Object, Uid, request
from magpie.api.views import business_row
from magpie.config import Settings
from magpie.errors import NotFound

__all__ = ["endpoints"]


@request
class GetReq:
    """``/message/get``."""

    message_id: int = Field(IntOrString(1), doc="number or decimal string")


@request
class MemberReq:
    """``/channel/member``."""

    channel_id: str = Field(ChannelId(), doc="storage id (a@b for person channels)")
    channel_type: int = Field(ChannelType())
    uid: str = Field(Uid())


GET = Object.of(GetReq)
MEMBER = Object.of(MemberReq)


async def get_message(ctx: ApiContext, _: Request, req: GetReq) -> Response:
    """One message and its extension (business view)."""
    msg = await ctx.store.get_message(req.message_id)
    if msg is None:
        raise NotFound("no such message", field="message_id")
    ext = await ctx.ext.get(msg.message_id)
    data = {
        "message": message_resp(msg),
        "storage_channel_id": msg.channel_id,
        "extra": None if ext is None else business_row(ext),
    }
    return ok_data(data)


async def channel_member(ctx: ApiContext, _: Request, req: MemberReq) -> Response:
    """Whether ``uid`` belongs to the channel."""
    member = await ctx.access.is_member(req.channel_id, req.channel_type, req.uid)
    return ok_data({"member": member})


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The business primitives."""
    message = {
        "type": "object",
        "properties": {
            "message": {"$ref": "#/components/schemas/MessageResp"},
            "storage_channel_id": {"type": "string"},
            "extra": {"oneOf": [{"$ref": "#/components/schemas/ExtRow"}, {"type": "null"}]},
        },
    }
    return [
        Endpoint(
            "POST",
            "/message/get",
            "One message and its extension",
            Access.BUSINESS,
            get_message,
            body=GET,
            response=data_schema(message),
            tag="business",
            errors=((404, "no such message"),),
        ),
        Endpoint(
            "POST",
            "/channel/member",
            "Whether a user belongs to a channel",
            Access.BUSINESS,
            channel_member,
            body=MEMBER,
            response=data_schema(props(member="boolean")),
            tag="business",
        ),
    ]

"""Channel endpoints (spec §6): create/update, info, delete, subscribers.

Person channels (type 1) are implicit — their two members are fixed by the id — so these
endpoints refuse channel type 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import ok
from magpie.api.routes._shared import OK, uid_list
from magpie.api.schema import ChannelId, ChannelType, Field, Flag, Object, request
from magpie.config import Settings
from magpie.domain.channels import PERSON
from magpie.errors import BadRequest, NotFound
from magpie.store.interface import ChannelInfo

__all__ = ["endpoints"]

_GROUPISH = ChannelType(exclude=(PERSON,))


@request
class ChannelKey:
    """``/channel/delete``."""

    channel_id: str = Field(ChannelId())
    channel_type: int = Field(_GROUPISH)


@request
class ChannelInfoReq(ChannelKey):
    """``/channel/info``."""

    large: int = Field(Flag(), default=0)
    ban: int = Field(Flag(), default=0, doc="1 = only the API may send")

    def info(self) -> ChannelInfo:
        """The store row."""
        return ChannelInfo(self.channel_id, self.channel_type, bool(self.large), bool(self.ban))


@request
class ChannelReq(ChannelInfoReq):
    """``/channel``: attributes plus the full subscriber list."""

    subscribers: Sequence[str] = Field(uid_list(), default=())


@request
class SubscribersReq(ChannelKey):
    """``/channel/subscriber_remove`` (and the base of ``/channel/subscriber_add``)."""

    temp_subscriber: int = Field(
        Flag(), default=0, doc="temporary subscribers are not supported: must be 0"
    )
    subscribers: Sequence[str] = Field(uid_list())


@request
class SubscriberAddReq(SubscribersReq):
    """``/channel/subscriber_add``."""

    reset: int = Field(Flag(), default=0, doc="1 = replace the subscriber set")


CHANNEL = Object.of(ChannelReq)
CHANNEL_INFO = Object.of(ChannelInfoReq)
CHANNEL_KEY = Object.of(ChannelKey)
SUBSCRIBER_ADD = Object.of(SubscriberAddReq)
SUBSCRIBER_REMOVE = Object.of(SubscribersReq)


async def create_channel(ctx: ApiContext, _: Request, req: ChannelReq) -> Response:
    """Create or update the channel and replace its subscribers (WuKongIM semantics)."""
    await ctx.store.upsert_channel(req.info())
    await ctx.store.add_subscribers(
        req.channel_id, req.channel_type, list(dict.fromkeys(req.subscribers)), reset=True
    )
    return ok()


async def channel_info(ctx: ApiContext, _: Request, req: ChannelInfoReq) -> Response:
    """Create the channel or update its ``large`` / ``ban`` attributes."""
    await ctx.store.upsert_channel(req.info())
    return ok()


async def delete_channel(ctx: ApiContext, _: Request, req: ChannelKey) -> Response:
    """Delete the channel and its subscribers (idempotent; messages stay)."""
    await ctx.store.delete_channel(req.channel_id, req.channel_type)
    return ok()


def _no_temp(req: SubscribersReq) -> None:
    if req.temp_subscriber:
        raise BadRequest("temporary subscribers are not supported", field="temp_subscriber")


async def add_subscribers(ctx: ApiContext, _: Request, req: SubscriberAddReq) -> Response:
    """Add subscribers, creating the channel if needed; ``reset`` replaces the set."""
    _no_temp(req)
    uids = list(dict.fromkeys(req.subscribers))
    await ctx.store.add_subscribers(req.channel_id, req.channel_type, uids, reset=bool(req.reset))
    return ok()


async def remove_subscribers(ctx: ApiContext, _: Request, req: SubscribersReq) -> Response:
    """Remove subscribers of an existing channel (404 for an unknown channel)."""
    _no_temp(req)
    if await ctx.store.get_channel(req.channel_id, req.channel_type) is None:
        raise NotFound("no such channel", field="channel_id")
    await ctx.store.remove_subscribers(req.channel_id, req.channel_type, req.subscribers)
    return ok()


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The channel routes."""
    return [
        Endpoint(
            "POST",
            "/channel",
            "Create or update a channel with its subscribers",
            Access.BUSINESS,
            create_channel,
            body=CHANNEL,
            response=OK,
            tag="channels",
        ),
        Endpoint(
            "POST",
            "/channel/info",
            "Create a channel or set its attributes",
            Access.BUSINESS,
            channel_info,
            body=CHANNEL_INFO,
            response=OK,
            tag="channels",
        ),
        Endpoint(
            "POST",
            "/channel/delete",
            "Delete a channel",
            Access.BUSINESS,
            delete_channel,
            body=CHANNEL_KEY,
            response=OK,
            tag="channels",
        ),
        Endpoint(
            "POST",
            "/channel/subscriber_add",
            "Add subscribers",
            Access.BUSINESS,
            add_subscribers,
            body=SUBSCRIBER_ADD,
            response=OK,
            tag="channels",
        ),
        Endpoint(
            "POST",
            "/channel/subscriber_remove",
            "Remove subscribers",
            Access.BUSINESS,
            remove_subscribers,
            body=SUBSCRIBER_REMOVE,
            response=OK,
            tag="channels",
            errors=((404, "no such channel"),),
        ),
    ]

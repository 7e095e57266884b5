"""Administration endpoints (business key only), used by ``magpie admin``:

* ``GET /admin/users?after=&limit=`` → ``{"users": [{"uid", "devices": [{"device_flag",
  "device_level"}]}], "next": "<uid to pass as after>"|""}`` — who holds tokens (never the
  tokens: only their digests are stored);
* ``GET /admin/channels?after_id=&after_type=&limit=`` → ``{"channels": [ChannelInfo],
  "next": {"after_id", "after_type"}|null}``;
* ``GET /admin/channel?channel_id=&channel_type=`` → the channel and its members;
* ``GET /admin/messages/{message_id}`` → the message, its extension, its operation log
  (oldest first, up to ``ops_limit``) and **this node's** delivery trace: which devices
  acknowledged the message and the CMDs announcing its latest change, when, and which
  members have not been seen acknowledging either (``magpie.gateway.trace``; each node of a
  cluster keeps its own).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import bare
from magpie.api.render import message_resp, op_resp
from magpie.api.schema import (
    Field,
    IntOrString,
    Object,
    String,
    request,
)
from magpie.api.views import business_row
from magpie.config import Settings
from magpie.domain.channels import PERSON, is_fake_id, parties
from magpie.domain.ext import ExtState
from magpie.errors import NotFound
from magpie.gateway.trace import Ack, DeliveryTrace
from magpie.protocol.packets import DeviceFlag
from magpie.store.interface import StoredMessage

__all__ = ["MAX_ADMIN_LIMIT", "endpoints"]

#: Most entries one listing returns.
MAX_ADMIN_LIMIT = 1000
_DEFAULT_LIMIT = 100
_MAX_ID = 128
_MESSAGE_ID = IntOrString(1)


@request
class UsersQuery:
    """``GET /admin/users``."""

    after: str = Field(String(_MAX_ID), default="", doc="the last uid of the previous page")
    limit: int = Field(IntOrString(1, MAX_ADMIN_LIMIT), default=_DEFAULT_LIMIT)
    uid: str = Field(String(_MAX_ID), default="", doc="only this user (404 without tokens)")


@request
class ChannelsQuery:
    """``GET /admin/channels``."""

    after_id: str = Field(String(_MAX_ID), default="", doc="the previous page's last id")
    after_type: int = Field(IntOrString(0, 255), default=0)
    limit: int = Field(IntOrString(1, MAX_ADMIN_LIMIT), default=_DEFAULT_LIMIT)


@request
class ChannelQuery:
    """``GET /admin/channel``."""

    channel_id: str = Field(String(_MAX_ID, 1), doc="storage id (a@b for person channels)")
    channel_type: int = Field(IntOrString(1, 255), doc="1 person, 2 group, …")


@request
class MessageQuery:
    """``GET /admin/messages/{message_id}``."""

    ops_limit: int = Field(IntOrString(0, MAX_ADMIN_LIMIT), default=_DEFAULT_LIMIT)


USERS = Object.of(UsersQuery)
CHANNELS = Object.of(ChannelsQuery)
CHANNEL = Object.of(ChannelQuery)
MESSAGE = Object.of(MessageQuery)


async def list_users(ctx: ApiContext, _: Request, q: UsersQuery) -> Response:
    """Uids holding tokens and their devices, a page at a time (or one named uid)."""
    if q.uid:
        devices = await _devices(ctx, q.uid)
        if not devices:
            raise NotFound("this uid holds no token", field="uid")
        return bare({"users": [{"uid": q.uid, "devices": devices}], "next": ""})
    uids = await ctx.store.list_users(q.after, q.limit)
    users = [{"uid": uid, "devices": await _devices(ctx, uid)} for uid in uids]
    more = len(uids) == q.limit
    return bare({"users": users, "next": uids[-1] if more else ""})


async def _devices(ctx: ApiContext, uid: str) -> list[dict[str, int]]:
    devices = []
    for flag in DeviceFlag:
        row = await ctx.store.get_token(uid, int(flag))
        if row is not None:
            devices.append({"device_flag": row.device_flag, "device_level": row.device_level})
    return devices


async def list_channels(ctx: ApiContext, _: Request, q: ChannelsQuery) -> Response:
    """Channels, a page at a time."""
    found = await ctx.store.list_channels(q.after_id, q.after_type, q.limit)
    channels = [_channel(c.channel_id, c.channel_type, c.large, c.ban) for c in found]
    last = found[-1] if len(found) == q.limit else None
    nxt = None if last is None else {"after_id": last.channel_id, "after_type": last.channel_type}
    return bare({"channels": channels, "next": nxt})


async def show_channel(ctx: ApiContext, _: Request, q: ChannelQuery) -> Response:
    """One channel and its members (a person channel's are its two parties)."""
    members = await _members(ctx, q.channel_id, q.channel_type)
    info = await ctx.store.get_channel(q.channel_id, q.channel_type)
    if info is None and not members:
        raise NotFound("no such channel", field="channel_id")
    large, ban = (info.large, info.ban) if info is not None else (False, False)
    return bare({**_channel(q.channel_id, q.channel_type, large, ban), "members": members})


async def inspect_message(ctx: ApiContext, request: Request, q: MessageQuery) -> Response:
    """The message, its extension, its op log and this node's delivery trace."""
    message_id = _MESSAGE_ID.parse(request.path_params.get("message_id"), "message_id")
    msg = await ctx.store.get_message(message_id)
    if msg is None:
        raise NotFound("no such message", field="message_id")
    ext = await ctx.ext.get(message_id)
    ops = await ctx.ext.ops(message_id, 0, q.ops_limit) if q.ops_limit else []
    members = await _members(ctx, msg.channel_id, msg.channel_type)
    return bare(
        {
            "message": message_resp(msg),
            "storage_channel_id": msg.channel_id,
            "extension": None if ext is None else business_row(ext),
            "ops": [op_resp(op) for op in ops],
            "trace": _trace(ctx, msg, ext, members),
        }
    )


def _channel(channel_id: str, channel_type: int, large: bool, ban: bool) -> dict[str, Any]:
    return {"channel_id": channel_id, "channel_type": channel_type, "large": large, "ban": ban}


async def _members(ctx: ApiContext, channel_id: str, channel_type: int) -> list[str]:
    if channel_type == PERSON and is_fake_id(channel_id, channel_type):
        return sorted(set(parties(channel_id)))
    return await ctx.store.get_subscribers(channel_id, channel_type)


def _ack(ack: Ack) -> dict[str, Any]:
    return {
        "uid": ack.uid,
        "device_flag": ack.device_flag,
        "device_id": ack.device_id,
        "at_ms": ack.at_ms,
        "message_id_str": str(ack.message_id),
    }


def _trace(
    ctx: ApiContext, msg: StoredMessage, ext: ExtState | None, members: list[str]
) -> dict[str, Any]:
    trace: DeliveryTrace = ctx.trace
    acks = trace.acks_of([msg.message_id])
    change: dict[str, Any] | None = None
    change_acks: list[Ack] = []
    if ext is not None and ext.version > 0:
        cmds = trace.cmds_announcing(msg.channel_id, msg.channel_type, ext.extra_version)
        change_acks = trace.acks_of([c.message_id for c in cmds])
        change = {
            "version": ext.version,
            "extra_version": ext.extra_version,
            "cmds": [
                {"message_id_str": str(c.message_id), "extra_version": c.extra_version,
                 "at_ms": c.at_ms}
                for c in cmds
            ],
            "acks": [_ack(a) for a in change_acks],
        }  # fmt: skip
    acked = {a.uid for a in acks}
    told = {a.uid for a in change_acks}
    return {
        "node_id": ctx.bus.node_id,
        "capacity": trace.capacity,
        "kept": len(trace),
        "oldest_ms": trace.oldest_ms,
        "message_acks": [_ack(a) for a in acks],
        "change": change,
        "members": [
            {"uid": uid, "acked": uid in acked, "change_acked": uid in told} for uid in members
        ],
    }


_ACK_SCHEMA = {
    "type": "object",
    "properties": {
        "uid": {"type": "string"},
        "device_flag": {"type": "integer"},
        "device_id": {"type": "string"},
        "at_ms": {"type": "integer"},
        "message_id_str": {"type": "string"},
    },
}
_CHANNEL_PROPS: dict[str, Any] = {
    "channel_id": {"type": "string"},
    "channel_type": {"type": "integer"},
    "large": {"type": "boolean"},
    "ban": {"type": "boolean"},
}
_CHANNEL_SCHEMA = {
    "type": "object",
    "properties": _CHANNEL_PROPS,
    "required": ["channel_id", "channel_type", "large", "ban"],
}


def _responses() -> dict[str, dict[str, Any]]:
    device = {
        "type": "object",
        "properties": {"device_flag": {"type": "integer"}, "device_level": {"type": "integer"}},
    }
    user = {
        "type": "object",
        "properties": {"uid": {"type": "string"}, "devices": {"type": "array", "items": device}},
    }
    after = {
        "type": "object",
        "properties": {"after_id": {"type": "string"}, "after_type": {"type": "integer"}},
    }
    member = {
        "type": "object",
        "properties": {
            "uid": {"type": "string"},
            "acked": {"type": "boolean"},
            "change_acked": {"type": "boolean"},
        },
    }
    trace = {
        "type": "object",
        "description": "this node's delivery trace (each node of a cluster keeps its own)",
        "properties": {
            "node_id": {"type": "integer"},
            "capacity": {"type": "integer"},
            "kept": {"type": "integer"},
            "oldest_ms": {"type": "integer"},
            "message_acks": {"type": "array", "items": _ACK_SCHEMA},
            "change": {"oneOf": [{"type": "object"}, {"type": "null"}]},
            "members": {"type": "array", "items": member},
        },
    }
    return {
        "users": {
            "type": "object",
            "properties": {"users": {"type": "array", "items": user}, "next": {"type": "string"}},
            "required": ["users", "next"],
        },
        "channels": {
            "type": "object",
            "properties": {
                "channels": {"type": "array", "items": _CHANNEL_SCHEMA},
                "next": {"oneOf": [after, {"type": "null"}]},
            },
            "required": ["channels", "next"],
        },
        "channel": {
            "type": "object",
            "properties": {
                **_CHANNEL_PROPS,
                "members": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["channel_id", "channel_type", "members"],
        },
        "message": {
            "type": "object",
            "properties": {
                "message": {"$ref": "#/components/schemas/MessageResp"},
                "storage_channel_id": {"type": "string"},
                "extension": {"oneOf": [{"$ref": "#/components/schemas/ExtRow"}, {"type": "null"}]},
                "ops": {"type": "array", "items": {"type": "object"}},
                "trace": trace,
            },
            "required": ["message", "storage_channel_id", "extension", "ops", "trace"],
        },
    }


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The administration endpoints (``magpie admin``)."""
    r = _responses()
    return [
        Endpoint("GET", "/admin/users", "Users holding tokens (a page)", Access.BUSINESS,
                 list_users, query=USERS, response=r["users"], tag="admin",
                 errors=((404, "the named uid holds no token"),)),
        Endpoint("GET", "/admin/channels", "Channels (a page)", Access.BUSINESS,
                 list_channels, query=CHANNELS, response=r["channels"], tag="admin"),
        Endpoint("GET", "/admin/channel", "One channel and its members", Access.BUSINESS,
                 show_channel, query=CHANNEL, response=r["channel"], tag="admin",
                 errors=((404, "no such channel"),)),
        Endpoint("GET", "/admin/messages/{message_id}",
                 "A message, its extension, op log and this node's delivery trace",
                 Access.BUSINESS, inspect_message, query=MESSAGE, response=r["message"],
                 tag="admin", errors=((404, "no such message"),)),
    ]  # fmt: skip

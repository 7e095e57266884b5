"""Channel members and their roles (``docs/conversation.md``, *Roles*).

* ``POST /channel/subscriber_role {channel_id, channel_type, uids, role}`` — business key:
  give members a role (0 member, 1 owner, 2 admin); a uid that is not a member is 404 and
  nothing changes.
* ``POST /channel/members {login_uid?, channel_id, channel_type}`` — a member (or the business
  key): the members with their roles, a bare array sorted by uid (the JS SDK's
  ``syncSubscribersCallback``).
* ``POST /channel/online {login_uid?, channel_id, channel_type}`` — a member (or the business
  key): each member with ``online`` 0/1 and the device flags connected to this node (presence
  dots; ``/user/onlinestatus`` is the business key's view of any uid).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import bare, ok_data
from magpie.api.routes._shared import array_of, data_schema, props, uid_list
from magpie.api.schema import ChannelId, ChannelType, Field, Integer, Object, Uid, request
from magpie.config import Settings
from magpie.domain.channels import PERSON, parties, visible_channel_id
from magpie.domain.members import MEMBER, ROLES, Member
from magpie.errors import BadRequest, NotFound

__all__ = ["endpoints"]


@request
class RoleReq:
    """``/channel/subscriber_role``."""

    channel_id: str = Field(ChannelId())
    channel_type: int = Field(ChannelType())
    uids: Sequence[str] = Field(uid_list(1), doc="members to give the role")
    role: int = Field(Integer(0, max(ROLES)), doc="0 member, 1 owner, 2 admin")


@request
class MembersReq:
    """``/channel/members``."""

    login_uid: str = Field(
        Uid(allow_empty=True), default="", doc="the reader (optional with a user token)"
    )
    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())


ROLE = Object.of(RoleReq)
MEMBERS = Object.of(MembersReq)


async def set_role(ctx: ApiContext, _: Request, req: RoleReq) -> Response:
    """Give members a role."""
    if req.channel_type == PERSON:
        raise BadRequest("person channels have no roles", field="channel_type")
    changed = await ctx.store.set_role(req.channel_id, req.channel_type, req.uids, req.role)
    if not changed:
        raise NotFound("a uid is not a member of this channel", field="uids")
    return ok_data({"changed": len(set(req.uids))})


async def members(ctx: ApiContext, request: Request, req: MembersReq) -> Response:
    """The channel's members and roles (members only)."""
    caller = await require_user_or_token(request, ctx.access, req.login_uid, field="login_uid")
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    if req.channel_type == PERSON:
        found = [Member(uid, MEMBER) for uid in sorted(set(parties(channel_id)))]
    else:
        found = await ctx.store.get_members(channel_id, req.channel_type)
    shown = visible_channel_id(channel_id, req.channel_type, caller.uid)
    return bare(
        [
            {"uid": m.uid, "role": m.role, "channel_id": shown, "channel_type": req.channel_type}
            for m in found
        ]
    )


async def online(ctx: ApiContext, request: Request, req: MembersReq) -> Response:
    """Which of the channel's members are connected (members only)."""
    caller = await require_user_or_token(request, ctx.access, req.login_uid, field="login_uid")
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    if req.channel_type == PERSON:
        uids = sorted(set(parties(channel_id)))
    else:
        uids = [m.uid for m in await ctx.store.get_members(channel_id, req.channel_type)]
    out = []
    for uid in uids:
        flags = sorted({s.device_flag for s in ctx.gateway.online(uid)})
        out.append({"uid": uid, "online": 1 if flags else 0, "device_flags": flags})
    return bare(out)


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The member routes."""
    member = props(uid="string", role="integer", channel_id="string", channel_type="integer")
    presence = props(uid="string", online="integer", device_flags="array")
    presence["properties"]["device_flags"]["items"] = {"type": "integer"}
    return [
        Endpoint(
            "POST",
            "/channel/subscriber_role",
            "Give channel members a role (0 member, 1 owner, 2 admin)",
            Access.BUSINESS,
            set_role,
            body=ROLE,
            response=data_schema(props(changed="integer")),
            tag="channels",
            errors=((404, "a uid is not a member of the channel"),),
        ),
        Endpoint(
            "POST",
            "/channel/members",
            "A channel's members and their roles",
            Access.USER,
            members,
            body=MEMBERS,
            response=array_of(member),
            tag="channels",
        ),
        Endpoint(
            "POST",
            "/channel/online",
            "Which of a channel's members are online (presence)",
            Access.USER,
            online,
            body=MEMBERS,
            response=array_of(presence),
            tag="channels",
        ),
    ]

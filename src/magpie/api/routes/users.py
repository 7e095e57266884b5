"""User endpoints (spec §6): tokens, device quit, online status, route."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import bare, ok
from magpie.api.presence import MASTER
from magpie.api.routes._shared import (
    DEVICE_FLAG,
    MAX_TOKEN_LENGTH,
    OK,
    array_of,
    props,
    uid_list,
)
from magpie.api.schema import Field, Flag, Integer, Object, String, Uid, request
from magpie.bus.interface import Kick
from magpie.config import Settings
from magpie.core.auth import hash_token
from magpie.core.nodes import pick_node
from magpie.protocol.packets import ReasonCode
from magpie.store.interface import TokenRow

__all__ = ["endpoints"]

#: DISCONNECT reason text WuKongIM sends when a new master login replaces a connection.
KICK_NEW_LOGIN = "login in other device"
#: DISCONNECT reason text for ``/user/device_quit``.
KICK_DEVICE_QUIT = "device quit"
#: ``device_flag`` of ``/user/device_quit`` meaning every device.
ALL_DEVICES = -1


@request
class TokenReq:
    """``/user/token``."""

    uid: str = Field(Uid())
    token: str = Field(String(MAX_TOKEN_LENGTH, 1))
    device_flag: int = Field(DEVICE_FLAG, default=0, doc="0 app, 1 web, 2 pc")
    device_level: int = Field(
        Flag(), default=0, doc="0 slave, 1 master (kicks same-flag connections)"
    )


@request
class DeviceQuitReq:
    """``/user/device_quit``."""

    uid: str = Field(Uid())
    device_flag: int = Field(Integer(ALL_DEVICES, 2), doc="-1 = all")


@request
class RouteQuery:
    """``GET /route?uid=``."""

    uid: str = Field(Uid())


TOKEN = Object.of(TokenReq)
DEVICE_QUIT = Object.of(DeviceQuitReq)
ROUTE = Object.of(RouteQuery)


async def user_token(ctx: ApiContext, _: Request, req: TokenReq) -> Response:
    """Register the token of ``(uid, device_flag)`` (only its digest is stored). A master
    token kicks the connections already open with that flag (DISCONNECT reason 12)."""
    row = TokenRow(req.uid, req.device_flag, hash_token(req.token), req.device_level)
    await ctx.store.set_token(row)
    if req.device_level == MASTER:
        kick = Kick(req.uid, req.device_flag, ReasonCode.CONNECT_KICK, KICK_NEW_LOGIN)
        await ctx.bus.publish(kick)
    return ok()


async def device_quit(ctx: ApiContext, _: Request, req: DeviceQuitReq) -> Response:
    """Forget the token(s) and disconnect the device(s)."""
    flag = None if req.device_flag == ALL_DEVICES else req.device_flag
    await ctx.store.clear_tokens(req.uid, flag)
    await ctx.bus.publish(Kick(req.uid, flag, ReasonCode.CONNECT_KICK, KICK_DEVICE_QUIT))
    return ok()


async def online_status(ctx: ApiContext, _: Request, uids: list[str]) -> Response:
    """One entry per online ``(uid, device_flag)`` of this node."""
    out: list[dict[str, Any]] = []
    for uid in dict.fromkeys(uids):
        flags = sorted({s.device_flag for s in ctx.gateway.online(uid)})
        out.extend({"uid": uid, "device_flag": flag, "online": 1} for flag in flags)
    return bare(out)


async def route(ctx: ApiContext, _: Request, req: RouteQuery) -> Response:
    """Where ``uid`` should connect: a live node of the cluster chosen by rendezvous hashing
    of the uid (every node answers alike), or this node when the live set is unknown."""
    ws_addr, tcp_addr = ctx.ws_addr, ctx.tcp_addr
    if ctx.directory is not None:
        node = pick_node(req.uid, await ctx.directory.live())
        if node is not None:
            ws_addr, tcp_addr = node.ws_url, node.tcp_addr
    wss_addr = ws_addr if ws_addr.startswith("wss://") else ""
    return bare({"tcp_addr": tcp_addr, "ws_addr": ws_addr, "wss_addr": wss_addr})


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The user routes."""
    status = props(uid="string", device_flag="integer", online="integer")
    return [
        Endpoint(
            "POST",
            "/user/token",
            "Register a user token",
            Access.BUSINESS,
            user_token,
            body=TOKEN,
            response=OK,
            tag="users",
        ),
        Endpoint(
            "POST",
            "/user/device_quit",
            "Log a device (or all) out",
            Access.BUSINESS,
            device_quit,
            body=DEVICE_QUIT,
            response=OK,
            tag="users",
        ),
        Endpoint(
            "POST",
            "/user/onlinestatus",
            "Online devices of users",
            Access.BUSINESS,
            online_status,
            body=uid_list(),
            response=array_of(status),
            tag="users",
        ),
        Endpoint(
            "GET",
            "/route",
            "WebSocket and TCP address of the node a user should connect to",
            Access.PUBLIC,
            route,
            query=ROUTE,
            response=props(tcp_addr="string", ws_addr="string", wss_addr="string"),
            tag="users",
        ),
    ]

"""The browser demo: the page, its static files, and a demo login.

* ``GET /`` and ``/static/*`` serve ``magpie/web/static`` when the ``demo_ui`` setting is on.
* ``GET /demo/users`` and ``POST /demo/login`` exist only when ``demo_login`` is on
  (``magpie demo`` turns it on). The login plays the business server: it registers a fresh
  random token for the chosen demo user's web device (device flag 1, slave level, so several
  tabs of one user coexist) exactly as ``/user/token`` would, and tells the page where to
  connect. Only the seeded demo users (:data:`magpie.web.DEMO_USERS`) may log in.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import bare
from magpie.api.routes._shared import array_of, props
from magpie.api.schema import Field, Object, Uid, request
from magpie.config import Settings
from magpie.core.auth import hash_token
from magpie.errors import NotFound
from magpie.protocol.packets import DeviceFlag
from magpie.store.interface import TokenRow
from magpie.web import DEMO_USERS, STATIC_DIR

__all__ = ["UnknownDemoUser", "endpoints", "static_routes"]

#: Device flag of the tokens ``/demo/login`` issues: the page is a web client.
DEMO_DEVICE_FLAG = int(DeviceFlag.WEB)
#: ``device_level`` of those tokens: slave, so a new login kicks nobody.
DEMO_DEVICE_LEVEL = 0
#: Random bytes in an issued token (URL-safe base64, 32 characters).
DEMO_TOKEN_BYTES = 24
_WILDCARD_HOSTS = ("0.0.0.0", "::")  # noqa: S104 - bind addresses, compared only


class UnknownDemoUser(NotFound):
    """``/demo/login`` for a uid that is not a demo user."""

    code = "unknown_demo_user"


@request
class DemoLoginReq:
    """``POST /demo/login``."""

    uid: str = Field(Uid(), doc="one of GET /demo/users")


DEMO_LOGIN = Object.of(DemoLoginReq)


def _display_name(uid: str) -> str:
    return uid[:1].upper() + uid[1:]


async def demo_users(_: ApiContext, __: Request, ___: None) -> Response:
    """The demo users, in seeding order."""
    return bare([{"uid": uid, "name": _display_name(uid)} for uid in DEMO_USERS])


def _ws_addr(ctx: ApiContext, request: Request) -> str:
    """Where the page should connect: the configured address, unless the gateway listens
    on a wildcard address, which a browser cannot dial; then the host the page came from."""
    if ctx.settings.ws_public_url or ctx.settings.host not in _WILDCARD_HOSTS:
        return ctx.ws_addr
    host = request.url.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"ws://{host}:{ctx.gateway.port}"


async def demo_login(ctx: ApiContext, request: Request, req: DemoLoginReq) -> Response:
    """Issue a fresh web token for a demo user (as ``/user/token`` would) and say where to
    connect. Earlier tokens of the user's other device flags stay valid."""
    if req.uid not in DEMO_USERS:
        raise UnknownDemoUser(f"{req.uid!r} is not a demo user", field="uid")
    token = secrets.token_urlsafe(DEMO_TOKEN_BYTES)
    row = TokenRow(req.uid, DEMO_DEVICE_FLAG, hash_token(token), DEMO_DEVICE_LEVEL)
    await ctx.store.set_token(row)
    return bare(
        {
            "uid": req.uid,
            "token": token,
            "device_flag": DEMO_DEVICE_FLAG,
            "ws_addr": _ws_addr(ctx, request),
            "api_base": str(request.base_url).rstrip("/"),
        }
    )


async def index(_: ApiContext, __: Request, ___: None) -> Response:
    """The demo page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def static_routes(settings: Settings) -> list[BaseRoute]:
    """``/static/*`` from ``magpie/web/static`` when ``demo_ui`` is on (not API routes, so not
    in the OpenAPI document)."""
    if not settings.demo_ui:
        return []
    return [Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")]


def _login_response() -> dict[str, Any]:
    kinds = {"uid": "string", "token": "string", "device_flag": "integer"}
    schema = props(**kinds, ws_addr="string", api_base="string")
    schema["description"] = "a fresh token of the user's web device; connect to ws_addr"
    return schema


def endpoints(settings: Settings) -> list[Endpoint[Any]]:
    """``GET /`` (``demo_ui``); ``/demo/users`` and ``/demo/login`` (``demo_login``)."""
    out: list[Endpoint[Any]] = []
    if settings.demo_ui:
        out.append(
            Endpoint(
                "GET",
                "/",
                "The browser demo page",
                Access.PUBLIC,
                index,
                tag="demo",
                raw_response="text/html",
            )
        )
    if settings.demo_login:
        out += [
            Endpoint(
                "GET",
                "/demo/users",
                "The demo users one may log in as",
                Access.PUBLIC,
                demo_users,
                response=array_of(props(uid="string", name="string")),
                tag="demo",
            ),
            Endpoint(
                "POST",
                "/demo/login",
                "Log in as a demo user (demo_login only)",
                Access.PUBLIC,
                demo_login,
                body=DEMO_LOGIN,
                response=_login_response(),
                tag="demo",
                errors=((404, "unknown_demo_user: the uid is not one of GET /demo/users"),),
            ),
        ]
    return out

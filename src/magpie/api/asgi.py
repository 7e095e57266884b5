"""The Starlette application: the route table bound to one :class:`ApiContext`.

Every request goes the same way (:func:`_run`): check the endpoint's access level, parse and
validate the input with its spec (nothing is written before the whole input is valid), call
the handler. Errors become JSON: an :class:`~magpie.errors.ApiError` with its status and stable
code; a store failure 503 ``unavailable``; anything else 500 ``internal_error`` (logged, never
shown). Unknown paths are 404 ``not_found`` and wrong methods 405 ``method_not_allowed``, both
JSON too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from magpie import __version__
from magpie.api.auth import authenticate, require_business
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import (
    InternalError,
    MethodNotAllowed,
    ServiceUnavailable,
    StoreDown,
    error_response,
    read_json,
    refuse_nul,
)
from magpie.api.observe import Observe
from magpie.api.openapi import build_document
from magpie.api.routes import all_endpoints, demo
from magpie.api.routes.ops import OPS_ONLY, openapi_endpoint, ops_access
from magpie.errors import ApiError, NotFound, StoreError, StoreUnavailable

__all__ = ["EscapedPathGuard", "create_api", "endpoints_of"]

log = logging.getLogger(__name__)

Asgi = Callable[[Request], Awaitable[Response]]


def endpoints_of(ctx: ApiContext, part: str = "api") -> list[Endpoint[Any]]:
    """The endpoints ``part`` serves for ``ctx``'s settings: the API port (``api``) — every
    endpoint, ``/openapi.json`` included, unless ``ops_listen`` moves ``/metrics`` and
    ``/openapi.json`` to the ops listener (``ops``). The document describes the API port."""
    split = bool(ctx.settings.ops_listen)
    endpoints = all_endpoints(ctx.settings)
    document: dict[str, Any] = {}
    endpoints.append(openapi_endpoint(document, ops_access(ctx.settings)))
    api = [ep for ep in endpoints if _serves(ep, "api", split)]
    document.update(build_document(api, __version__))
    return api if part == "api" else [ep for ep in endpoints if _serves(ep, part, split)]


def _serves(ep: Endpoint[Any], part: str, split: bool) -> bool:
    """Whether the ``part`` listener (``api`` or ``ops``) serves ``ep``: everything on the API
    port unless ``ops_listen`` splits the operations endpoints off to their own listener."""
    if part == "ops":
        return ep.tag == "ops"
    return not (split and ep.path in OPS_ONLY)


def create_api(ctx: ApiContext, part: str = "api") -> Starlette:
    """The ASGI app serving the HTTP API of one node (``part="ops"``: the operations
    endpoints alone, for the ``ops_listen`` listener)."""
    routes: list[BaseRoute] = [
        Route(ep.path, _bind(ctx, ep), methods=[ep.method]) for ep in endpoints_of(ctx, part)
    ]
    if part == "api":
        routes += demo.static_routes(ctx.settings)  # the demo page's files (not API routes)
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error},
        middleware=[
            Middleware(
                Observe,
                metrics=ctx.metrics.http,
                api_key=ctx.api_key,
                access_log=ctx.settings.access_log,
            ),
            *_cors(ctx.settings.cors_origin_list),
            Middleware(EscapedPathGuard),
        ],
    )
    app.router.redirect_slashes = False  # a POST must not be redirected to another path
    return app


#: What a browser page on an allowed origin may send and read (``cors_origins``).
CORS_METHODS = ("GET", "POST", "PUT", "DELETE")
CORS_HEADERS = ("Authorization", "Content-Type", "token", "X-Request-Id")
CORS_EXPOSED = ("X-Magpie-Epoch", "X-Request-Id", "Retry-After")
#: Seconds a browser may cache a preflight answer.
CORS_MAX_AGE = 600


def _cors(origins: tuple[str, ...]) -> list[Middleware]:
    """Starlette's CORS middleware for ``origins`` (none when the list is empty). Credentials
    travel in the ``Authorization`` header, never in cookies, so credentialed CORS is off."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_HEADERS),
            expose_headers=list(CORS_EXPOSED),
            allow_credentials=False,
            max_age=CORS_MAX_AGE,
        )
    ]


class EscapedPathGuard:
    """ASGI middleware: 404 for a request whose raw path holds a percent-escape (see the
    module docstring), before any route is chosen."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse escaped paths; pass everything else on."""
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if isinstance(raw, bytes) and b"%" in raw:
            refusal = NotFound("no such endpoint: the path holds a percent-escape")
            await error_response(refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _input(ctx: ApiContext, ep: Endpoint[Any], request: Request) -> Any:
    if ep.body is not None:
        return ep.body.parse(await read_json(request, ctx.body_limit), "")
    if ep.query is not None:
        query = dict(request.query_params)
        refuse_nul(query)
        return ep.query.parse(query, "")
    return None


async def _run(ctx: ApiContext, ep: Endpoint[Any], request: Request) -> Response:
    if ep.access is Access.BUSINESS:
        require_business(request, ctx.access)
    elif ep.access is Access.USER:
        await authenticate(request, ctx.access)  # 401 before 400 (auth.py)
    return await ep.handler(ctx, request, await _input(ctx, ep, request))


def _bind(ctx: ApiContext, ep: Endpoint[Any]) -> Asgi:
    async def endpoint(request: Request) -> Response:
        try:
            return await _run(ctx, ep, request)
        except ApiError as exc:
            return error_response(exc)
        except StoreUnavailable as exc:
            log.warning("%s %s: %s", ep.method, ep.path, exc.message)
            return error_response(StoreDown("the store is unavailable; try again"))
        except StoreError:
            log.exception("%s %s: store failure", ep.method, ep.path)
            return error_response(ServiceUnavailable("the store is unavailable"))
        except Exception:
            log.exception("%s %s failed", ep.method, ep.path)
            return error_response(InternalError("internal error"))

    endpoint.__name__ = ep.handler.__name__
    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    """Router-level errors (unknown path, wrong method) as JSON."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return error_response(NotFound(f"no such endpoint: {request.url.path}"))
    if status == 405:
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        return error_response(MethodNotAllowed("method not allowed"), headers)
    return error_response(InternalError("request failed"))

"""Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import ServiceUnavailable, ok
from magpie.api.routes._shared import OK
from magpie.config import Settings

__all__ = ["OPS_ONLY", "endpoints", "openapi_endpoint", "ops_access"]

#: The paths that move to the separate ops listener when ``ops_listen`` is set (``/health``
#: and ``/ready`` are served on both).
OPS_ONLY = frozenset({"/metrics", "/openapi.json"})


async def health(_: ApiContext, __: Request, ___: None) -> Response:
    """200 whenever the process serves HTTP."""
    return ok()


async def ready(ctx: ApiContext, _: Request, __: None) -> Response:
    """200 when the store answers and the gateway listens, with each dependency's state
    (``degraded`` when the bus is down: local deliveries go on, other nodes' wait for it);
    503 naming what is not ready otherwise."""
    states = await ctx.readiness()
    problems = [
        f"{name}: {state}"
        for name, state in states.items()
        if name != "bus" and state not in ("up", "listening")
    ]
    if problems:
        raise ServiceUnavailable("not ready: " + "; ".join(problems), **states)
    return JSONResponse({"status": 200, **states, "degraded": states["bus"] == "down"})


async def metrics(ctx: ApiContext, _: Request, __: None) -> Response:
    """The node's metrics in the Prometheus text format."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


#: The answer of a ready node.
READY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "integer", "enum": [200]},
        "store": {"type": "string", "enum": ["up"]},
        "gateway": {"type": "string", "enum": ["listening"]},
        "bus": {"type": "string", "enum": ["up", "down", "in-process"]},
        "degraded": {"type": "boolean"},
    },
    "required": ["status", "store", "gateway", "bus", "degraded"],
}


#: The answer of a node that is not ready: the error, and each dependency's state.
NOT_READY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "integer", "enum": [503]},
        "code": {"type": "string", "enum": ["unavailable"]},
        "msg": {"type": "string"},
        "store": {"type": "string", "enum": ["up", "unreachable", "not open"]},
        "gateway": {"type": "string", "enum": ["listening", "not listening"]},
        "bus": {"type": "string", "enum": ["up", "down", "in-process"]},
    },
    "required": ["status", "code", "msg", "store", "gateway", "bus"],
}


def ops_access(settings: Settings) -> Access:
    """Who may read ``/metrics`` and ``/openapi.json``: anybody with ``ops_public``, else
    the business key (their numbers and the route list are not for everybody)."""
    return Access.PUBLIC if settings.ops_public else Access.BUSINESS


def openapi_endpoint(document: dict[str, Any], access: Access) -> Endpoint[None]:
    """``GET /openapi.json`` serving ``document`` (built once from the route table)."""

    async def openapi(_: ApiContext, __: Request, ___: None) -> Response:
        return JSONResponse(document)

    return Endpoint(
        "GET",
        "/openapi.json",
        "This document",
        access,
        openapi,
        response={"type": "object"},
        tag="ops",
    )


def endpoints(settings: Settings) -> list[Endpoint[Any]]:
    """Liveness, readiness and metrics."""
    return [
        Endpoint("GET", "/health", "Liveness", Access.PUBLIC, health, response=OK, tag="ops"),
        Endpoint(
            "GET",
            "/ready",
            "Readiness: each dependency's state; 503 when the store or the gateway is not "
            "ready, 200 and degraded when only the bus is down",
            Access.PUBLIC,
            ready,
            response=READY,
            tag="ops",
            errors=((503, "unavailable: the store or the gateway is not ready", NOT_READY),),
        ),
        Endpoint(
            "GET",
            "/metrics",
            "Prometheus metrics",
            ops_access(settings),
            metrics,
            tag="ops",
            raw_response=CONTENT_TYPE_LATEST,
        ),
    ]

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
    """200 when the store is open, the gateway listens and the bus reaches the other nodes;
    503 naming what is not ready otherwise."""
    problems = ctx.not_ready()
    if problems:
        raise ServiceUnavailable("not ready: " + "; ".join(problems))
    return ok()


async def metrics(ctx: ApiContext, _: Request, __: None) -> Response:
    """The node's metrics in the Prometheus text format."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


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
            "Readiness (store open, gateway listening, bus connected)",
            Access.PUBLIC,
            ready,
            response=OK,
            tag="ops",
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

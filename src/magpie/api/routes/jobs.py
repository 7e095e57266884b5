"""Durable jobs for the operator (business key): dead letters, and sending them again.

A job is dead when its last attempt failed (a webhook the receiver refused ``webhook_attempts``
times, a card deadline that kept failing): it stays in the store, is counted in
``magpie_jobs_stored{state="dead"}``, and is listed here until it is revived or done.

* ``GET /jobs/dead?kind=webhook&after_job_id=0&limit=100`` →
  ``{"status":200,"data":[Job…],"more":0|1}``, ascending by ``job_id`` (``more``: a full page,
  ask again after its last ``job_id``);
* ``POST /jobs/dead/retry {"job_ids":[…]}`` → ``{"status":200,"data":{"revived":n}}``: those
  dead jobs become pending again with their attempts reset (ids of jobs that are not dead
  are ignored); they run at once, on whichever node claims them first.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import ok_data
from magpie.api.routes._shared import data_schema, props
from magpie.api.schema import Array, Field, IntOrString, Object, String, request
from magpie.config import Settings
from magpie.domain.jobs import MAX_KIND_LENGTH, Job

__all__ = ["MAX_DEAD_LIMIT", "MAX_REVIVE", "endpoints"]

#: Most dead jobs one listing returns, and the default.
MAX_DEAD_LIMIT = 500
DEFAULT_DEAD_LIMIT = 100
#: Most job ids one retry names.
MAX_REVIVE = 1000


@request
class DeadQuery:
    """``GET /jobs/dead``."""

    kind: str = Field(
        String(MAX_KIND_LENGTH), default="", doc="one kind (webhook, card.deadline); empty: all"
    )
    after_job_id: int = Field(IntOrString(0), default=0, doc="paging cursor: the last job_id")
    limit: int = Field(IntOrString(1, MAX_DEAD_LIMIT), default=DEFAULT_DEAD_LIMIT)


@request
class ReviveReq:
    """``POST /jobs/dead/retry``."""

    job_ids: list[int] = Field(Array(IntOrString(1), MAX_REVIVE, 1))


DEAD = Object.of(DeadQuery)
REVIVE = Object.of(ReviveReq)

_JOB: dict[str, Any] = {
    "type": "object",
    "properties": {
        "job_id": {"type": "integer"},
        "kind": {"type": "string"},
        "key": {"type": "string"},
        "payload": {"type": "object", "description": "what the job does (webhook: its event)"},
        "attempts": {"type": "integer"},
        "last_error": {"type": "string"},
        "created_at_ms": {"type": "integer"},
    },
    "required": ["job_id", "kind", "key", "payload", "attempts", "last_error", "created_at_ms"],
}


def job_resp(job: Job) -> dict[str, Any]:
    """One dead job as the API shows it."""
    return {
        "job_id": job.job_id,
        "kind": job.kind,
        "key": job.key,
        "payload": dict(job.payload),
        "attempts": job.attempts,
        "last_error": job.last_error,
        "created_at_ms": job.created_at_ms,
    }


async def list_dead(ctx: ApiContext, _: Request, q: DeadQuery) -> Response:
    """Dead jobs, ascending by id, one page."""
    found = await ctx.store.list_jobs(
        q.kind or None, dead=True, after_job_id=q.after_job_id, limit=q.limit
    )
    more = int(len(found) == q.limit)
    return JSONResponse({"status": 200, "data": [job_resp(j) for j in found], "more": more})


async def revive(ctx: ApiContext, _: Request, req: ReviveReq) -> Response:
    """Dead jobs become pending again, due now."""
    now_ms = time.time_ns() // 1_000_000
    revived = await ctx.store.revive_jobs(sorted(set(req.job_ids)), due_at_ms=now_ms)
    return ok_data({"revived": revived})


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The dead-letter endpoints."""
    listing = {**data_schema({"type": "array", "items": _JOB})}
    listing["properties"] = {**listing["properties"], "more": {"type": "integer", "enum": [0, 1]}}
    return [
        Endpoint(
            "GET",
            "/jobs/dead",
            "Durable jobs whose last attempt failed (dead letters)",
            Access.BUSINESS,
            list_dead,
            query=DEAD,
            response=listing,
            tag="ops",
        ),
        Endpoint(
            "POST",
            "/jobs/dead/retry",
            "Run dead jobs again (attempts reset)",
            Access.BUSINESS,
            revive,
            body=REVIVE,
            response=data_schema(props(revived="integer")),
            tag="ops",
        ),
    ]

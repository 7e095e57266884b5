"""Message-extension endpoints (ARCHITECTURE I6, I7; spec §5).

Business server only (API key): ``/message/extra/update`` (set ``status`` and/or
merge-patch ``extra``, by compare-and-set or last-writer-wins) and ``/message/extra/ops`` (the
operation log); answers carry the raw extension (:func:`magpie.api.views.business_row`).
``/message/revoke`` and ``/message/edit``, which users may call too, are in
:mod:`magpie.api.routes.message_edits`. Clients sync extensions with ``/message/extra/sync``
(:mod:`magpie.api.routes.sync`).

Answers to a change: 200 ``{"status":200,"data":<row>,"op":<log row>,"duplicate":bool}`` when
applied (``duplicate``: the action id was seen before and nothing changed); a rejection is
409 ``conflict`` (CAS lost) or ``stale`` (older LWW write), 403 ``forbidden``, 400 ``invalid``
or 413 ``too_large`` — each with ``current`` (the row), ``updated_by``, ``updated_at`` (HLC)
and ``updated_at_ms``, ``last_op`` (the last applied change), ``op`` and ``duplicate``. A
repeat of a rejected action id gets the same rejection.

Message ids are accepted as numbers or decimal strings. When a change names
``channel_id``/``channel_type``, the message must be in that channel (404 otherwise; a person
channel may be named by its fake id or either party's uid).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.history import (
    MORE_HEADER,
    AnswerBudget,
    JsonBytes,
    op_row_bytes,
    page_rows,
    with_more,
)
from magpie.api.openapi import EXT_REJECTION
from magpie.api.render import op_resp
from magpie.api.routes._changes import CHANGED, answer, check_channel
from magpie.api.routes._shared import SEQ, array_of, data_schema
from magpie.api.schema import (
    AnyObject,
    ChannelId,
    ChannelType,
    Choice,
    Field,
    Flag,
    Integer,
    IntOrString,
    Object,
    String,
    Uid,
    request,
)
from magpie.api.views import business_row
from magpie.config import Settings
from magpie.domain.ext import Actor
from magpie.errors import BadRequest
from magpie.ext.changes import MAX_STATUS_LENGTH, FieldChange
from magpie.ext.rejection import Invalid, Stale
from magpie.ext.service import MAX_ACTION_ID_LENGTH

__all__ = ["Invalid", "Stale", "endpoints"]

#: Default and largest ``limit`` of ``/message/extra/ops``.
DEFAULT_OPS_LIMIT = 100
MAX_OPS_LIMIT = 1000
#: Longest ``actor_device``.
MAX_DEVICE_LENGTH = 128

_MESSAGE_ID = IntOrString(1)
_ROW: dict[str, Any] = {"$ref": "#/components/schemas/ExtRow"}
_OP: dict[str, Any] = {"$ref": "#/components/schemas/ExtOp"}


# --- request bodies ------------------------------------------------------------------------


_ACTION_ID = String(MAX_ACTION_ID_LENGTH, 1)
_DEVICE = String(MAX_DEVICE_LENGTH)
_IN_CHANNEL_ID = "if given, the message must be in this channel (else 404)"
_IN_CHANNEL_TYPE = "if given, the message's channel type (else 404)"
_FRESH_ACTION_ID = "idempotency key; absent = a fresh one"


@request
class UpdateReq:
    """``/message/extra/update``."""

    message_id: int = Field(_MESSAGE_ID, doc="a number or a decimal string")
    channel_id: str = Field(ChannelId(), default="", doc=_IN_CHANNEL_ID)
    channel_type: int = Field(ChannelType(), default=0, doc=_IN_CHANNEL_TYPE)
    status: str | None = Field(
        String(MAX_STATUS_LENGTH), default=None, doc="the new business status"
    )
    extra_patch: dict[str, Any] | None = Field(
        AnyObject("JSON merge patch (RFC 7396) of extra"), default=None
    )
    readed_count: int | None = Field(Integer(0, 2**31 - 1), default=None)
    mode: str = Field(
        Choice(("cas", "lww")), default="cas", doc="compare-and-set or last-writer-wins"
    )
    expected_version: int | None = Field(
        SEQ, default=None, doc="cas: the version the change is based on"
    )
    updated_at: int | None = Field(
        IntOrString(1), default=None, doc="lww: the change's HLC value; absent = now"
    )
    action_id: str = Field(_ACTION_ID, doc="idempotency key: a repeat changes nothing")
    actor_uid: str = Field(Uid(allow_empty=True), default="", doc="who made the change (recorded)")
    actor_device: str = Field(_DEVICE, default="", doc="the actor's device (recorded)")
    important: int = Field(Flag(), default=0, doc="1 = persisted sync-once CMD (offline queues)")


@request
class OpsReq:
    """``/message/extra/ops``."""

    message_id: int = Field(_MESSAGE_ID)
    after_op_id: int = Field(SEQ, default=0, doc="paging cursor: the last op_id read")
    limit: int = Field(Integer(1, MAX_OPS_LIMIT), default=DEFAULT_OPS_LIMIT)


UPDATE = Object.of(UpdateReq)
OPS = Object.of(OpsReq)


# --- handlers ------------------------------------------------------------------------------


async def update(ctx: ApiContext, _: Request, req: UpdateReq) -> Response:
    """Set ``status`` / merge-patch ``extra`` / set ``readed_count`` by CAS or LWW."""
    await check_channel(ctx, req.message_id, req.channel_id, req.channel_type)
    change = FieldChange(req.status, req.extra_patch, req.readed_count)
    actor = Actor(req.actor_uid, req.actor_device)
    if req.mode == "lww":
        result = await ctx.ext.lww_update(
            req.message_id,
            change,
            updated_at=req.updated_at,
            action_id=req.action_id,
            actor=actor,
            important=bool(req.important),
        )
        return answer(result, business_row(result.state))
    if req.expected_version is None:
        raise BadRequest("expected_version is required in cas mode", field="expected_version")
    result = await ctx.ext.cas_update(
        req.message_id,
        change,
        expected_version=req.expected_version,
        action_id=req.action_id,
        actor=actor,
        important=bool(req.important),
    )
    return answer(result, business_row(result.state))


async def ops(ctx: ApiContext, _: Request, req: OpsReq) -> Response:
    """The message's operation log after ``after_op_id``, oldest first, at most
    ``history_max_bytes`` of it (``more``: 1 when it stopped early)."""
    budget = AnswerBudget(ctx.settings.history_max_bytes)
    after, taken = req.after_op_id, 0
    async with ctx.reads.slot(None):
        while taken < req.limit and not budget.full:
            want = page_rows(ctx.settings, op_row_bytes(ctx.settings), req.limit - taken)
            rows = await ctx.ext.ops(req.message_id, after, want)
            taken += sum(1 for op in rows if budget.add(op_resp(op)))
            if len(rows) < want:
                break
            after = rows[-1].op_id
    if budget.full:
        ctx.metrics.history_truncated.labels(endpoint="/message/extra/ops").inc()
    more = int(budget.full)
    body = budget.object({"status": 200, "more": more}, "data")
    return JsonBytes(body, headers={MORE_HEADER: str(more)})


# --- the route table -----------------------------------------------------------------------

_CHANGE_ERRORS = (
    (400, "invalid input, or an invalid change (e.g. of a revoked message)", EXT_REJECTION),
    (404, "no such message (in the named channel)"),
    # an action id is idempotent across every kind of change: a repeat answers as the first
    (403, "a repeated action id whose first attempt was refused as forbidden", EXT_REJECTION),
    (
        409,
        "conflict (CAS lost) or stale (older LWW write); the body has the current state",
        EXT_REJECTION,
    ),
    (413, "body or a field above its limit, or the state would be", EXT_REJECTION),
)


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The business extension routes."""
    return [
        Endpoint(
            "POST",
            "/message/extra/update",
            "Change a message's status / extra (CAS or LWW)",
            Access.BUSINESS,
            update,
            body=UPDATE,
            response=CHANGED,
            tag="extensions",
            errors=_CHANGE_ERRORS,
        ),
        Endpoint(
            "POST",
            "/message/extra/ops",
            "A message's operation log",
            Access.BUSINESS,
            ops,
            body=OPS,
            response=with_more(data_schema(array_of(_OP))),
            tag="extensions",
        ),
    ]

"""Business-server primitives for services built on Magpie (business key).

What a separate business server needs besides sending and ``/message/extra/update`` — the
card service's HTTP adapter (``magpie.cards.http_port``) uses exactly these:

* ``POST /message/get {message_id}`` → ``{"status":200,"data":{"message": MessageResp,
  "storage_channel_id": "a@b"|"g1", "extra": ExtRow|null}}`` — one message and its
  extension (business view: storage channel ids);
* ``POST /channel/member {channel_id, channel_type, uid}`` → ``{"status":200,"data":
  {"member": bool}}`` — a person channel by its storage id ``a@b`` (member = a party);
* ``POST /message/extra/commit`` — record a decision the business server made on the
  version it read: one transaction that is idempotent by ``action_id`` (a repeat returns the
  original answer), then compare-and-set on ``expected_version`` (a miss is *conflict* with
  code ``cas_conflict``: read again, decide again, retry under a new action id), then either
  replaces ``status`` / the whole ``extra`` (``outcome: applied``, checked against the
  extension limits) or records the business rejection (``forbidden`` / ``invalid`` /
  ``conflict`` with ``code`` and ``detail``). ``operation`` and ``log`` are what the
  operation log shows. Answers are those of ``/message/extra/update``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import ok_data
from magpie.api.render import ext_row, message_resp
from magpie.api.routes._shared import SEQ, data_schema, props
from magpie.api.routes.ext import _answer as answer_change  # the shared answer shapes
from magpie.api.schema import (
    AnyObject,
    ChannelId,
    ChannelType,
    Choice,
    F,
    Flag,
    IntOrString,
    Object,
    String,
    Uid,
)
from magpie.config import Settings
from magpie.core.channels import CHANNEL_PERSON, parties
from magpie.errors import NotFound
from magpie.ext.changes import MAX_STATUS_LENGTH
from magpie.ext.model import Actor, Decision, ExtState, Mutate, Result
from magpie.ext.patch import PatchLimits, check_patch, document_problem
from magpie.ext.service import MAX_ACTION_ID_LENGTH

__all__ = ["CAS_CONFLICT", "endpoints"]

#: The rejection code of a commit whose ``expected_version`` is not the current version.
CAS_CONFLICT = "cas_conflict"
#: Longest operation name, rejection code, rejection detail and device.
MAX_OPERATION, MAX_CODE, MAX_DETAIL, MAX_DEVICE = 64, 64, 1000, 128
_OUTCOMES = ("applied", "forbidden", "invalid", "conflict")


@dataclass(frozen=True, slots=True)
class GetReq:
    """``/message/get``."""

    message_id: int


@dataclass(frozen=True, slots=True)
class MemberReq:
    """``/channel/member``."""

    channel_id: str
    channel_type: int
    uid: str


@dataclass(frozen=True, slots=True)
class CommitReq:
    """``/message/extra/commit``."""

    message_id: int
    action_id: str
    expected_version: int
    outcome: str
    status: str | None
    extra: dict[str, Any] | None
    code: str
    detail: str
    base_version: int | None
    operation: str
    log: dict[str, Any] | None
    actor_uid: str
    actor_device: str
    important: int


GET = Object(GetReq, [F("message_id", IntOrString(1), description="number or decimal string")])
MEMBER = Object(
    MemberReq,
    [
        F("channel_id", ChannelId(), description="storage id (a@b for person channels)"),
        F("channel_type", ChannelType()),
        F("uid", Uid()),
    ],
)
COMMIT = Object(
    CommitReq,
    [
        F("message_id", IntOrString(1)),
        F("action_id", String(MAX_ACTION_ID_LENGTH, 1), description="idempotency key"),
        F("expected_version", SEQ, description="the version the decision was made on"),
        F("outcome", Choice(_OUTCOMES), "applied", "applied, or the rejection to record"),
        F("status", String(MAX_STATUS_LENGTH), None, "applied: the new status"),
        F("extra", AnyObject("applied: the whole new extra (replaces it)"), None),
        F("code", String(MAX_CODE), "", "rejection: a stable reason code"),
        F("detail", String(MAX_DETAIL), "", "rejection: the reason, for the log"),
        F("base_version", SEQ, None, "recorded in the log (default: expected_version)"),
        F("operation", String(MAX_OPERATION, 1), "commit", "the operation-log name"),
        F("log", AnyObject("what the operation log records as the patch"), None),
        F("actor_uid", Uid(allow_empty=True), ""),
        F("actor_device", String(MAX_DEVICE), ""),
        F("important", Flag(), 0, "1 = persisted sync-once CMD"),
    ],
)


async def get_message(ctx: ApiContext, _: Request, req: GetReq) -> Response:
    """One message and its extension (business view)."""
    msg = await ctx.store.get_message(req.message_id)
    if msg is None:
        raise NotFound("no such message", field="message_id")
    ext = await ctx.ext.get(msg.message_id)
    data = {
        "message": message_resp(msg),
        "storage_channel_id": msg.channel_id,
        "extra": None if ext is None else ext_row(ext, None),
    }
    return ok_data(data)


async def channel_member(ctx: ApiContext, _: Request, req: MemberReq) -> Response:
    """Whether ``uid`` belongs to the channel."""
    if req.channel_type == CHANNEL_PERSON:
        member = "@" in req.channel_id and req.uid in parties(req.channel_id)
    else:
        member = await ctx.store.is_subscriber(req.channel_id, req.channel_type, req.uid)
    return ok_data({"member": member})


def _commit(req: CommitReq, limits: PatchLimits) -> Mutate:
    """The decision: CAS on ``expected_version``, then the caller's outcome."""
    base = req.expected_version if req.base_version is None else req.base_version

    def mutate(state: ExtState) -> Decision:
        if state.version != req.expected_version:
            detail = f"expected version {req.expected_version}, the current is {state.version}"
            return Decision.rejected(Result.CONFLICT, detail, code=CAS_CONFLICT, base_version=base)
        if req.outcome != "applied":
            code = req.code or req.outcome
            return Decision.rejected(Result(req.outcome), req.detail, code=code, base_version=base)
        extra = state.extra if req.extra is None else req.extra
        problem = document_problem(extra, limits)
        if problem is not None:
            return Decision.rejected(Result.INVALID, problem[1], code=problem[0], base_version=base)
        status = state.status if req.status is None else req.status
        return Decision.applied(
            replace(state.fields, status=status, extra=extra), base_version=base
        )

    return mutate


async def commit(ctx: ApiContext, _: Request, req: CommitReq) -> Response:
    """Record a decision made on ``expected_version`` (see the module docstring)."""
    log = check_patch(req.log or {}, ctx.ext.limits, "log")
    result = await ctx.ext.update(
        req.message_id,
        mutate=_commit(req, ctx.ext.limits),
        action_id=req.action_id,
        actor=Actor(req.actor_uid, req.actor_device),
        operation=req.operation,
        patch=log,
        important=bool(req.important),
    )
    return answer_change(result)


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The business primitives."""
    message = {
        "type": "object",
        "properties": {
            "message": {"$ref": "#/components/schemas/MessageResp"},
            "storage_channel_id": {"type": "string"},
            "extra": {"oneOf": [{"$ref": "#/components/schemas/ExtRow"}, {"type": "null"}]},
        },
    }
    changed = data_schema({"$ref": "#/components/schemas/ExtRow"})
    return [
        Endpoint(
            "POST",
            "/message/get",
            "One message and its extension",
            Access.BUSINESS,
            get_message,
            body=GET,
            response=data_schema(message),
            tag="business",
            errors=((404, "no such message"),),
        ),
        Endpoint(
            "POST",
            "/channel/member",
            "Whether a user belongs to a channel",
            Access.BUSINESS,
            channel_member,
            body=MEMBER,
            response=data_schema(props(member="boolean")),
            tag="business",
        ),
        Endpoint(
            "POST",
            "/message/extra/commit",
            "Record a decision made on a version (CAS, idempotent)",
            Access.BUSINESS,
            commit,
            body=COMMIT,
            response=changed,
            tag="business",
            errors=((404, "no such message"), (409, "cas_conflict or a business conflict")),
        ),
    ]

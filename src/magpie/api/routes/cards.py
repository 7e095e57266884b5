"""Card endpoints (ARCHITECTURE: cards; shapes in ``docs/cards.md``).

* ``POST /cards`` — create a card: a user (member; user token) or the business server
  (business key, naming the creator ``uid``). Answer: the creator's projection plus
  ``message_seq`` and ``client_msg_no``; idempotent by ``client_msg_no``.
* ``GET /cards/{message_id}`` — the asking user's projection (members only: anybody else
  gets 404, as for a message that is no card).
* ``POST /cards/{message_id}/actions`` ``{action, params, action_id, base_version,
  confirm?}`` — 200: the actor's projection (plus ``action_id``, ``duplicate``, ``op_id``);
  409 ``{winner, at, current, can_confirm, reason}``; 403 / 400 / 413 with ``current``
  (members only; a non-member gets 404 without data and nothing is logged).
* ``GET /cards/{message_id}/ops`` (alias ``/history``) — the card's history panel:
  ``{"status": 200, "data": [op, ...]}``, oldest first (members only, else 404).
* ``GET /cards/{message_id}/records?after=&limit=`` — a page of the card's per-user records
  (a named vote's ballots, a survey's responses for its owners), projected for the caller,
  ascending by uid: ``{visible, records, next}`` (members only, else 404).

The projection answers are bare JSON objects (as the Python SDK's ``Cards.act`` and the web
UI read them): ``status`` there is the *card's* status string. Each endpoint takes a user
token (its user, or the body's / query's ``uid`` that the token must belong to) or the
business key acting for ``uid``.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.history import (
    MORE_HEADER,
    AnswerBudget,
    JsonBytes,
    op_row_bytes,
    page_rows,
    reader,
    with_more,
)
from magpie.api.http import bare
from magpie.api.openapi import (
    CARD_DOCUMENT,
    CARD_PROJECTION,
    CARD_REFUSAL,
    card_projection_with,
)
from magpie.api.routes._shared import SEQ, array_of, data_schema
from magpie.api.schema import (
    AnyObject,
    ChannelId,
    ChannelType,
    Field,
    Flag,
    IntOrString,
    Object,
    String,
    Uid,
    request,
)
from magpie.cards import ActionRequest, CardService, CreateRequest
from magpie.cards.registered import REGISTRATION_SCHEMA
from magpie.config import Settings
from magpie.core.access import Caller
from magpie.errors import BadRequest, NotFound

__all__ = ["endpoints"]

#: Longest plain-text fallback, action name and device.
MAX_CONTENT = 2000
MAX_ACTION = 64
MAX_DEVICE = 128
#: Longest ``action_id`` (the client SDK's limit too) and ``client_msg_no``.
MAX_ACTION_ID = 128
MAX_CLIENT_MSG_NO = 128
#: Default and largest ``limit`` of the ops endpoint.
DEFAULT_OPS_LIMIT, MAX_OPS_LIMIT = 100, 1000
#: Default and largest ``limit`` of the records endpoint, and the longest cursor.
DEFAULT_RECORDS_LIMIT, MAX_RECORDS_LIMIT = 100, 500
MAX_RECORDS_CURSOR = 190

_MESSAGE_ID = IntOrString(1)


@request
class Acting:
    """The acting user, first field of every card request."""

    uid: str = Field(
        Uid(allow_empty=True), default="", doc="acting user: required with the business key"
    )


@request
class CreateReq(Acting):
    """``POST /cards``."""

    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())
    card: dict[str, Any] = Field(AnyObject("the definition: {type: 'approval@1', title, ...}"))
    content: str = Field(
        String(MAX_CONTENT), default="", doc="plain-text fallback; default: generated"
    )
    client_msg_no: str = Field(
        String(MAX_CLIENT_MSG_NO), default="", doc="idempotency key; default: fresh"
    )
    device: str = Field(String(MAX_DEVICE), default="", doc="the creator's device (recorded)")


@request
class ActReq(Acting):
    """``POST /cards/{message_id}/actions``."""

    action: str = Field(String(MAX_ACTION, 1), doc="e.g. approve, vote, respond")
    params: dict[str, Any] | None = Field(AnyObject("the action's parameters"), default=None)
    action_id: str = Field(String(MAX_ACTION_ID, 1), doc="idempotency key (per user)")
    base_version: int = Field(SEQ, doc="the card's version as the client last saw it")
    confirm: int = Field(
        Flag(), default=0, doc="apply although the card changed since base_version"
    )
    device: str = Field(String(MAX_DEVICE), default="", doc="the actor's device (recorded)")


@request
class ViewQuery(Acting):
    """``GET /cards/{message_id}``."""


@request
class OpsQuery(Acting):
    """``GET /cards/{message_id}/ops``."""

    after_op_id: int = Field(IntOrString(0), default=0, doc="paging cursor: the last op_id read")
    limit: int = Field(IntOrString(1, MAX_OPS_LIMIT), default=DEFAULT_OPS_LIMIT)


class _Registration:
    """The body of ``POST /card-types``: any object here, checked by the card service
    against :data:`~magpie.cards.registered.REGISTRATION_SCHEMA` and further rules."""

    def parse(self, value: object, where: str) -> dict[str, Any]:
        return AnyObject().parse(value, where)

    def schema(self) -> dict[str, Any]:
        props = {**REGISTRATION_SCHEMA["properties"], "doc": CARD_DOCUMENT}
        return {**REGISTRATION_SCHEMA, "properties": props}


@request
class TypeQuery:
    """``GET /card-types/{tag}``."""


REGISTER = _Registration()
TYPE_QUERY = Object.of(TypeQuery)


@request
class RecordsQuery(Acting):
    """``GET /cards/{message_id}/records``."""

    after: str = Field(
        String(MAX_RECORDS_CURSOR), default="", doc="paging cursor: the previous page's next"
    )
    limit: int = Field(IntOrString(1, MAX_RECORDS_LIMIT), default=DEFAULT_RECORDS_LIMIT)


CREATE = Object.of(CreateReq)
RECORDS = Object.of(RecordsQuery)
ACT = Object.of(ActReq)
VIEW = Object.of(ViewQuery)
OPS = Object.of(OpsQuery)


def _cards(ctx: ApiContext) -> CardService:
    if ctx.cards is None:
        raise NotFound("the card service is not running")
    return ctx.cards


def _message_id(request: Request) -> int:
    return _MESSAGE_ID.parse(request.path_params.get("message_id"), "message_id")


async def _caller(ctx: ApiContext, request: Request, uid: str, *, acting: bool) -> Caller:
    """The user (token), or the business server acting for ``uid``."""
    caller = await require_user_or_token(request, ctx.access, uid)
    if acting and not caller.uid:
        raise BadRequest("uid is required with the business key", field="uid")
    return caller


async def create_card(ctx: ApiContext, request: Request, req: CreateReq) -> Response:
    """Send a card message and initialise its state."""
    caller = await _caller(ctx, request, req.uid, acting=True)
    created = await _cards(ctx).create(
        CreateRequest(
            creator=caller.uid,
            channel_id=req.channel_id,
            channel_type=req.channel_type,
            card=req.card,
            content=req.content,
            client_msg_no=req.client_msg_no or f"card-{uuid.uuid4().hex}",
            device=req.device,
        )
    )
    return bare(created)


async def get_card(ctx: ApiContext, request: Request, q: ViewQuery) -> Response:
    """The card as the caller sees it."""
    message_id = _message_id(request)
    caller = await _caller(ctx, request, q.uid, acting=False)
    return bare(await _cards(ctx).view(message_id, caller.uid, business=caller.business))


async def act(ctx: ApiContext, request: Request, req: ActReq) -> Response:
    """Apply one action (idempotent by the caller's ``action_id``)."""
    message_id = _message_id(request)
    caller = await _caller(ctx, request, req.uid, acting=True)
    result = await _cards(ctx).act(
        ActionRequest(
            message_id=message_id,
            uid=caller.uid,
            action=req.action,
            params=req.params or {},
            action_id=req.action_id,
            base_version=req.base_version,
            confirm=bool(req.confirm),
            device=req.device,
            business=caller.business,
        )
    )
    extra = {
        "action_id": req.action_id,
        "duplicate": result.duplicate,
        "op_id": 0 if result.op is None else result.op.op_id,
        "changed": result.changed,
        "ephemeral": result.ephemeral,
    }
    return bare({**result.view, **extra})


async def register_type(ctx: ApiContext, _: Request, body: dict[str, Any]) -> Response:
    """Register a business-defined card type (business key)."""
    return bare(await _cards(ctx).register_type(body))


async def list_types(ctx: ApiContext, _: Request, __: TypeQuery) -> Response:
    """Every registered card type (business key)."""
    return bare({"types": await _cards(ctx).card_types()})


async def get_type(ctx: ApiContext, request: Request, _: TypeQuery) -> Response:
    """A registered card type (business key)."""
    tag = str(request.path_params.get("tag", ""))
    return bare(await _cards(ctx).card_type(tag))


async def card_ops(ctx: ApiContext, request: Request, q: OpsQuery) -> Response:
    """The card's operation log, oldest first, at most ``history_max_bytes`` of it
    (``more``: 1 when it stopped early)."""
    message_id = _message_id(request)
    caller = await _caller(ctx, request, q.uid, acting=False)
    cards, budget = _cards(ctx), AnswerBudget(ctx.settings.history_max_bytes)
    after, taken = q.after_op_id, 0
    async with ctx.reads.slot(reader(caller)):
        while taken < q.limit and not budget.full:
            want = page_rows(ctx.settings, op_row_bytes(ctx.settings), q.limit - taken)
            rows = await cards.ops(message_id, caller.uid, after, want, business=caller.business)
            taken += sum(1 for row in rows if budget.add(row))
            if len(rows) < want:
                break
            after = int(rows[-1]["op_id"])
    if budget.full:
        ctx.metrics.history_truncated.labels(endpoint="/cards/{message_id}/ops").inc()
    more = int(budget.full)
    body = budget.object({"status": 200, "more": more}, "data")
    return JsonBytes(body, headers={MORE_HEADER: str(more)})


async def card_records(ctx: ApiContext, request: Request, q: RecordsQuery) -> Response:
    """A page of the card's per-user records as the caller may see them."""
    message_id = _message_id(request)
    caller = await _caller(ctx, request, q.uid, acting=False)
    async with ctx.reads.slot(reader(caller)):
        page = await _cards(ctx).records(
            message_id, caller.uid, q.after, q.limit, business=caller.business
        )
    return bare(page)


# --- the route table -----------------------------------------------------------------------

_OP_ROW: dict[str, Any] = {
    "type": "object",
    "description": "one history row (docs/cards.md section 2)",
    "properties": {
        "op_id": {"type": "integer"},
        "message_id": {"type": "integer", "format": "int64"},
        "message_id_str": {"type": "string"},
        "action": {"type": "string"},
        "operation": {"type": "string", "description": "= action"},
        "actor": {"type": "object", "properties": {"uid": {"type": "string"}}},
        "actor_uid": {"type": "string", "description": "empty for an anonymous ballot"},
        "anonymous": {"type": "boolean"},
        "params": {
            "oneOf": [{"type": "object"}, {"type": "null"}],
            "description": "the logged parameters ({} when private, null for creation)",
        },
        "base_version": {"type": "integer"},
        "status_before": {"type": "string"},
        "status_after": {"type": "string"},
        "version_after": {"type": "integer"},
        "result": {"type": "string", "enum": ["applied", "conflict", "forbidden", "invalid"]},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "created_at": {"type": "integer", "description": "unix milliseconds"},
    },
}
_RECORDS_PAGE: dict[str, Any] = {
    "type": "object",
    "description": "a page of a card's per-user records (docs/cards.md section 2)",
    "required": ["message_id", "message_id_str", "version", "visible", "records", "next"],
    "properties": {
        "message_id": {"type": "integer", "format": "int64"},
        "message_id_str": {"type": "string"},
        "version": {"type": "integer", "description": "the card's version when read"},
        "visible": {
            "type": "boolean",
            "description": "false: the type lists no records or hides them from the caller now",
        },
        "records": {
            "type": "array",
            "items": {
                "type": "object",
                "description": "a ballot {uid, options} or a response {uid, answers, at}",
                "properties": {
                    "uid": {"type": "string"},
                    "options": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "description": "a ballot's chosen option indices",
                    },
                    "answers": {
                        "type": "object",
                        "description": "a response: question id -> [indices] or text",
                    },
                    "at": {"type": "integer", "description": "a response's time, unix ms"},
                },
                "required": ["uid"],
            },
        },
        "next": {
            "oneOf": [{"type": "string"}, {"type": "null"}],
            "description": "the cursor (after=) of the next page; null at the end",
        },
    },
}
_CREATED = card_projection_with(message_seq={"type": "integer"}, client_msg_no={"type": "string"})
_ACTED = card_projection_with(
    action_id={"type": "string"},
    changed={"type": "boolean", "description": "false: a callback answered without a change"},
    ephemeral={
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "doc": {"oneOf": [CARD_DOCUMENT, {"type": "null"}]},
                },
            },
            {"type": "null"},
        ],
        "description": "an answer for the actor alone (also sent as a cardEphemeral CMD)",
    },
    duplicate={"type": "boolean", "description": "the action id was seen before"},
    op_id={"type": "integer", "description": "the operation-log row of the action"},
)
_NO_CARD = (404, "no such card (or the caller is not in its chat)")
_ACT_ERRORS = (
    (400, "invalid (bad_params, unknown_action, bad_base_version, revoked)", CARD_REFUSAL),
    (403, "forbidden (not_member, not_allowed)", CARD_REFUSAL),
    _NO_CARD,
    (409, "conflict: {reason, winner, at, current, can_confirm}", CARD_REFUSAL),
    (413, "too_large: the card state would exceed its limit", CARD_REFUSAL),
    (
        502,
        "bad_gateway: the business callback failed (callback_failed, callback_timeout, "
        "callback_invalid); nothing changed",
        CARD_REFUSAL,
    ),
)
_TYPE_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tag": {"type": "string", "description": "name@version"},
        "created": {"type": "boolean"},
        "type": {"type": "object", "description": "the normalised registration"},
    },
}


def _card_endpoint(method: str, path: str, summary: str, handler: Any, **kw: Any) -> Endpoint[Any]:
    return Endpoint(method, path, summary, Access.USER, handler, tag="cards", **kw)


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The card routes."""
    listing = with_more(data_schema(array_of(_OP_ROW)))
    ops = {"query": OPS, "response": listing, "errors": (_NO_CARD,)}
    return [
        _card_endpoint(
            "POST",
            "/cards",
            "Create a card",
            create_card,
            body=CREATE,
            response=_CREATED,
            errors=(
                (
                    400,
                    "invalid (bad_document, document_too_deep: field names the path)",
                    CARD_REFUSAL,
                ),
                (413, "too_large (document_too_large)", CARD_REFUSAL),
            ),
        ),
        _card_endpoint(
            "GET",
            "/cards/{message_id}",
            "A card as the caller sees it",
            get_card,
            query=VIEW,
            response=CARD_PROJECTION,
            errors=(_NO_CARD,),
        ),
        _card_endpoint(
            "POST",
            "/cards/{message_id}/actions",
            "Act on a card",
            act,
            body=ACT,
            response=_ACTED,
            errors=_ACT_ERRORS,
        ),
        _card_endpoint("GET", "/cards/{message_id}/ops", "A card's history", card_ops, **ops),
        Endpoint(
            "POST",
            "/card-types",
            "Register a card type",
            Access.BUSINESS,
            register_type,
            tag="cards",
            body=REGISTER,
            response=_TYPE_ANSWER,
            errors=(
                (
                    400,
                    "invalid (reason bad_type, bad_document, document_too_deep; field)",
                    CARD_REFUSAL,
                ),
                (
                    409,
                    "conflict: type_exists (the tag is registered with another body)",
                    CARD_REFUSAL,
                ),
                (413, "too_large", CARD_REFUSAL),
            ),
        ),
        Endpoint(
            "GET",
            "/card-types",
            "The registered card types",
            Access.BUSINESS,
            list_types,
            tag="cards",
            query=TYPE_QUERY,
            response={
                "type": "object",
                "properties": {
                    "types": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"tag": {"type": "string"}, "type": {"type": "object"}},
                        },
                    }
                },
            },
        ),
        Endpoint(
            "GET",
            "/card-types/{tag}",
            "A registered card type",
            Access.BUSINESS,
            get_type,
            tag="cards",
            query=TYPE_QUERY,
            response=_TYPE_ANSWER,
            errors=((404, "no such registered type"),),
        ),
        _card_endpoint(
            "GET", "/cards/{message_id}/history", "A card's history (alias)", card_ops, **ops
        ),
        _card_endpoint(
            "GET",
            "/cards/{message_id}/records",
            "A page of a card's ballots or responses",
            card_records,
            query=RECORDS,
            response=_RECORDS_PAGE,
            errors=(_NO_CARD,),
        ),
    ]

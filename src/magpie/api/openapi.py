"""The OpenAPI 3.1 document, generated from the route table (the same specs that validate
requests), so it lists exactly the routes the app serves with the bodies it accepts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from magpie.api.endpoint import Access, Endpoint
from magpie.cards.document import DOCUMENT_SCHEMA

__all__ = [
    "CARD_DOCUMENT",
    "CARD_PROJECTION",
    "CARD_REFUSAL",
    "EXT_REJECTION",
    "build_document",
    "card_projection_with",
]

_JSON = "application/json"
_ERROR_REF = {"$ref": "#/components/schemas/Error"}

_MESSAGE_RESP: dict[str, Any] = {
    "type": "object",
    "description": "WuKongIM MessageResp (spec §6); channel_id is the peer for person channels",
    "properties": {
        "header": {
            "type": "object",
            "properties": {
                "no_persist": {"type": "integer", "enum": [0, 1]},
                "red_dot": {"type": "integer", "enum": [0, 1]},
                "sync_once": {"type": "integer", "enum": [0, 1]},
            },
        },
        "setting": {"type": "integer"},
        "message_id": {"type": "integer", "format": "int64"},
        "message_idstr": {"type": "string"},
        "client_msg_no": {"type": "string"},
        "message_seq": {"type": "integer"},
        "from_uid": {"type": "string"},
        "channel_id": {"type": "string"},
        "channel_type": {"type": "integer"},
        "topic": {"type": "string"},
        "timestamp": {"type": "integer"},
        "payload": {"type": "string", "format": "byte"},
        "expire": {"type": "integer"},
        "message_extra": {
            "description": "/channel/messagesync only: the message's extension (null if never "
            "changed)",
            "oneOf": [{"$ref": "#/components/schemas/ExtRow"}, {"type": "null"}],
        },
        "reactions": {
            "description": "/channel/messagesync only: the live reactions per emoji",
            "type": "array",
            "items": {"$ref": "#/components/schemas/ReactionSummary"},
        },
    },
}

_REACTION: dict[str, Any] = {
    "type": "object",
    "description": "One (message, uid, emoji) reaction and its state (TSDD /reaction/sync); "
    "channel_id is the peer for person channels",
    "properties": {
        "message_id": {"type": "integer", "format": "int64"},
        "message_id_str": {"type": "string"},
        "channel_id": {"type": "string"},
        "channel_type": {"type": "integer"},
        "seq": {"type": "integer", "description": "the channel's reaction version"},
        "uid": {"type": "string"},
        "emoji": {"type": "string"},
        "is_deleted": {"type": "integer", "enum": [0, 1]},
        "created_at": {"type": "integer", "description": "unix seconds of the last change"},
    },
    "required": ["message_id", "message_id_str", "channel_id", "seq", "uid", "emoji"],
}

_REMINDER: dict[str, Any] = {
    "type": "object",
    "description": "A user's reminder (TSDD /message/reminder/sync); channel_id as the user "
    "sees it",
    "properties": {
        "id": {"type": "integer"},
        "channel_id": {"type": "string"},
        "channel_type": {"type": "integer"},
        "publisher": {"type": "string", "description": "who sent the message"},
        "message_seq": {"type": "integer"},
        "message_id": {"type": "string"},
        "reminder_type": {"type": "integer", "description": "1 = a mention"},
        "uid": {"type": "string"},
        "text": {"type": "string"},
        "data": {"type": "null"},
        "is_locate": {"type": "integer"},
        "version": {"type": "integer", "description": "the user's reminder version"},
        "done": {"type": "integer", "enum": [0, 1]},
    },
    "required": ["id", "channel_id", "channel_type", "message_id", "version", "done"],
}

_REACTION_SUMMARY: dict[str, Any] = {
    "type": "object",
    "description": "One emoji on a message: who reacted (in order) and the highest seq",
    "properties": {
        "emoji": {"type": "string"},
        "count": {"type": "integer"},
        "users": {"type": "array", "items": {"type": "string"}},
        "seq": {"type": "integer"},
    },
    "required": ["emoji", "count", "users", "seq"],
}

_EXT_ROW: dict[str, Any] = {
    "type": "object",
    "description": "A message's extension (ARCHITECTURE I6; TSDD names, spec §5.2). "
    "channel_id is the peer for person channels (the storage id for the business API).",
    "properties": {
        "message_id": {"type": "integer", "format": "int64"},
        "message_id_str": {"type": "string"},
        "message_seq": {"type": "integer"},
        "channel_id": {"type": "string"},
        "channel_type": {"type": "integer"},
        "extra_version": {"type": "integer", "description": "per-channel change counter"},
        "version": {"type": "integer", "description": "+1 per accepted change of the message"},
        "status": {"type": "string"},
        "extra": {"type": "object"},
        "revoke": {"type": "integer", "enum": [0, 1]},
        "revoker": {"type": "string"},
        "readed_count": {"type": "integer", "description": "receipts: members who read it"},
        "unread_count": {
            "type": "integer",
            "description": "receipts: members (not the sender) who had not read it yet",
        },
        "content_edit": {"oneOf": [{"type": "object"}, {"type": "null"}]},
        "edited_at": {"type": "integer", "description": "unix seconds; 0 = never"},
        "updated_at": {"type": "integer", "description": "hybrid logical clock value"},
        "updated_by": {
            "type": "object",
            "properties": {"uid": {"type": "string"}, "device": {"type": "string"}},
        },
    },
}

_EXT_OP: dict[str, Any] = {
    "type": "object",
    "description": "One row of a message's operation log (every attempted change)",
    "properties": {
        "op_id": {"type": "integer"},
        "message_id": {"type": "integer", "format": "int64"},
        "message_id_str": {"type": "string"},
        "action_id": {"type": "string"},
        "actor": {
            "type": "object",
            "properties": {"uid": {"type": "string"}, "device": {"type": "string"}},
        },
        "operation": {"type": "string"},
        "patch": {"type": "object"},
        "base_version": {"type": "integer"},
        "status_before": {"type": "string"},
        "status_after": {"type": "string"},
        "version_after": {"type": "integer"},
        "result": {
            "type": "string",
            "enum": ["applied", "conflict", "forbidden", "invalid", "stale"],
        },
        "code": {"type": "string", "description": "a rejection's reason code"},
        "detail": {"type": "string"},
        "created_at": {"type": "integer", "description": "unix milliseconds"},
    },
}

_CONVERSATION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "channel_id": {"type": "string"},
        "channel_type": {"type": "integer"},
        "unread": {"type": "integer"},
        "timestamp": {"type": "integer"},
        "last_msg_seq": {"type": "integer"},
        "last_client_msg_no": {"type": "string"},
        "offset_msg_seq": {"type": "integer"},
        "readed_to_msg_seq": {"type": "integer"},
        "version": {"type": "integer"},
        "recents": {"type": "array", "items": {"$ref": "#/components/schemas/MessageResp"}},
    },
}

_ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "integer", "description": "the HTTP status"},
        "code": {"type": "string", "description": "stable machine-readable code"},
        "msg": {"type": "string"},
        "field": {"type": "string", "description": "the offending input field"},
        "reason": {"type": "integer", "description": "send_refused: WuKongIM reason code"},
        "reason_name": {"type": "string"},
        "retry_after": {
            "type": "integer",
            "description": "rate_limited: seconds to wait (also the Retry-After header)",
        },
    },
    "required": ["status", "code", "msg"],
}

_STRING: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_UPDATED_BY: dict[str, Any] = {"type": "object", "properties": {"uid": _STRING}}

_EXT_REJECTION: dict[str, Any] = {
    "type": "object",
    "description": "An error; a rejected change (409 conflict/stale, 403, 400 invalid, 413) "
    "also carries the current state, who holds it, and the logged attempt",
    "properties": {
        **_ERROR["properties"],
        "current": {"$ref": "#/components/schemas/ExtRow"},
        "updated_by": {
            "type": "object",
            "properties": {"uid": _STRING, "device": _STRING},
        },
        "updated_at": {"type": "integer", "description": "hybrid logical clock value"},
        "updated_at_ms": {"type": "integer", "description": "unix milliseconds"},
        "last_op": {
            "description": "the last applied change",
            "oneOf": [{"$ref": "#/components/schemas/ExtOp"}, {"type": "null"}],
        },
        "op": {"$ref": "#/components/schemas/ExtOp"},
        "duplicate": {"type": "boolean", "description": "the action id was seen before"},
        "rejection": {"type": "string", "description": "invalid: why (e.g. revoked)"},
    },
    "required": _ERROR["required"],
}

_CARD_PROJECTION_PROPERTIES: dict[str, Any] = {
    "message_id": {"type": "integer", "format": "int64"},
    "message_id_str": _STRING,
    "type": {"type": "string", "description": "approval, survey, task or vote"},
    "schema_version": _INT,
    "type_tag": {"type": "string", "description": "e.g. approval@1"},
    "title": _STRING,
    "description": _STRING,
    "creator": _STRING,
    "admins": {"type": "array", "items": _STRING},
    "deadline": {
        "oneOf": [
            {"type": "object", "properties": {"action": _STRING, "at": _INT}},
            {"type": "null"},
        ]
    },
    "definition": {"type": "object", "description": "the card object of the message"},
    "version": {"type": "integer", "description": "send it as base_version"},
    "extra_version": _INT,
    "updated_at": {"type": "integer", "description": "unix milliseconds"},
    "updated_by": _UPDATED_BY,
    "status": _STRING,
    "terminal": {"type": "boolean"},
    "deadline_passed": {"type": "boolean"},
    "can_act": {"type": "boolean"},
    "actions": {
        "type": "array",
        "description": "the buttons this user may press now",
        "items": {
            "type": "object",
            "properties": {"action": _STRING, "label": _STRING, "style": _STRING},
        },
    },
    "unavailable": {
        "type": "object",
        "description": "every other action of the type -> why this user may not take it",
        "additionalProperties": _STRING,
    },
    "unavailable_reason": _STRING,
    "outcome": {"type": "string", "description": "one line once decided, else empty"},
    "state": {"type": "object", "description": "the type's part (docs/cards.md section 3)"},
    "my_decision": {"oneOf": [{"type": "object"}, {"type": "null"}], "description": "approval"},
    "my_response": {"oneOf": [{"type": "object"}, {"type": "null"}], "description": "survey"},
    "my_task": {"type": "object", "description": "task: assigned, accepted, declined"},
    "my_vote": {
        "oneOf": [{"type": "array", "items": _INT}, {"type": "null"}],
        "description": "vote: the chosen option indices",
    },
    "document": {
        "oneOf": [{"$ref": "#/components/schemas/CardDocument"}, {"type": "null"}],
        "description": "what the card shows (registered types; null for the built-in ones)",
    },
    "counts": {
        "type": "object",
        "description": "registered types: action -> how many users took it",
        "additionalProperties": _INT,
    },
    "my_actions": {
        "type": "array",
        "items": _STRING,
        "description": "registered types: the counted actions this user took",
    },
}

_CARD_PROJECTION: dict[str, Any] = {
    "type": "object",
    "description": "A card as one user sees it (docs/cards.md section 4)",
    "properties": _CARD_PROJECTION_PROPERTIES,
}

_CARD_REFUSAL: dict[str, Any] = {
    "type": "object",
    "description": "An error; a refused card action also carries its stable reason, the "
    "caller's projection of the current state (not for not_member) and, for a conflict, the "
    "last applied change (docs/cards.md section 2)",
    "properties": {
        **_ERROR["properties"],
        "reason": {"type": "string", "description": "stable reason code (stale, closed, ...)"},
        "current": {"$ref": "#/components/schemas/CardProjection"},
        "duplicate": {"type": "boolean"},
        "winner": {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {"uid": _STRING, "action": _STRING, "at": _INT, "version": _INT},
                },
                {"type": "null"},
            ]
        },
        "at": {"oneOf": [_INT, {"type": "null"}], "description": "the winner's time (unix ms)"},
        "can_confirm": {"type": "boolean"},
    },
    "required": _ERROR["required"],
}

_CARD_DOCUMENT: dict[str, Any] = {
    k: v for k, v in DOCUMENT_SCHEMA.items() if k not in ("$schema", "title")
}

#: References to the shared schemas, for route tables.
CARD_PROJECTION: dict[str, Any] = {"$ref": "#/components/schemas/CardProjection"}
CARD_REFUSAL: dict[str, Any] = {"$ref": "#/components/schemas/CardRefusal"}
CARD_DOCUMENT: dict[str, Any] = {"$ref": "#/components/schemas/CardDocument"}
EXT_REJECTION: dict[str, Any] = {"$ref": "#/components/schemas/ExtRejection"}


def card_projection_with(**extra: dict[str, Any]) -> dict[str, Any]:
    """The card projection with further fields of one answer (``POST /cards`` adds
    ``message_seq`` and ``client_msg_no``)."""
    return {**_CARD_PROJECTION, "properties": {**_CARD_PROJECTION_PROPERTIES, **extra}}


_SECURITY_SCHEMES: dict[str, Any] = {
    "businessKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "the business API key",
    },
    "businessKeyHeader": {"type": "apiKey", "in": "header", "name": "token"},
    "userToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "a token registered with /user/token; the body must name its uid",
    },
}

_SECURITY: dict[Access, list[dict[str, list[str]]]] = {
    Access.PUBLIC: [],
    Access.BUSINESS: [{"businessKey": []}, {"businessKeyHeader": []}],
    Access.USER: [{"businessKey": []}, {"businessKeyHeader": []}, {"userToken": []}],
}


def _error(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {_JSON: {"schema": schema or _ERROR_REF}}
    return {"description": description, "content": content}


def _responses(ep: Endpoint[Any]) -> dict[str, Any]:
    media = (ep.raw_response or _JSON).split(",")  # a raw answer may be of several types
    out: dict[str, Any] = {
        "200": {"description": "OK", "content": {m: {"schema": ep.response} for m in media}}
    }
    if ep.body is not None or ep.query is not None:
        out["400"] = _error("invalid input (bad_request, bad_json, nul_character, send_refused)")
    if ep.access is not Access.PUBLIC:
        out["401"] = _error("missing or wrong credential")
    if ep.access is Access.USER:
        out["403"] = _error("the credential may not act for this uid / channel")
    if ep.body is not None:
        out["413"] = _error("body or a field above its limit")
    for status, description, *schema in ep.errors:
        bodyless = status == 304  # not modified: no body
        out[str(status)] = (
            {"description": description} if bodyless else _error(description, *schema)
        )
    out.setdefault(
        "429", _error("rate_limited: a rate limit or cap refused the request; see Retry-After")
    )
    out.setdefault(
        "5XX",
        _error(
            "the node is not ready or failed; 503 store_unavailable: the database cannot be "
            "reached, try again after Retry-After"
        ),
    )
    return out


def _parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _path_parameters(path: str) -> list[dict[str, Any]]:
    """``{name}`` segments of a path (e.g. ``/cards/{message_id}``)."""
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ]


def _operation(ep: Endpoint[Any]) -> dict[str, Any]:
    op_id = re.sub(r"[^A-Za-z0-9_]", "_", ep.path.replace("{", "").replace("}", ""))
    op: dict[str, Any] = {
        "operationId": ep.method.lower() + op_id,
        "summary": ep.summary,
        "tags": [ep.tag],
        "security": _SECURITY[ep.access],
        "responses": _responses(ep),
    }
    if ep.body is not None:
        content = {_JSON: {"schema": ep.body.schema()}}
        op["requestBody"] = {"required": True, "content": content}
    elif ep.raw_body:
        binary = {"schema": {"type": "string", "format": "binary"}}
        op["requestBody"] = {"required": True, "content": {ep.raw_body: binary}}
    parameters = _path_parameters(ep.path)
    if ep.query is not None:
        parameters += _parameters(ep.query.schema())
    if parameters:
        op["parameters"] = parameters
    return op


def build_document(endpoints: Sequence[Endpoint[Any]], version: str) -> dict[str, Any]:
    """The OpenAPI document of ``endpoints``."""
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Magpie HTTP API",
            "version": version,
            "description": "WuKongIM-compatible business API (names and shapes of v1.1.4).",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "MessageResp": _MESSAGE_RESP,
                "Conversation": _CONVERSATION,
                "ExtRow": _EXT_ROW,
                "ExtOp": _EXT_OP,
                "Reaction": _REACTION,
                "ReactionSummary": _REACTION_SUMMARY,
                "Reminder": _REMINDER,
                "Error": _ERROR,
                "ExtRejection": _EXT_REJECTION,
                "CardProjection": _CARD_PROJECTION,
                "CardRefusal": _CARD_REFUSAL,
                "CardDocument": _CARD_DOCUMENT,
            },
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }

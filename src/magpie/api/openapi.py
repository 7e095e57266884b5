"""The OpenAPI 3.1 document, generated from the route table (the same specs that validate
requests), so it lists exactly the routes the app serves with the bodies it accepts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from magpie.api.endpoint import Access, Endpoint

__all__ = ["build_document"]

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
    },
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
        "readed_count": {"type": "integer"},
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
    },
    "required": ["status", "code", "msg"],
}

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


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ERROR_REF}}}


def _responses(ep: Endpoint[Any]) -> dict[str, Any]:
    media = ep.raw_response or _JSON
    out: dict[str, Any] = {
        "200": {"description": "OK", "content": {media: {"schema": ep.response}}}
    }
    if ep.body is not None or ep.query is not None:
        out["400"] = _error("invalid input (bad_request, bad_json, send_refused)")
    if ep.access is not Access.PUBLIC:
        out["401"] = _error("missing or wrong credential")
    if ep.access is Access.USER:
        out["403"] = _error("the credential may not act for this uid / channel")
    if ep.body is not None:
        out["413"] = _error("body or a field above its limit")
    for status, description in ep.errors:
        out[str(status)] = _error(description)
    out["5XX"] = _error("the node is not ready or failed")
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
                "Error": _ERROR,
            },
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }

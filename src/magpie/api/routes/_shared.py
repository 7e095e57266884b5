"""Limits, reusable field specs and response schemas shared by the route modules.

Every limit is a named constant here, so the OpenAPI document states it and the tests can
exercise N and N+1.
"""

from __future__ import annotations

from typing import Any

from magpie.api.schema import Array, Integer, Spec, Uid

__all__ = [
    "DEVICE_FLAG",
    "MAX_RECENTS",
    "MAX_SYNC_LIMIT",
    "MAX_TOKEN_LENGTH",
    "MAX_TOPIC_LENGTH",
    "MAX_UIDS",
    "MESSAGE_RESP",
    "OK",
    "SEQ",
    "array_of",
    "data_schema",
    "props",
    "uid_list",
]

#: Most uids in one call (subscribers, online-status queries, batch sends).
MAX_UIDS = 1000
#: Most messages one sync call returns (WuKongIM's ``/channel/messagesync`` cap).
MAX_SYNC_LIMIT = 10_000
#: Most recent messages per conversation in ``/conversation/sync``.
MAX_RECENTS = 100
#: Longest user token accepted by ``/user/token``.
MAX_TOKEN_LENGTH = 512
#: Longest message topic.
MAX_TOPIC_LENGTH = 128

#: A message or queue sequence number (uint64 from protocol v6; uint32 before).
SEQ = Integer(0, 2**63 - 1)
#: CONNECT.device_flag: 0 app, 1 web, 2 pc.
DEVICE_FLAG = Integer(0, 2)


def uid_list(min_items: int = 0) -> Spec[list[str]]:
    """An array of at most :data:`MAX_UIDS` uids."""
    return Array(Uid(), MAX_UIDS, min_items)


# --- response schemas (OpenAPI) -------------------------------------------------------------

OK: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"type": "integer", "enum": [200]}},
    "required": ["status"],
}

MESSAGE_RESP: dict[str, Any] = {"$ref": "#/components/schemas/MessageResp"}


def data_schema(data: dict[str, Any]) -> dict[str, Any]:
    """``{"status":200,"data":<data>}``."""
    return {
        "type": "object",
        "properties": {"status": {"type": "integer", "enum": [200]}, "data": data},
        "required": ["status", "data"],
    }


def array_of(item: dict[str, Any]) -> dict[str, Any]:
    """A bare JSON array."""
    return {"type": "array", "items": item}


def props(**fields: str) -> dict[str, Any]:
    """A closed object schema whose properties all have the given simple types."""
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in fields.items()},
        "required": list(fields),
    }

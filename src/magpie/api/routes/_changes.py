"""What the routes that change a message's extension share: the channel check, the answer to
an applied change and the error of a rejected one. The routes render the rows themselves
(through :mod:`magpie.api.views`) and pass them in, so this module never chooses a view."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from magpie.api.context import ApiContext
from magpie.api.render import op_resp
from magpie.api.routes._shared import data_schema
from magpie.domain.channels import names_channel
from magpie.domain.ext import Result, UpdateResult
from magpie.errors import ApiError, NotFound
from magpie.ext.hlc import physical_ms
from magpie.ext.rejection import rejection_error

__all__ = ["CHANGED", "answer", "check_channel", "rejection"]

_ROW: dict[str, Any] = {"$ref": "#/components/schemas/ExtRow"}
_OP: dict[str, Any] = {"$ref": "#/components/schemas/ExtOp"}


def _changed() -> dict[str, Any]:
    schema = data_schema(_ROW)
    schema["properties"] |= {"op": _OP, "duplicate": {"type": "boolean"}}
    return schema


#: The OpenAPI schema of an applied change's answer.
CHANGED = _changed()


async def check_channel(ctx: ApiContext, message_id: int, channel_id: str, kind: int) -> None:
    """404 unless the message exists in the named channel (when one is named)."""
    if not channel_id and not kind:
        return
    msg = await ctx.store.get_message(message_id)
    if msg is None or not names_channel(msg.channel_id, msg.channel_type, channel_id, kind):
        raise NotFound("no such message in this channel", field="message_id")


def rejection(result: UpdateResult, current: dict[str, Any]) -> ApiError:
    """The HTTP error of a rejected change, carrying the current state (``current``: the row
    as the caller may see it) and who holds it."""
    state, last, code = result.state, result.last_applied, result.op.code
    detail: dict[str, Any] = {
        "current": current,
        "updated_by": {"uid": state.updated_by.uid, "device": state.updated_by.device},
        "updated_at": state.updated_at,
        "updated_at_ms": physical_ms(state.updated_at),
        "last_op": None if last is None else op_resp(last),
        "op": op_resp(result.op),
        "duplicate": result.duplicate,
    }
    if result.result is Result.INVALID and code != "too_large":
        detail["rejection"] = code  # why it is invalid (``revoked``, ...)
    return rejection_error(result.op, **detail)


def answer(result: UpdateResult, row: dict[str, Any]) -> Response:
    """200 with ``row`` (the state as the caller may see it) when the change applied; the
    rejection's error otherwise."""
    if not result.applied:
        raise rejection(result, row)
    body = {"status": 200, "data": row, "op": op_resp(result.op), "duplicate": result.duplicate}
    return JSONResponse(body)

"""Reminders (``docs/conversation.md``, item 4), TangSengDaoDao's endpoints without ``/v1``.

* ``POST /message/reminder/sync {uid?, version, limit}`` — the user's reminders with a version
  above the cursor, ascending: a bare array of TSDD rows (``X-Magpie-More``), for the JS SDK's
  ``syncRemindersCallback``.
* ``POST /message/reminder/done {uid?, ids}`` — mark reminders done (``reminderDoneCallback``);
  an id that is not the user's is 404 and nothing changes.

A user token acts for its user; the business key names ``uid``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.history import MORE_HEADER, reader
from magpie.api.http import bare, ok
from magpie.api.routes._shared import OK, SEQ, array_of
from magpie.api.routes.sync import EPOCH_HEADER
from magpie.api.schema import Array, Field, Integer, IntOrString, Object, Uid, request
from magpie.api.views import reminder_rows
from magpie.config import Settings
from magpie.core.access import Caller
from magpie.errors import BadRequest

__all__ = ["endpoints"]

#: Default and largest ``limit`` of a reminder sync; most ids in one done.
DEFAULT_LIMIT, MAX_LIMIT, MAX_DONE_IDS = 100, 1000, 1000

_UID = Field(Uid(allow_empty=True), default="", doc="the user (optional with a user token)")


@request
class SyncReq:
    """``/message/reminder/sync``."""

    uid: str = _UID
    version: int = Field(SEQ, default=0, doc="cursor: the highest version held")
    limit: int = Field(Integer(0, MAX_LIMIT), default=DEFAULT_LIMIT, doc="0 = default")


@request
class DoneReq:
    """``/message/reminder/done``."""

    uid: str = _UID
    ids: Sequence[int] = Field(Array(IntOrString(1), MAX_DONE_IDS, 1), doc="reminder ids")


SYNC = Object.of(SyncReq)
DONE = Object.of(DoneReq)


async def _user(ctx: ApiContext, request: Request, uid: str) -> Caller:
    caller = await require_user_or_token(request, ctx.access, uid)
    if not caller.uid:
        raise BadRequest("uid is required with the business key", field="uid")
    return caller


async def sync(ctx: ApiContext, request: Request, req: SyncReq) -> Response:
    """The user's reminders after the cursor."""
    caller = await _user(ctx, request, req.uid)
    limit = req.limit or DEFAULT_LIMIT
    async with ctx.reads.slot(reader(caller)):
        rows = await ctx.conv.reminders.sync(caller.uid, req.version, limit + 1)
    more = len(rows) > limit
    headers = {MORE_HEADER: str(int(more)), EPOCH_HEADER: ctx.store.epoch}
    return bare(reminder_rows(rows[:limit], caller.uid), headers=headers)


async def done(ctx: ApiContext, request: Request, req: DoneReq) -> Response:
    """Mark the user's reminders done."""
    caller = await _user(ctx, request, req.uid)
    await ctx.conv.reminders.done(caller.uid, req.ids)
    return ok()


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The reminder routes."""
    row = {"$ref": "#/components/schemas/Reminder"}
    return [
        Endpoint(
            "POST",
            "/message/reminder/sync",
            "The user's reminders (mentions) changed after a version",
            Access.USER,
            sync,
            body=SYNC,
            response=array_of(row),
            tag="conversation",
        ),
        Endpoint(
            "POST",
            "/message/reminder/done",
            "Mark the user's reminders done",
            Access.USER,
            done,
            body=DONE,
            response=OK,
            tag="conversation",
            errors=((404, "an id that is not a reminder of the user"),),
        ),
    ]

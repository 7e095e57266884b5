"""Endpoints a client app may call itself (spec §5.2, §6, §7): ``/conversation/sync``,
``/channel/messagesync`` and ``/message/extra/sync``. Each takes the business key (acting
for the body's uid) or the user's own token (``magpie.api.auth``); who may read a channel is
the core's decision (:meth:`magpie.core.access.AccessControl.readable_channel`).

Each ``/channel/messagesync`` message carries its extension as ``message_extra`` (I6), and
the answer the store epoch in the ``X-Magpie-Epoch`` header (I7), so a client's freshly
loaded page is current and tied to the store it came from. ``/message/extra/sync`` answers
in TangSengDaoDao's shape: a bare array of rows (``"envelope": true`` gives ``{epoch, rows,
more}``). Extension rows are rendered per caller by :mod:`magpie.api.views` (card state
projected)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user, require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import bare
from magpie.api.render import conversation_resp
from magpie.api.routes._shared import MAX_RECENTS, MAX_SYNC_LIMIT, MESSAGE_RESP, SEQ, array_of
from magpie.api.schema import (
    Array,
    ChannelId,
    ChannelType,
    F,
    Flag,
    Integer,
    Object,
    String,
    Uid,
)
from magpie.api.views import messages_with_extra, user_rows
from magpie.config import Settings
from magpie.domain.channels import channel_id_problem, visible_channel_id
from magpie.errors import BadRequest
from magpie.store.interface import ConversationRow, StoredMessage

__all__ = ["EPOCH_HEADER", "LastMsgSeqs", "endpoints"]

#: Response header carrying the store epoch (I7).
EPOCH_HEADER = "X-Magpie-Epoch"

#: Default ``limit`` of ``/channel/messagesync``.
DEFAULT_MESSAGESYNC_LIMIT = 100
#: Default ``limit`` of ``/message/extra/sync`` (TSDD's default).
DEFAULT_EXTRA_SYNC_LIMIT = 100
#: Longest ``last_msg_seqs`` string, and most entries in it.
MAX_LAST_MSG_SEQS_LENGTH = 512 * 1024
MAX_LAST_MSG_SEQS = 10_000
#: Most ``larges`` entries.
MAX_LARGES = 1000
_PULL_UP = 1
_NUMBER = re.compile(r"[0-9]{1,18}")  # ASCII only: int() must not see '²' or '٣'

#: ``(visible channel id, channel type) -> the client's last message seq``.
LastMsgSeqs = Mapping[tuple[str, int], int]


@dataclass(frozen=True, slots=True)
class _LastMsgSeqsSpec:
    """``"chan:type:seq|…"`` → :data:`LastMsgSeqs`; each entry validated."""

    def parse(self, value: object, where: str) -> LastMsgSeqs:
        """The parsed entries (later duplicates win)."""
        text = String(MAX_LAST_MSG_SEQS_LENGTH).parse(value, where)
        entries = [e for e in text.split("|") if e]
        if len(entries) > MAX_LAST_MSG_SEQS:
            raise BadRequest(f"{where} has more than {MAX_LAST_MSG_SEQS} entries", field=where)
        return dict(_entry(e, where) for e in entries)

    def schema(self) -> dict[str, Any]:
        """A string."""
        return {
            "type": "string",
            "maxLength": MAX_LAST_MSG_SEQS_LENGTH,
            "description": "channel_id:channel_type:last_msg_seq entries joined by '|'",
        }


def _entry(entry: str, where: str) -> tuple[tuple[str, int], int]:
    """One ``chan:type:seq`` (the channel id may itself contain ``:``)."""
    head, _, seq = entry.rpartition(":")
    channel_id, _, kind = head.rpartition(":")
    if not _NUMBER.fullmatch(kind) or not _NUMBER.fullmatch(seq):
        raise BadRequest(f"{where} entry {entry[:64]!r} is not chan:type:seq", field=where)
    problem = channel_id_problem(channel_id)
    if problem is not None:
        raise BadRequest(f"{where} entry {entry[:64]!r}: the channel id {problem}", field=where)
    return (channel_id, int(kind)), int(seq)


@dataclass(frozen=True, slots=True)
class LargeChannel:
    """An entry of ``larges`` (accepted for compatibility; large channels are not special)."""

    channel_id: str
    channel_type: int


@dataclass(frozen=True, slots=True)
class ConversationSyncReq:
    """``/conversation/sync``."""

    uid: str
    version: int
    last_msg_seqs: LastMsgSeqs
    msg_count: int
    larges: list[LargeChannel]


@dataclass(frozen=True, slots=True)
class MessageSyncReq:
    """``/channel/messagesync``."""

    login_uid: str
    channel_id: str
    channel_type: int
    start_message_seq: int
    end_message_seq: int
    limit: int
    pull_mode: int


@dataclass(frozen=True, slots=True)
class ExtraSyncReq:
    """``/message/extra/sync`` (TSDD ``{channel_id, channel_type, extra_version, limit}``)."""

    channel_id: str
    channel_type: int
    extra_version: int
    limit: int
    login_uid: str
    envelope: int


_NO_SEQS: LastMsgSeqs = MappingProxyType({})
_LARGE = Object(LargeChannel, [F("channel_id", ChannelId()), F("channel_type", ChannelType())])
CONVERSATION_SYNC = Object(
    ConversationSyncReq,
    [
        F("uid", Uid()),
        F("version", SEQ, 0, "only conversations changed after this version; 0 = all"),
        F("last_msg_seqs", _LastMsgSeqsSpec(), _NO_SEQS, "the client's last seq per channel"),
        F("msg_count", Integer(0, MAX_RECENTS), 0, "recent messages per conversation"),
        F("larges", Array(_LARGE, MAX_LARGES), ()),
    ],
)
MESSAGE_SYNC = Object(
    MessageSyncReq,
    [
        F("login_uid", Uid(allow_empty=True), "", "the reader; required with a user token"),
        F("channel_id", ChannelId(), description="the peer uid for person channels"),
        F("channel_type", ChannelType()),
        F("start_message_seq", SEQ, 0, "inclusive"),
        F("end_message_seq", SEQ, 0, "exclusive; 0 = no bound"),
        F("limit", Integer(0, MAX_SYNC_LIMIT), DEFAULT_MESSAGESYNC_LIMIT, "0 = default"),
        F("pull_mode", Flag(), 0, "0 = down (older), 1 = up (newer)"),
    ],
)


EXTRA_SYNC = Object(
    ExtraSyncReq,
    [
        F("channel_id", ChannelId(), description="the peer uid for person channels"),
        F("channel_type", ChannelType()),
        F("extra_version", SEQ, 0, "cursor: the highest extra_version held; 0 = newest"),
        F("limit", Integer(0, 2**31 - 1), DEFAULT_EXTRA_SYNC_LIMIT, "0 = default; capped"),
        F("login_uid", Uid(allow_empty=True), "", "the reader (optional with a user token)"),
        F("envelope", Flag(), 0, "1 = {epoch, rows, more} instead of a bare array"),
    ],
)


# --- /conversation/sync ---------------------------------------------------------------------


async def _recents(
    ctx: ApiContext, row: ConversationRow, seqs: LastMsgSeqs, count: int, viewer: str
) -> list[StoredMessage]:
    """The newest ``count`` messages after the client's last seq of this conversation."""
    if count <= 0:
        return []
    visible = visible_channel_id(row.channel_id, row.channel_type, viewer)
    after = seqs.get((visible, row.channel_type), 0)
    return await ctx.store.get_messages(
        row.channel_id, row.channel_type, start_seq=0, end_seq=after, limit=count, pull_mode=0
    )


async def conversation_sync(
    ctx: ApiContext, request: Request, req: ConversationSyncReq
) -> Response:
    """The user's conversations changed after ``version``, newest first, with recents."""
    caller = await require_user(request, ctx.access, req.uid)
    out = []
    for row in await ctx.store.list_conversations(caller.uid):
        if row.version > req.version:
            recents = await _recents(ctx, row, req.last_msg_seqs, req.msg_count, caller.uid)
            out.append(conversation_resp(row, recents, caller.uid))
    return bare(out)


# --- /channel/messagesync -------------------------------------------------------------------


async def _more(
    ctx: ApiContext, channel_id: str, req: MessageSyncReq, got: list[StoredMessage]
) -> int:
    """Whether more messages lie beyond ``got`` in the pull direction. Seqs are gap-free
    from 1 (I3), so this is arithmetic on the first/last seq, plus ``max_seq`` going up."""
    if not got:
        return 0
    if req.pull_mode == _PULL_UP and (req.start_message_seq or req.end_message_seq):
        bound = req.end_message_seq - 1
        if not req.end_message_seq:
            bound = await ctx.store.max_seq(channel_id, req.channel_type)
        return int(got[-1].message_seq < bound)
    return int(got[0].message_seq > req.end_message_seq + 1)


async def message_sync(ctx: ApiContext, request: Request, req: MessageSyncReq) -> Response:
    """A page of a channel's history (WuKongIM ``/channel/messagesync`` semantics)."""
    caller = await require_user(request, ctx.access, req.login_uid, field="login_uid")
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    got = await ctx.store.get_messages(
        channel_id,
        req.channel_type,
        start_seq=req.start_message_seq,
        end_seq=req.end_message_seq,
        limit=req.limit or DEFAULT_MESSAGESYNC_LIMIT,
        pull_mode=req.pull_mode,
    )
    messages = await messages_with_extra(ctx, got, caller)  # cards: per viewer
    return bare(
        {
            "start_message_seq": req.start_message_seq,
            "end_message_seq": req.end_message_seq,
            "more": await _more(ctx, channel_id, req, got),
            "messages": messages,
        },
        headers={EPOCH_HEADER: ctx.store.epoch},
    )


# --- /message/extra/sync ---------------------------------------------------------------------


async def extra_sync(ctx: ApiContext, request: Request, req: ExtraSyncReq) -> Response:
    """Extension rows changed after ``extra_version``, ascending (TSDD shape)."""
    caller = await require_user_or_token(request, ctx.access, req.login_uid, field="login_uid")
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    limit = req.limit or DEFAULT_EXTRA_SYNC_LIMIT
    page = await ctx.ext.sync(channel_id, req.channel_type, req.extra_version, limit)
    rows = await user_rows(ctx, page.rows, caller)  # cards: per viewer
    headers = {EPOCH_HEADER: page.epoch}
    if req.envelope:
        return bare({"epoch": page.epoch, "rows": rows, "more": int(page.more)}, headers)
    return bare(rows, headers)


def endpoints(settings: Settings) -> list[Endpoint[Any]]:
    """The client routes: history and extension sync."""
    conversation = {"$ref": "#/components/schemas/Conversation"}
    row = {"$ref": "#/components/schemas/ExtRow"}
    envelope = {
        "type": "object",
        "properties": {
            "epoch": {"type": "string"},
            "rows": array_of(row),
            "more": {"type": "integer", "enum": [0, 1]},
        },
    }
    page = {
        "type": "object",
        "properties": {
            "start_message_seq": {"type": "integer"},
            "end_message_seq": {"type": "integer"},
            "more": {"type": "integer", "enum": [0, 1]},
            "messages": array_of(MESSAGE_RESP),
        },
    }
    return [
        Endpoint(
            "POST",
            "/conversation/sync",
            "A user's conversations with recent messages",
            Access.USER,
            conversation_sync,
            body=CONVERSATION_SYNC,
            response=array_of(conversation),
            tag="sync",
        ),
        Endpoint(
            "POST",
            "/channel/messagesync",
            "A page of a channel's messages",
            Access.USER,
            message_sync,
            body=MESSAGE_SYNC,
            response=page,
            tag="sync",
        ),
        Endpoint(
            "POST",
            "/message/extra/sync",
            f"Extension rows changed after a cursor (≤ {settings.ext_sync_max_limit} per call)",
            Access.USER,
            extra_sync,
            body=EXTRA_SYNC,
            response={"oneOf": [array_of(row), envelope]},
            tag="extensions",
        ),
    ]

"""Endpoints a client app may call itself (spec §5.2, §6, §7): ``/conversation/sync``,
``/channel/messagesync`` and ``/message/extra/sync``. Each takes the business key (acting
for the body's uid) or the user's own token (``magpie.api.auth``); who may read a channel is
the core's decision (:meth:`magpie.core.access.AccessControl.readable_channel`).

Each ``/channel/messagesync`` message carries its extension as ``message_extra`` (I6), and
the answer — like ``/conversation/sync``'s — the store epoch in the ``X-Magpie-Epoch`` header
(I7), so a client's freshly loaded page is current and tied to the store it came from (and a
client learns the epoch before it stores anything of a sync). ``/message/extra/sync`` answers
in TangSengDaoDao's shape: a bare array of rows (``"envelope": true`` gives ``{epoch, rows,
more}``). Extension rows are rendered per caller by :mod:`magpie.api.views` (card state
projected)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.auth import require_user, require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.history import (
    MORE_HEADER,
    AnswerBudget,
    JsonBytes,
    chunks,
    ext_row_bytes,
    page_rows,
    payload_budget,
    reader,
)
from magpie.api.render import conversation_resp
from magpie.api.routes._shared import MAX_RECENTS, MAX_SYNC_LIMIT, MESSAGE_RESP, SEQ, array_of
from magpie.api.schema import (
    Array,
    ChannelId,
    ChannelType,
    Field,
    Flag,
    Integer,
    Object,
    String,
    Uid,
    request,
)
from magpie.api.views import messages_with_extra, user_rows
from magpie.config import Settings
from magpie.core.access import Caller
from magpie.domain.channels import channel_id_problem, visible_channel_id
from magpie.domain.ext import ExtState
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


@request
class LargeChannel:
    """An entry of ``larges`` (accepted for compatibility; large channels are not special)."""

    channel_id: str = Field(ChannelId())
    channel_type: int = Field(ChannelType())


_NO_SEQS: LastMsgSeqs = MappingProxyType({})


@request
class ConversationSyncReq:
    """``/conversation/sync``."""

    uid: str = Field(Uid())
    version: int = Field(
        SEQ, default=0, doc="only conversations changed after this version; 0 = all"
    )
    last_msg_seqs: LastMsgSeqs = Field(
        _LastMsgSeqsSpec(),
        default_factory=lambda: _NO_SEQS,
        doc="the client's last seq per channel",
    )
    msg_count: int = Field(
        Integer(0, MAX_RECENTS), default=0, doc="recent messages per conversation"
    )
    larges: Sequence[LargeChannel] = Field(Array(Object.of(LargeChannel), MAX_LARGES), default=())


@request
class MessageSyncReq:
    """``/channel/messagesync``."""

    login_uid: str = Field(
        Uid(allow_empty=True), default="", doc="the reader; required with a user token"
    )
    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())
    start_message_seq: int = Field(SEQ, default=0, doc="inclusive")
    end_message_seq: int = Field(SEQ, default=0, doc="exclusive; 0 = no bound")
    limit: int = Field(
        Integer(0, MAX_SYNC_LIMIT), default=DEFAULT_MESSAGESYNC_LIMIT, doc="0 = default"
    )
    pull_mode: int = Field(Flag(), default=0, doc="0 = down (older), 1 = up (newer)")


@request
class ExtraSyncReq:
    """``/message/extra/sync`` (TSDD ``{channel_id, channel_type, extra_version, limit}``)."""

    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())
    extra_version: int = Field(
        SEQ, default=0, doc="cursor: the highest extra_version held; 0 = newest"
    )
    limit: int = Field(
        Integer(0, 2**31 - 1), default=DEFAULT_EXTRA_SYNC_LIMIT, doc="0 = default; capped"
    )
    login_uid: str = Field(
        Uid(allow_empty=True), default="", doc="the reader (optional with a user token)"
    )
    envelope: int = Field(Flag(), default=0, doc="1 = {epoch, rows, more} instead of a bare array")


CONVERSATION_SYNC = Object.of(ConversationSyncReq)
MESSAGE_SYNC = Object.of(MessageSyncReq)
EXTRA_SYNC = Object.of(ExtraSyncReq)


# --- /conversation/sync ---------------------------------------------------------------------


async def _recents(
    ctx: ApiContext,
    row: ConversationRow,
    req: ConversationSyncReq,
    viewer: str,
    budget: AnswerBudget,
) -> list[StoredMessage]:
    """The newest ``msg_count`` messages after the client's last seq, up to the last one
    the user received in this conversation (``last_msg_seq``), so a user who left a group
    gets nothing sent there since. The read takes at most the budget's remaining payload."""
    visible = visible_channel_id(row.channel_id, row.channel_type, viewer)
    after = req.last_msg_seqs.get((visible, row.channel_type), 0)
    if req.msg_count <= 0 or row.last_msg_seq <= after:
        return []
    return await ctx.store.get_messages(
        row.channel_id,
        row.channel_type,
        start_seq=row.last_msg_seq,
        end_seq=after,
        limit=req.msg_count,
        pull_mode=0,
        max_bytes=max(1, budget.remaining() * 3 // 4),
    )


async def conversation_sync(
    ctx: ApiContext, request: Request, req: ConversationSyncReq
) -> Response:
    """The user's conversations changed after ``version``, newest first, with recents.

    WuKongIM's answer has no paging, so the conversations are all listed; their recent
    messages stop at ``history_max_bytes`` (later conversations then come without recents,
    and ``X-Magpie-More: 1`` says so — ``/channel/messagesync`` has the rest)."""
    caller = await require_user(request, ctx.access, req.uid)
    budget = AnswerBudget(ctx.settings.history_max_bytes)
    cut = False
    async with ctx.reads.slot(reader(caller)):
        for row in await ctx.store.list_conversations(caller.uid):
            if row.version <= req.version:
                continue
            recents = [] if cut else await _recents(ctx, row, req, caller.uid, budget)
            if recents and budget.add(conversation_resp(row, recents, caller.uid)):
                continue
            cut = cut or bool(recents)
            budget.add(conversation_resp(row, [], caller.uid), force=True)
    if cut:
        ctx.metrics.history_truncated.labels(endpoint="/conversation/sync").inc()
    headers = {MORE_HEADER: str(int(cut)), EPOCH_HEADER: ctx.store.epoch}
    return JsonBytes(budget.array(), headers=headers)


# --- /channel/messagesync -------------------------------------------------------------------


async def _more(
    ctx: ApiContext, channel_id: str, req: MessageSyncReq, got: list[StoredMessage]
) -> int:
    """Whether more messages lie beyond ``got`` in the pull direction. Seqs are gap-free
    from 1 (I3), so this is arithmetic on the first/last seq, plus ``max_seq`` going up."""
    if not got:
        return 0
    if _pulls_up(req):
        bound = req.end_message_seq - 1
        if not req.end_message_seq:
            bound = await ctx.store.max_seq(channel_id, req.channel_type)
        return int(got[-1].message_seq < bound)
    return int(got[0].message_seq > req.end_message_seq + 1)


def _pulls_up(req: MessageSyncReq) -> bool:
    """Whether the page is the oldest messages from a start (else the newest ones)."""
    return req.pull_mode == _PULL_UP and bool(req.start_message_seq or req.end_message_seq)


async def _collect(
    ctx: ApiContext, got: list[StoredMessage], caller: Caller, budget: AnswerBudget
) -> list[StoredMessage]:
    """Render ``got`` (in the order of priority) into ``budget`` with each message's
    extension, a few at a time; the messages that fit, in that order."""
    kept: list[StoredMessage] = []
    for chunk in chunks(got, page_rows(ctx.settings, ext_row_bytes(ctx.settings), len(got))):
        rendered = await messages_with_extra(ctx, chunk, caller)  # cards: per viewer
        for message, item in zip(chunk, rendered, strict=True):
            if not budget.add(item):
                return kept
            kept.append(message)
    return kept


async def message_sync(ctx: ApiContext, request: Request, req: MessageSyncReq) -> Response:
    """A page of a channel's history (WuKongIM ``/channel/messagesync`` semantics), at most
    ``history_max_bytes`` of it: a longer page keeps the messages nearest the start (the
    newest when pulling down) and says ``more``."""
    caller = await require_user(request, ctx.access, req.login_uid, field="login_uid")
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    budget = AnswerBudget(ctx.settings.history_max_bytes)
    async with ctx.reads.slot(reader(caller)):
        got = await ctx.store.get_messages(
            channel_id,
            req.channel_type,
            start_seq=req.start_message_seq,
            end_seq=req.end_message_seq,
            limit=req.limit or DEFAULT_MESSAGESYNC_LIMIT,
            pull_mode=req.pull_mode,
            max_bytes=payload_budget(ctx.settings),
        )
        up = _pulls_up(req)
        kept = await _collect(ctx, got if up else got[::-1], caller, budget)
        if not up:
            kept.reverse()
            budget.items.reverse()
        more = await _more(ctx, channel_id, req, kept)
    if budget.full:
        ctx.metrics.history_truncated.labels(endpoint="/channel/messagesync").inc()
    head = {
        "start_message_seq": req.start_message_seq,
        "end_message_seq": req.end_message_seq,
        "more": more,
    }
    headers = {EPOCH_HEADER: ctx.store.epoch, MORE_HEADER: str(more)}
    return JsonBytes(budget.object(head, "messages"), headers=headers)


# --- /message/extra/sync ---------------------------------------------------------------------


async def _sync_rows(
    ctx: ApiContext, states: list[ExtState], caller: Caller, budget: AnswerBudget
) -> int:
    """Render ``states`` into ``budget`` (card rows as the caller's projection); how many
    fitted."""
    fitted = 0
    for row in await user_rows(ctx, states, caller):  # cards: per viewer
        if not budget.add(row):
            break
        fitted += 1
    return fitted


async def _sync_pages(
    ctx: ApiContext, req: ExtraSyncReq, channel_id: str, caller: Caller, budget: AnswerBudget
) -> tuple[str, bool]:
    """Rows after the cursor, page by page, into ``budget``: the epoch and ``more``.

    Cursor 0 gives the newest rows, as many as fit the budget (older rows are older states
    of messages the client loads anyway, as :meth:`~magpie.ext.service.ExtService.sync`
    says); after a cursor, pages are small enough to stay within the budget even if every
    row had the largest ``extra`` the limits allow."""
    limit = min(req.limit or DEFAULT_EXTRA_SYNC_LIMIT, ctx.ext.sync_max_limit)
    if req.extra_version <= 0:
        newest = ctx.settings.history_max_bytes  # the stored JSON's size bounds the read
        page = await ctx.ext.sync(channel_id, req.channel_type, 0, limit, newest)
        await _sync_rows(ctx, page.rows[::-1], caller, budget)  # the newest first
        budget.items.reverse()
        return page.epoch, False
    per_page = page_rows(ctx.settings, ext_row_bytes(ctx.settings), limit)
    cursor, taken, epoch = req.extra_version, 0, ""
    while True:
        want = min(per_page, limit - taken)
        page = await ctx.ext.sync(channel_id, req.channel_type, cursor, want)
        epoch = epoch or page.epoch
        fitted = await _sync_rows(ctx, page.rows, caller, budget)
        taken += fitted
        if budget.full or not page.more:
            return epoch, budget.full or page.more
        if taken >= limit:
            return epoch, True
        cursor = page.rows[fitted - 1].extra_version


async def extra_sync(ctx: ApiContext, request: Request, req: ExtraSyncReq) -> Response:
    """Extension rows changed after ``extra_version``, ascending (TSDD shape), at most
    ``history_max_bytes`` of them (``more`` / ``X-Magpie-More`` when it stopped early)."""
    caller = await require_user_or_token(request, ctx.access, req.login_uid, field="login_uid")
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    budget = AnswerBudget(ctx.settings.history_max_bytes)
    async with ctx.reads.slot(reader(caller)):
        epoch, more = await _sync_pages(ctx, req, channel_id, caller, budget)
    if budget.full:
        ctx.metrics.history_truncated.labels(endpoint="/message/extra/sync").inc()
    headers = {EPOCH_HEADER: epoch, MORE_HEADER: str(int(more))}
    if req.envelope:
        body = budget.object({"epoch": epoch, "more": int(more)}, "rows")
        return JsonBytes(body, headers=headers)
    return JsonBytes(budget.array(), headers=headers)


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

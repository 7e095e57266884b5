"""Message endpoints (spec §4.1, §6): send, batch send, the offline command queue."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.history import MORE_HEADER, AnswerBudget, JsonBytes, payload_budget, read_stopped
from magpie.api.http import SendRefused, bare, ok, ok_data
from magpie.api.render import message_resp
from magpie.api.routes._shared import (
    MAX_SYNC_LIMIT,
    MAX_TOPIC_LENGTH,
    MESSAGE_RESP,
    OK,
    SEQ,
    array_of,
    data_schema,
    props,
    uid_list,
)
from magpie.api.schema import (
    Base64,
    ChannelId,
    ChannelType,
    Field,
    Flag,
    Integer,
    Object,
    PerNode,
    String,
    Uid,
    request,
)
from magpie.config import Settings
from magpie.core.messaging import SendRequest, SendResult
from magpie.domain.channels import PERSON
from magpie.protocol.packets import Flags, ReasonCode

__all__ = ["Header", "endpoints", "new_client_msg_no"]

#: Default ``limit`` of ``/message/sync``.
DEFAULT_SYNC_LIMIT = 100


@request
class Header:
    """The WuKongIM message header flags."""

    no_persist: int = Field(Flag(), default=0, doc="1 = online only, never stored")
    red_dot: int = Field(Flag(), default=0, doc="1 = counts as unread")
    sync_once: int = Field(Flag(), default=0, doc="1 = command for each recipient's offline queue")

    def flags(self) -> Flags:
        """As fixed-header flags."""
        out = Flags.NONE
        if self.no_persist:
            out |= Flags.NO_PERSIST
        if self.red_dot:
            out |= Flags.RED_DOT
        if self.sync_once:
            out |= Flags.SYNC_ONCE
        return out


#: The ``payload`` of a send: base64, at most the node's ``max_payload_bytes``.
_PAYLOAD = PerNode(lambda settings: Base64(settings.max_payload_bytes))


@request
class SendReq:
    """``/message/send``."""

    header: Header = Field(Object.of(Header), default=Header())
    client_msg_no: str = Field(String(128), default="", doc="dedupe key; default: a UUID + '0'")
    from_uid: str = Field(Uid(allow_empty=True), default="", doc="sender; may be empty for groups")
    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(ChannelType())
    subscribers: Sequence[str] | None = Field(
        uid_list(), default=None, doc="deliver only to these members (commands)"
    )
    payload: bytes = Field(_PAYLOAD, doc="JSON object with an integer type")
    setting: int = Field(Integer(0, 255), default=0)
    expire: int = Field(Integer(0, 2**32 - 1), default=0, doc="seconds; 0 = never")
    topic: str = Field(String(MAX_TOPIC_LENGTH), default="")


@request
class SendBatchReq:
    """``/message/sendbatch``: one person message from ``from_uid`` to each subscriber."""

    header: Header = Field(Object.of(Header), default=Header())
    from_uid: str = Field(Uid())
    subscribers: Sequence[str] = Field(uid_list(1))
    payload: bytes = Field(_PAYLOAD)


@request
class SyncReq:
    """``/message/sync``."""

    uid: str = Field(Uid())
    message_seq: int = Field(
        SEQ, default=0, doc="last queue seq the client has; 0 = from the ack cursor"
    )
    limit: int = Field(Integer(0, MAX_SYNC_LIMIT), default=DEFAULT_SYNC_LIMIT, doc="0 = default")


@request
class SyncAckReq:
    """``/message/syncack``."""

    uid: str = Field(Uid())
    last_message_seq: int = Field(Integer(1, 2**63 - 1))


SYNC = Object.of(SyncReq)
SYNC_ACK = Object.of(SyncAckReq)


def new_client_msg_no() -> str:
    """The HTTP API's default ``client_msg_no``: a UUID + ``"0"`` (spec §4)."""
    return uuid.uuid4().hex + "0"


def _count(ctx: ApiContext, result: SendResult) -> None:
    if result.reason is ReasonCode.SUCCESS:
        if not result.duplicate:
            ctx.metrics.messages.labels(origin="api").inc()
    else:
        ctx.metrics.send_refused.labels(reason=result.reason.name.lower()).inc()


def _refusal(result: SendResult) -> SendRefused:
    name = result.reason.name.lower()
    return SendRefused(f"send refused: {name}", reason=int(result.reason), reason_name=name)


async def send(ctx: ApiContext, _: Request, req: SendReq) -> Response:
    """Send one message as ``from_uid`` (commands and sync-once allowed; membership of the
    sender not required). A refusal is 400 ``send_refused`` with the reason code."""
    result = await ctx.messaging.send(
        SendRequest(
            from_uid=req.from_uid,
            channel_id=req.channel_id,
            channel_type=req.channel_type,
            payload=req.payload,
            client_msg_no=req.client_msg_no or new_client_msg_no(),
            flags=req.header.flags(),
            setting=req.setting,
            topic=req.topic,
            expire=req.expire,
            from_api=True,
            subscribers=req.subscribers,
        )
    )
    _count(ctx, result)
    if result.reason is not ReasonCode.SUCCESS:
        raise _refusal(result)
    data = {
        "message_id": result.message_id,
        "client_msg_no": result.client_msg_no,
        "message_seq": result.message_seq,
    }
    return ok_data(data)


async def sendbatch(ctx: ApiContext, _: Request, req: SendBatchReq) -> Response:
    """Send the payload to each subscriber as a person message; report who failed."""
    fail_uids: list[str] = []
    reasons: list[str] = []
    for uid in dict.fromkeys(req.subscribers):
        result = await ctx.messaging.send(
            SendRequest(
                from_uid=req.from_uid,
                channel_id=uid,
                channel_type=PERSON,
                payload=req.payload,
                client_msg_no=new_client_msg_no(),
                flags=req.header.flags(),
                from_api=True,
            )
        )
        _count(ctx, result)
        if result.reason is not ReasonCode.SUCCESS:
            fail_uids.append(uid)
            reasons.append(result.reason.name.lower())
    return bare({"fail_uids": fail_uids, "reason": reasons})


async def sync(ctx: ApiContext, _: Request, req: SyncReq) -> Response:
    """Queued sync-once commands after ``min(message_seq, cursor)`` (cursor when 0), each
    with its queue seq as ``message_seq``; at most ``history_max_bytes`` of them
    (``X-Magpie-More: 1`` when the answer stopped early: read on from its last seq)."""
    limit, max_bytes = req.limit or DEFAULT_SYNC_LIMIT, payload_budget(ctx.settings)
    budget = AnswerBudget(ctx.settings.history_max_bytes)
    async with ctx.reads.slot(None):
        cursor = await ctx.store.queue_cursor(req.uid)
        after = min(req.message_seq, cursor) if req.message_seq else cursor
        entries = await ctx.store.read_queue(req.uid, after, limit, max_bytes)
    for e in entries:
        if not budget.add(message_resp(e.message, req.uid, e.queue_seq)):
            break
    payloads = (e.message.payload for e in entries)
    more = budget.full or read_stopped(payloads, len(entries), limit, max_bytes)
    if more:
        ctx.metrics.history_truncated.labels(endpoint="/message/sync").inc()
    return JsonBytes(budget.array(), headers={MORE_HEADER: str(int(more))})


async def syncack(ctx: ApiContext, _: Request, req: SyncAckReq) -> Response:
    """Advance the user's queue cursor (never backwards)."""
    await ctx.store.ack_queue(req.uid, req.last_message_seq)
    return ok()


def endpoints(settings: Settings) -> list[Endpoint[Any]]:
    """The message routes."""
    sent = data_schema(props(message_id="integer", client_msg_no="string", message_seq="integer"))
    batch = {
        "type": "object",
        "properties": {
            "fail_uids": array_of({"type": "string"}),
            "reason": array_of({"type": "string"}),
        },
    }
    return [
        Endpoint(
            "POST",
            "/message/send",
            "Send a message or command",
            Access.BUSINESS,
            send,
            body=Object.of(SendReq, settings),
            response=sent,
            tag="messages",
        ),
        Endpoint(
            "POST",
            "/message/sendbatch",
            "Send one person message to many users",
            Access.BUSINESS,
            sendbatch,
            body=Object.of(SendBatchReq, settings),
            response=batch,
            tag="messages",
        ),
        Endpoint(
            "POST",
            "/message/sync",
            "Read a user's offline command queue",
            Access.BUSINESS,
            sync,
            body=SYNC,
            response=array_of(MESSAGE_RESP),
            tag="messages",
        ),
        Endpoint(
            "POST",
            "/message/syncack",
            "Acknowledge the offline command queue",
            Access.BUSINESS,
            syncack,
            body=SYNC_ACK,
            response=OK,
            tag="messages",
        ),
    ]

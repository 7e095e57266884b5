"""The send flow: validate -> authorize -> dedupe -> assign seq -> commit -> fan-out.

This is the one path every message takes, whether it arrives as a SEND packet from a client
or through ``/message/send`` from a business server. Invariants (ARCHITECTURE.md):

* I1: the caller acknowledges only after :meth:`Messaging.send` returned, i.e. after commit;
* I2/I3: dedupe and gap-free seq are the store's transaction;
* I4: fan-out (bus publish) runs only after the commit;
* the message's durable jobs (its webhook events: the *outbox*, :meth:`Messaging.set_outbox`)
  are written in its own transaction, so they exist exactly when the message does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from magpie.bus.interface import Bus, Delivery
from magpie.core.access import write_refusal
from magpie.core.channels import (
    validate_channel_id,
    validate_channel_type,
    validate_uid,
)
from magpie.core.ids import Snowflake
from magpie.domain.channels import PERSON, fake_channel_id
from magpie.domain.content import CMD, read_payload
from magpie.domain.jobs import NewJob
from magpie.domain.reminders import NewReminder
from magpie.errors import BadRequest, MagpieError
from magpie.protocol.packets import Flags, ReasonCode
from magpie.store.interface import NewMessage, Store, StoredMessage

__all__ = ["Checked", "ContentRules", "Messaging", "Outbox", "Refused", "SendRequest", "SendResult"]

log = logging.getLogger(__name__)

# Plain ints for flag tests on the send path: IntFlag arithmetic runs Python code.
_NO_PERSIST = int(Flags.NO_PERSIST)
_SYNC_ONCE = int(Flags.SYNC_ONCE)
_NOT_DUP = int(~Flags.DUP)  # the flag nibble without DUP

#: The durable jobs a stored message brings along, given the message and its recipients
#: (built before the commit, written in its transaction). Must not block.
Outbox = Callable[[NewMessage, tuple[str, ...]], Sequence[NewJob]]


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One message to send. ``channel_id`` is as the sender sees it (the peer uid for a person
    channel). ``from_api`` marks the business API, which may send commands and sync-once
    messages and may send to channels its ``from_uid`` is not a member of."""

    from_uid: str
    channel_id: str
    channel_type: int
    payload: bytes
    client_msg_no: str
    flags: Flags = Flags.RED_DOT
    setting: int = 0
    topic: str = ""
    expire: int = 0
    from_api: bool = False
    subscribers: Sequence[str] | None = None
    exclude_conn: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to a send: ``reason`` is SUCCESS or why it was refused."""

    reason: ReasonCode
    message_id: int = 0
    message_seq: int = 0
    client_msg_no: str = ""
    duplicate: bool = False
    message: StoredMessage | None = None
    recipients: tuple[str, ...] = field(default_factory=tuple)


class Refused(MagpieError):
    """Internal: a send refused with a reason code (turned into a :class:`SendResult`)."""

    code = "send_refused"

    def __init__(self, reason: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_payload(payload: bytes, max_bytes: int) -> dict[str, object]:
    """The payload's content; refuses what breaks the payload rule
    (:func:`magpie.domain.content.read_payload`) or is above ``max_bytes``."""
    if len(payload) > max_bytes:
        raise Refused(ReasonCode.PAYLOAD_DECODE_ERROR, f"payload above {max_bytes} bytes")
    try:
        return read_payload(payload)
    except ValueError as exc:
        raise Refused(ReasonCode.PAYLOAD_DECODE_ERROR, str(exc)) from None


@dataclass(frozen=True, slots=True)
class Checked:
    """A message's content after :class:`ContentRules` checked it: the payload to store
    (possibly normalised, e.g. a reply's preview) and the reminders to create with it."""

    payload: bytes
    reminders: tuple[NewReminder, ...] = ()


class ContentRules(Protocol):
    """The conversation features' rules on what a stored message says (mentions, replies,
    files; ``magpie.core.content_rules``). :meth:`check` runs before the commit of every
    channel-log message that is not a command and may refuse it (:class:`Refused`);
    :meth:`committed` runs after the commit of a new one (its notices)."""

    async def check(
        self,
        req: SendRequest,
        content: dict[str, Any],
        channel_id: str,
        recipients: tuple[str, ...],
    ) -> Checked:
        """The payload and reminders to store, or :class:`Refused`."""
        ...

    async def committed(self, message: StoredMessage, checked: Checked) -> None:
        """Side effects after the commit (never raises for the sender)."""
        ...


class Messaging:
    """The IM core's send flow and its after-commit fan-out."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        ids: Snowflake,
        *,
        max_payload_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._bus = bus
        self._ids = ids
        self._max_payload = max_payload_bytes
        self._clock = clock
        self._outbox: Outbox | None = None
        self._rules: ContentRules | None = None

    def set_rules(self, rules: ContentRules) -> None:
        """Check the content of every channel-log message with ``rules`` (mentions, replies,
        files) before it is stored."""
        self._rules = rules

    def set_outbox(self, outbox: Outbox) -> None:
        """Commit ``outbox(message, recipients)`` with every stored message (the webhook
        events); without one (webhooks off) the send path builds and writes nothing more."""
        self._outbox = outbox

    async def send(self, req: SendRequest) -> SendResult:
        """Send one message; never raises for a refusal (see ``SendResult.reason``)."""
        try:
            return await self._send(req)
        except Refused as exc:
            log.debug("send refused (%s): %s", exc.reason.name, exc.message)
            return SendResult(reason=exc.reason, client_msg_no=req.client_msg_no)

    async def _send(self, req: SendRequest) -> SendResult:
        self._check_flags(req)
        content = parse_payload(req.payload, self._max_payload)
        if content["type"] == CMD and not req.from_api:
            raise Refused(ReasonCode.NOT_ALLOW_SEND, "clients may not send commands")
        channel_id, recipients = await self._route(req)
        checked = await self._check_content(req, content, channel_id, recipients)
        new = NewMessage(
            message_id=self._ids.next_id(),
            client_msg_no=req.client_msg_no,
            from_uid=req.from_uid,
            channel_id=channel_id,
            channel_type=req.channel_type,
            timestamp=int(self._clock()),
            payload=req.payload if checked is None else checked.payload,
            flags=int(req.flags) & _NOT_DUP,
            setting=req.setting,
            topic=req.topic,
            expire=req.expire,
        )
        return await self._commit_and_fan_out(new, recipients, req.exclude_conn, checked)

    async def _check_content(
        self,
        req: SendRequest,
        content: dict[str, Any],
        channel_id: str,
        recipients: tuple[str, ...],
    ) -> Checked | None:
        """The content rules' verdict on a channel-log message (``None``: not checked — a
        command, or a message that is not stored in the channel log)."""
        flags = int(req.flags)
        if self._rules is None or content["type"] == CMD or flags & (_NO_PERSIST | _SYNC_ONCE):
            return None
        checked = await self._rules.check(req, content, channel_id, recipients)
        if len(checked.payload) > self._max_payload:
            raise Refused(
                ReasonCode.PAYLOAD_DECODE_ERROR, f"payload above {self._max_payload} bytes"
            )
        return checked

    @staticmethod
    def _check_flags(req: SendRequest) -> None:
        if int(req.flags) & _SYNC_ONCE and not req.from_api:
            raise Refused(ReasonCode.NOT_SUPPORT_HEADER, "clients may not send sync-once")
        if not req.client_msg_no or len(req.client_msg_no) > 128:
            raise Refused(ReasonCode.PAYLOAD_DECODE_ERROR, "client_msg_no must be 1–128 chars")

    async def _route(self, req: SendRequest) -> tuple[str, tuple[str, ...]]:
        """The storage channel id and the recipients; refuses what the sender may not do."""
        try:
            validate_channel_type(req.channel_type)
            validate_channel_id(req.channel_id)
            if req.from_uid or not req.from_api:
                validate_uid(req.from_uid, "from_uid")
        except BadRequest as exc:
            raise Refused(ReasonCode.CHANNEL_ID_ERROR, exc.message) from None
        if req.channel_type == PERSON:
            return self._route_person(req)
        return await self._route_channel(req)

    def _route_person(self, req: SendRequest) -> tuple[str, tuple[str, ...]]:
        try:
            validate_uid(req.channel_id, "channel_id")
        except BadRequest as exc:
            raise Refused(ReasonCode.CHANNEL_ID_ERROR, exc.message) from None
        if not req.from_uid:
            raise Refused(ReasonCode.CHANNEL_ID_ERROR, "a person message needs a from_uid")
        pair = tuple(sorted({req.from_uid, req.channel_id}))
        recipients = self._restrict(pair, req.subscribers)
        return fake_channel_id(req.from_uid, req.channel_id), recipients

    async def _route_channel(self, req: SendRequest) -> tuple[str, tuple[str, ...]]:
        info = await self._store.get_channel(req.channel_id, req.channel_type)
        members = []
        if info is not None:
            members = await self._store.get_subscribers(req.channel_id, req.channel_type)
        refusal = write_refusal(info, members, req.from_uid, from_api=req.from_api)
        if refusal is not None:
            raise Refused(*refusal)
        return req.channel_id, self._restrict(tuple(members), req.subscribers)

    @staticmethod
    def _restrict(members: tuple[str, ...], only: Sequence[str] | None) -> tuple[str, ...]:
        if only is None:
            return members
        wanted = set(only)
        return tuple(uid for uid in members if uid in wanted)

    async def _commit_and_fan_out(
        self,
        new: NewMessage,
        recipients: tuple[str, ...],
        exclude_conn: str,
        checked: Checked | None = None,
    ) -> SendResult:
        queue_seqs: dict[str, int] = {}
        if new.flags & _NO_PERSIST:
            stored, duplicate = _unstored(new), False
        else:
            jobs = () if self._outbox is None else self._outbox(new, recipients)
            if new.flags & _SYNC_ONCE:
                appended, queue_seqs = await self._store.append_to_queues(new, recipients, jobs)
            else:
                reminders = () if checked is None else checked.reminders
                appended = await self._store.append_message(new, recipients, jobs, reminders)
            stored, duplicate = appended.message, appended.duplicate
        if not duplicate:
            await self._bus.publish(Delivery(stored, recipients, exclude_conn, queue_seqs))
            if checked is not None and self._rules is not None:
                await self._after(stored, checked, self._rules)
        return SendResult(
            reason=ReasonCode.SUCCESS,
            message_id=stored.message_id,
            message_seq=stored.message_seq,
            client_msg_no=stored.client_msg_no,
            duplicate=duplicate,
            message=stored,
            recipients=recipients,
        )

    @staticmethod
    async def _after(stored: StoredMessage, checked: Checked, rules: ContentRules) -> None:
        try:
            await rules.committed(stored, checked)
        except Exception:
            log.exception("content rules failed after message %d committed", stored.message_id)


def _unstored(new: NewMessage) -> StoredMessage:
    """A no-persist message: it gets an id but no seq and is never written."""
    return StoredMessage(
        message_id=new.message_id,
        message_seq=0,
        client_msg_no=new.client_msg_no,
        from_uid=new.from_uid,
        channel_id=new.channel_id,
        channel_type=new.channel_type,
        timestamp=new.timestamp,
        payload=new.payload,
        flags=new.flags,
        setting=new.setting,
        topic=new.topic,
        expire=new.expire,
    )

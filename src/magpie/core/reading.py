"""Read state (``docs/conversation.md``, item 3): read receipts and read positions.

**Receipts.** A message sent with the receipt setting (setting bit ``0x80``) counts its
readers. A member's first read of it is one change through the extension primitive
(:meth:`~magpie.ext.service.ExtService.update`): ``readed_count + 1`` and ``unread_count`` (the
channel's members other than the sender who have not read it), the record ``read:<uid>``
(who read it and when: the "read by" list), an operation-log row, and after commit the
``syncMessageExtra`` CMD that brings the counts to the sender live. The action id
``read:<uid>`` makes the read idempotent: a repeat is a duplicate and changes nothing.

**Read positions.** A user's read position per conversation (``readed_to_msg_seq``) and the
``unread`` count after it are the store's
(:meth:`~magpie.store.interface.Store.clear_unread`); a moved position takes a new
conversation version, and an online-only ``unreadClear`` CMD tells the user's other devices.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from magpie.core.notices import UNREAD_CLEAR, to_self
from magpie.domain.channels import PERSON, visible_channel_id
from magpie.domain.content import cmd_payload
from magpie.domain.ext import Actor, Decision, ExtRecord, ExtState, Mutate, Result
from magpie.errors import NotFound
from magpie.ext.notify import CmdSender
from magpie.ext.service import MAX_ACTION_ID_LENGTH, ExtService
from magpie.store.interface import ConversationRow, Store, StoredMessage

__all__ = ["READ_PREFIX", "RECEIPT", "ReadOutcome", "Reader", "Reading", "read_key"]

log = logging.getLogger(__name__)

#: The message setting bit of "send me read receipts" (spec §1.5, bit 7).
RECEIPT = 0x80
#: Records of readers are keyed ``read:<uid>``.
READ_PREFIX = "read:"


def read_key(uid: str) -> str:
    """The record key (and action id, when it fits) of ``uid``'s read."""
    return READ_PREFIX + uid


def _action_id(uid: str) -> str:
    key = read_key(uid)
    if len(key) <= MAX_ACTION_ID_LENGTH:
        return key
    return "read#" + hashlib.sha256(uid.encode()).hexdigest()  # a long uid: its digest


def _first_read(uid: str, at_ms: int, others: int) -> Mutate:
    """Count ``uid``'s read: ``readed_count + 1``, ``unread_count`` of the ``others``."""
    key = read_key(uid)

    def mutate(state: ExtState) -> Decision:
        if key in state.records:  # counted already (the action id normally says so first)
            return Decision.rejected(Result.INVALID, "already read", code="read")
        readed = state.fields.readed_count + 1
        fields = replace(state.fields, readed_count=readed, unread_count=max(0, others - readed))
        return Decision.applied(fields, records={key: {"at": at_ms}})

    return mutate


@dataclass(frozen=True, slots=True)
class ReadOutcome:
    """What a ``/message/readed`` call did: the ids counted now (first reads), and those
    skipped (no receipt setting, the reader's own, or read before)."""

    applied: list[int]
    skipped: list[int]


@dataclass(frozen=True, slots=True)
class Reader:
    """One reader of a message: who, and when (unix milliseconds)."""

    uid: str
    at_ms: int


class Reading:
    """Receipts and read positions over the store and the extension service."""

    def __init__(
        self, store: Store, ext: ExtService, send: CmdSender, *, clock_ms: Callable[[], int]
    ) -> None:
        self._store = store
        self._ext = ext
        self._send = send
        self._clock_ms = clock_ms

    # receipts ---------------------------------------------------------------------------

    async def messages_of(
        self, channel_id: str, channel_type: int, message_ids: Sequence[int]
    ) -> list[StoredMessage]:
        """The channel-log messages ``message_ids`` of the channel (storage id), in order;
        404 (naming nothing) when one is not there."""
        found = await self._store.get_messages_by_id(message_ids)
        out = []
        for mid in dict.fromkeys(message_ids):
            m = found.get(mid)
            if (
                m is None
                or m.message_seq <= 0
                or (m.channel_id, m.channel_type)
                != (
                    channel_id,
                    channel_type,
                )
            ):
                raise NotFound("a message is not in this channel", field="message_ids")
            out.append(m)
        return out

    async def mark_read(self, uid: str, messages: Sequence[StoredMessage]) -> ReadOutcome:
        """Count ``uid``'s first read of each message with the receipt setting (the caller
        checked that ``uid`` may read them); the others are skipped. The changes of several
        messages run at once (the store commits them together)."""
        members: dict[tuple[str, int, str], int] = {}
        at = self._clock_ms()
        counted = [m for m in messages if m.setting & RECEIPT and m.from_uid != uid]
        others = [await self._others(m, members) for m in counted]
        results = await asyncio.gather(
            *(
                self._ext.update(
                    m.message_id,
                    mutate=_first_read(uid, at, n),
                    action_id=_action_id(uid),
                    actor=Actor(uid),
                    operation="read",
                    patch={},
                    reads=[read_key(uid)],
                )
                for m, n in zip(counted, others, strict=True)
            )
        )
        first = {
            m.message_id
            for m, r in zip(counted, results, strict=True)
            if r.applied and not r.duplicate
        }
        applied = [m.message_id for m in messages if m.message_id in first]
        skipped = [m.message_id for m in messages if m.message_id not in first]
        return ReadOutcome(applied, skipped)

    async def _others(self, m: StoredMessage, cache: dict[tuple[str, int, str], int]) -> int:
        """How many members of the message's channel are not its sender (counted by the
        store: reading a 1,000-member list per report was ~20% of a read's CPU, bench convo)."""
        if m.channel_type == PERSON:
            return 1
        key = (m.channel_id, m.channel_type, m.from_uid)
        if key not in cache:
            cache[key] = await self._store.count_subscribers(*key)
        return cache[key]

    async def readers(self, message_id: int, after: str, limit: int) -> list[Reader]:
        """Who read the message, ascending by uid, after the uid ``after``."""
        after_key = read_key(after) if after else ""
        found = await self._ext.list_records(message_id, READ_PREFIX, after_key, limit)
        return [_reader(r) for r in found]

    async def all_readers(self, message_id: int) -> set[str]:
        """Every reader of the message."""
        out: set[str] = set()
        after = ""
        while page := await self.readers(message_id, after, 1000):
            out.update(r.uid for r in page)
            after = page[-1].uid
        return out

    # read positions ----------------------------------------------------------------------

    async def clear_unread(
        self, uid: str, channel_id: str, channel_type: int, message_seq: int
    ) -> ConversationRow:
        """Move ``uid``'s read position (404 without such a conversation); when it moved,
        tell the user's devices (``unreadClear``)."""
        cleared = await self._store.clear_unread(uid, channel_id, channel_type, message_seq)
        if cleared is None:
            raise NotFound("no such conversation", field="channel_id")
        row, changed = cleared
        if changed:
            param = {
                "channel_id": visible_channel_id(channel_id, channel_type, uid),
                "channel_type": channel_type,
                "unread": row.unread,
                "readed_to_msg_seq": row.readed_to_msg_seq,
                "version": row.version,
            }
            if not await self._send(to_self(uid, cmd_payload(UNREAD_CLEAR, param))):
                log.info("unreadClear CMD refused")
        return row


def _reader(record: ExtRecord) -> Reader:
    at = record.value.get("at", 0)
    return Reader(record.key[len(READ_PREFIX) :], at if isinstance(at, int) else 0)

"""The persistence interface every store backend implements.

The interface speaks in domain terms only — no SQL, no SQLite-only semantics — so that a
PostgreSQL backend can implement it with the same guarantees:

* every method is one atomic transaction: either all of its writes commit or none do;
* :meth:`Store.append_message` assigns the per-channel ``message_seq`` inside the insert's
  transaction, strictly increasing and gap-free among committed messages (invariant I3), and
  deduplicates by ``(from_uid, client_msg_no)`` for the message's lifetime (I2);
* a method returns only after its transaction is durable (I1: ack = durable).

Person channels are stored under their *fake channel id* (``magpie.domain.channels``); the
store never rewrites channel ids.

Message extensions (I6) follow the same rule — :meth:`Store.update_ext` is one transaction:
the idempotency check on ``(message_id, action_id)``, the decision on the current row, the
row's ``version + 1``, the channel's ``extra_version + 1`` and the operation-log row commit
together or not at all. Extensions cross the interface as the shared value types of
:mod:`magpie.domain.ext` (:class:`ExtState`, :class:`OpRecord`, ...), the same the rest of
Magpie speaks. JSON values (``extra``, ``content_edit``, an op's ``patch``) are decoded
objects; a backend stores them as it likes (SQLite: text; PostgreSQL: ``jsonb``) and must
give back equal objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from magpie.domain.ext import ExtAttempt, ExtState, Mutate, OpRecord, UpdateResult

__all__ = [
    "AppendResult",
    "ChannelInfo",
    "ConversationRow",
    "NewMessage",
    "QueueEntry",
    "Store",
    "StoredMessage",
    "TokenRow",
]


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A user's registered token for one device flag; only its hash is stored."""

    uid: str
    device_flag: int
    token_hash: bytes
    device_level: int


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel's attributes (WuKongIM ``/channel``)."""

    channel_id: str
    channel_type: int
    large: bool = False
    ban: bool = False


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store. ``message_id`` is allocated by the caller (snowflake)."""

    message_id: int
    client_msg_no: str
    from_uid: str
    channel_id: str
    channel_type: int
    timestamp: int
    payload: bytes
    flags: int = 0
    setting: int = 0
    topic: str = ""
    expire: int = 0


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A committed message. ``message_seq`` is 0 for messages outside the channel log
    (persisted sync-once commands, which live in per-user queues)."""

    message_id: int
    message_seq: int
    client_msg_no: str
    from_uid: str
    channel_id: str
    channel_type: int
    timestamp: int
    payload: bytes
    flags: int = 0
    setting: int = 0
    topic: str = ""
    expire: int = 0


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What :meth:`Store.append_message` did: ``duplicate`` is true when a message with the
    same ``(from_uid, client_msg_no)`` already existed; ``message`` is then the original."""

    message: StoredMessage
    duplicate: bool


@dataclass(frozen=True, slots=True)
class ConversationRow:
    """One entry of a user's conversation list."""

    uid: str
    channel_id: str
    channel_type: int
    unread: int
    last_msg_seq: int
    last_client_msg_no: str
    readed_to_msg_seq: int
    timestamp: int
    version: int


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A persisted sync-once command in one user's offline queue."""

    uid: str
    queue_seq: int
    message: StoredMessage


class Store(Protocol):
    """Persistence for the IM core. All methods are coroutines and each is one transaction."""

    @property
    def epoch(self) -> str:
        """The store's incarnation id (I7): new when the store is created empty."""
        ...

    async def open(self) -> None:
        """Connect and migrate the schema to the newest version."""
        ...

    async def close(self) -> None:
        """Finish queued work and release connections."""
        ...

    # users and tokens ----------------------------------------------------------------------

    async def set_token(self, row: TokenRow) -> None:
        """Create or replace the token of ``(uid, device_flag)``."""
        ...

    async def get_token(self, uid: str, device_flag: int) -> TokenRow | None:
        """The token registered for ``(uid, device_flag)``, if any."""
        ...

    async def clear_tokens(self, uid: str, device_flag: int | None) -> int:
        """Remove the tokens of ``uid`` (one device flag, or all when ``None``); returns how
        many were removed."""
        ...

    async def find_tokens(self, token_hash: bytes) -> list[TokenRow]:
        """Every token row whose digest is ``token_hash`` (a token presented without a uid),
        sorted by ``(uid, device_flag)``."""
        ...

    # channels ------------------------------------------------------------------------------

    async def upsert_channel(self, info: ChannelInfo) -> None:
        """Create the channel or update its attributes."""
        ...

    async def get_channel(self, channel_id: str, channel_type: int) -> ChannelInfo | None:
        """The channel, if it exists."""
        ...

    async def delete_channel(self, channel_id: str, channel_type: int) -> bool:
        """Delete the channel and its subscribers (messages stay); false if it did not exist."""
        ...

    async def add_subscribers(
        self, channel_id: str, channel_type: int, uids: Sequence[str], *, reset: bool = False
    ) -> None:
        """Add subscribers (creating the channel if needed); ``reset`` replaces the set."""
        ...

    async def remove_subscribers(
        self, channel_id: str, channel_type: int, uids: Sequence[str]
    ) -> None:
        """Remove subscribers; unknown uids are ignored."""
        ...

    async def get_subscribers(self, channel_id: str, channel_type: int) -> list[str]:
        """The channel's subscribers, sorted."""
        ...

    async def is_subscriber(self, channel_id: str, channel_type: int, uid: str) -> bool:
        """Whether ``uid`` subscribes to the channel."""
        ...

    # messages ------------------------------------------------------------------------------

    async def append_message(self, msg: NewMessage, recipients: Sequence[str]) -> AppendResult:
        """Store ``msg`` in its channel log with the next ``message_seq`` (gap-free), unless
        ``(from_uid, client_msg_no)`` exists already (then return the original, unchanged).
        In the same transaction, update the conversation of each uid in ``recipients``: last
        seq, timestamp, and unread + 1 for everyone but the sender (unless the RED_DOT flag is
        clear)."""
        ...

    async def get_message(self, message_id: int) -> StoredMessage | None:
        """One message by id."""
        ...

    async def get_messages(
        self,
        channel_id: str,
        channel_type: int,
        *,
        start_seq: int,
        end_seq: int,
        limit: int,
        pull_mode: int,
        max_bytes: int = 0,
    ) -> list[StoredMessage]:
        """Messages of a channel log, ascending by seq, with WuKongIM ``/channel/messagesync``
        semantics: ``pull_mode`` 0 pulls down (older) from ``start_seq`` inclusive towards
        ``end_seq`` exclusive (0 = no bound); 1 pulls up (newer) from ``start_seq`` inclusive;
        ``start_seq == end_seq == 0`` gives the newest ``limit``.

        ``max_bytes > 0`` bounds the payload bytes read (0: no bound): taken in the pull
        direction (down: newest first; up: oldest first), a message is included
        while the payloads taken before it sum to less than ``max_bytes`` — so the first one
        always is, and the read never holds more than ``max_bytes`` plus one payload."""
        ...

    async def max_seq(self, channel_id: str, channel_type: int) -> int:
        """The highest committed ``message_seq`` of the channel (0 if empty)."""
        ...

    # conversations -------------------------------------------------------------------------

    async def list_conversations(self, uid: str) -> list[ConversationRow]:
        """The user's conversations, newest first."""
        ...

    # offline command queue (persisted sync-once messages) ----------------------------------

    async def append_to_queues(
        self, msg: NewMessage, uids: Sequence[str]
    ) -> tuple[AppendResult, dict[str, int]]:
        """Store a sync-once command once (deduplicated like :meth:`append_message`, seq 0)
        and append it to each user's queue; returns the message and each uid's queue seq
        (empty for a duplicate)."""
        ...

    async def read_queue(
        self, uid: str, after_seq: int, limit: int, max_bytes: int = 0
    ) -> list[QueueEntry]:
        """Queue entries with ``queue_seq > after_seq``, ascending, at most ``limit``; with
        ``max_bytes > 0`` also bounded by payload bytes like :meth:`get_messages`."""
        ...

    async def queue_cursor(self, uid: str) -> int:
        """The last acknowledged queue seq of ``uid`` (0 if none)."""
        ...

    async def ack_queue(self, uid: str, seq: int) -> int:
        """Advance the ack cursor of ``uid`` to ``seq`` (never backwards); returns the cursor
        after the call. Entries at or below the cursor may be discarded."""
        ...

    # message extensions (I6) ---------------------------------------------------------------

    async def update_ext(self, attempt: ExtAttempt, decide: Mutate) -> UpdateResult | None:
        """One transaction: ``None`` if there is no channel-log message (``message_seq > 0``)
        with ``attempt.message_id``. Else, if the log has a row for ``(message_id,
        action_id)``, return it (``duplicate``) and change nothing. Else call ``decide`` on
        the current state (the default state, version 0, of a message never changed); when
        it applies, write the decision's fields and ``updated_at`` (required) with
        ``version + 1``, the channel's next ``extra_version`` (strictly increasing per
        channel) and ``updated_by`` = the attempt's actor. In every case append one
        operation-log row (``base_version``: the decision's, default the current version;
        ``version_after``: the version after the call; ``status_before``/``status_after``;
        ``detail``: :attr:`Decision.log_detail <magpie.domain.ext.Decision.log_detail>`).
        ``last_applied`` is the log row of the change that produced the answer's state. An
        exception from ``decide`` rolls everything back and propagates."""
        ...

    async def get_ext(self, message_id: int) -> ExtState | None:
        """The extension of one message, if it was ever changed."""
        ...

    async def get_exts(self, message_ids: Sequence[int]) -> dict[int, ExtState]:
        """The extensions of those of ``message_ids`` that have one."""
        ...

    async def sync_ext(
        self, channel_id: str, channel_type: int, after_extra_version: int, limit: int
    ) -> list[ExtState]:
        """The channel's extension rows with ``extra_version > after_extra_version``, the
        oldest ``limit`` of them, ascending; ``after_extra_version == 0`` gives the newest
        ``limit`` rows, ascending. Reads only changed rows (an index on ``(channel,
        extra_version)``), whatever the length of the channel's history."""
        ...

    async def list_ops(self, message_id: int, after_op_id: int, limit: int) -> list[OpRecord]:
        """The message's operation-log rows with ``op_id > after_op_id``, ascending, at most
        ``limit``."""
        ...

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

Durable jobs (:mod:`magpie.domain.jobs`: the webhook outbox, card deadlines) live in the
store too, so every node sees them and none is lost with a node. The write methods that
cause work take the jobs to enqueue and commit them in their own transaction (the
*transactional outbox*); claims are exclusive across nodes (PostgreSQL: ``FOR UPDATE SKIP
LOCKED``; SQLite: the single writer) and last for a lease, after which any node may take a
claimed job over. A small key-value table (:meth:`Store.kv_setdefault`) holds values every
node must share, created once (the card service's secret).

Records (:class:`~magpie.domain.ext.ExtRecord`) are keyed rows a message owns beside its
extension (a card's ballots): read by :meth:`Store.update_ext` for the decision
(``attempt.reads``) and written with an applied change (``Decision.records``), read per
viewer (:meth:`Store.get_records`) and paged (:meth:`Store.list_records`, ascending by key,
keys ordered bytewise). Business-defined card types are stored once per ``name@version``
(:meth:`Store.add_card_type`), so every node knows them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from magpie.domain.ext import ExtAttempt, ExtRecord, ExtState, Mutate, OpRecord, UpdateResult
from magpie.domain.jobs import Job, JobCount, NewJob
from magpie.domain.members import Member
from magpie.domain.nodes import NodeClaim, NodeRow
from magpie.domain.reactions import Reaction, Summary
from magpie.domain.reminders import NewReminder, Reminder
from magpie.domain.search import SearchQuery

__all__ = [
    "AppendResult",
    "CardTypeRow",
    "ChannelInfo",
    "ConversationRow",
    "FileRecord",
    "Job",
    "JobCount",
    "JobsOf",
    "Member",
    "NewJob",
    "NewMessage",
    "NewReminder",
    "NodeClaim",
    "NodeRow",
    "QueueEntry",
    "Reaction",
    "ReactionChange",
    "ReactionOutcome",
    "Reminder",
    "SearchQuery",
    "Store",
    "StoredMessage",
    "TokenRow",
]


#: The jobs an applied extension change brings along (its webhook events), computed from the
#: store's answer *inside* the change's transaction and committed with it. Pure, like a
#: :data:`~magpie.domain.ext.Mutate`: it may be run again. Not called for a rejection or a
#: duplicate.
JobsOf = Callable[[UpdateResult], Sequence[NewJob]]


@dataclass(frozen=True, slots=True)
class CardTypeRow:
    """A registered card type: ``name@version``, its normalised JSON ``spec`` and when it was
    first registered (unix ms). Immutable once stored."""

    name: str
    version: int
    spec: Mapping[str, Any]
    created_at: int


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


@dataclass(frozen=True, slots=True)
class ReactionChange:
    """``uid`` adds (``add``) or removes ``emoji`` on a message, at ``created_at`` (unix
    seconds); a message carries at most ``max_emoji`` distinct live emoji."""

    message_id: int
    uid: str
    emoji: str
    add: bool
    created_at: int
    max_emoji: int


@dataclass(frozen=True, slots=True)
class ReactionOutcome:
    """What :meth:`Store.react` did: ``changed`` (a new seq was taken) and the row after the
    call (``None`` when the user never reacted so); or ``refused`` — ``"too_many_emoji"``
    (a new emoji beyond ``max_emoji``) or ``"revoked"`` (the message is revoked) — and nothing
    changed. ``channel_id``/``channel_type`` are the message's (storage id)."""

    channel_id: str
    channel_type: int
    changed: bool
    row: Reaction | None
    refused: str = ""


@dataclass(frozen=True, slots=True)
class FileRecord:
    """An uploaded file (``docs/conversation.md``, item 7): its bytes (by SHA-256 in the file
    storage), what they are (sniffed), and the channel whose members may download it."""

    file_id: str
    sha256: str
    size: int
    content_type: str
    name: str
    width: int
    height: int
    channel_id: str
    channel_type: int
    uploader: str
    created_at: int  # unix milliseconds


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

    def stopping(self, timeout: float) -> None:
        """The node begins to stop: calls from now on (and those under way) may wait at most
        about ``timeout`` seconds for a database that does not answer; past that they fail
        with :class:`~magpie.errors.StoreUnavailable` and so does every later call."""
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

    async def list_users(self, after: str, limit: int) -> list[str]:
        """Up to ``limit`` uids holding at least one token, above ``after`` in code-point
        order (an administrator's listing; page with the last uid)."""
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

    async def list_channels(self, after_id: str, after_type: int, limit: int) -> list[ChannelInfo]:
        """Up to ``limit`` channels above ``(after_id, after_type)`` in that order (an
        administrator's listing; page with the last one)."""
        ...

    async def add_subscribers(
        self, channel_id: str, channel_type: int, uids: Sequence[str], *, reset: bool = False
    ) -> None:
        """Add subscribers (creating the channel if needed); ``reset`` replaces the set
        (members who stay keep their roles; new ones are plain members)."""
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

    async def count_subscribers(self, channel_id: str, channel_type: int, excluding: str) -> int:
        """How many subscribers the channel has other than ``excluding`` (a uid; ``""``
        excludes nobody), without reading them."""
        ...

    async def get_members(self, channel_id: str, channel_type: int) -> list[Member]:
        """The channel's subscribers with their roles, sorted by uid (as
        :meth:`get_subscribers`)."""
        ...

    async def get_role(self, channel_id: str, channel_type: int, uid: str) -> int | None:
        """The role of ``uid`` in the channel (:mod:`magpie.domain.members`); ``None`` when
        ``uid`` does not subscribe to it."""
        ...

    async def set_role(
        self, channel_id: str, channel_type: int, uids: Sequence[str], role: int
    ) -> bool:
        """Give each of ``uids`` ``role``; when one of them does not subscribe to the channel,
        change nothing and return false. A subscriber added later (or again after
        ``add_subscribers(reset=True)``) starts as a plain member."""
        ...

    # messages ------------------------------------------------------------------------------

    async def append_message(
        self,
        msg: NewMessage,
        recipients: Sequence[str],
        jobs: Sequence[NewJob] = (),
        reminders: Sequence[NewReminder] = (),
    ) -> AppendResult:
        """Store ``msg`` in its channel log with the next ``message_seq`` (gap-free), unless
        ``(from_uid, client_msg_no)`` exists already (then return the original, unchanged).
        In the same transaction, update the conversation of each uid in ``recipients``: last
        seq, timestamp, and unread + 1 for everyone but the sender (unless the RED_DOT flag is
        clear); enqueue ``jobs`` (as :meth:`enqueue_jobs`); and create ``reminders`` (each
        ``uid`` one of ``recipients``, at most one per uid and type), whose version is the one
        this append gave the uid's conversations — not for a duplicate."""
        ...

    async def get_messages_by_id(self, message_ids: Sequence[int]) -> dict[int, StoredMessage]:
        """Those of ``message_ids`` that exist (channel-log or queued), by id."""
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

    async def get_replies(self, message_id: int, after_seq: int, limit: int) -> list[StoredMessage]:
        """The channel-log messages whose payload quotes ``message_id`` (``reply.message_id``;
        indexed as they are stored), ascending by seq after ``after_seq``, at most ``limit``."""
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
        self, msg: NewMessage, uids: Sequence[str], jobs: Sequence[NewJob] = ()
    ) -> tuple[AppendResult, dict[str, int]]:
        """Store a sync-once command once (deduplicated like :meth:`append_message`, seq 0)
        and append it to each user's queue; returns the message and each uid's queue seq
        (empty for a duplicate). ``jobs`` are enqueued in the same transaction unless it is a
        duplicate."""
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

    async def update_ext(
        self, attempt: ExtAttempt, decide: Mutate, jobs: JobsOf | None = None
    ) -> UpdateResult | None:
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
        exception from ``decide`` rolls everything back and propagates. When the change
        applies (not for a rejection or a duplicate), ``jobs`` is called with the answer and
        what it returns is enqueued in the same transaction.

        Records: the decision gets the message's records of ``attempt.reads`` (at most
        ``MAX_RECORD_READS`` keys) as ``state.records``; an applied decision's ``records``
        are written (``None`` deletes) with the new version, in the same transaction. A
        malformed key or value raises :class:`~magpie.errors.StoreError` and changes
        nothing."""
        ...

    async def get_records(self, message_id: int, keys: Sequence[str]) -> dict[str, ExtRecord]:
        """The message's records of ``keys`` that exist, by key."""
        ...

    async def list_records(
        self, message_id: int, prefix: str, after_key: str, limit: int
    ) -> list[ExtRecord]:
        """The message's records whose key starts with ``prefix`` (``""``: all) and is above
        ``after_key`` (bytewise), ascending by key, at most ``limit``."""
        ...

    async def get_ext(self, message_id: int) -> ExtState | None:
        """The extension of one message, if it was ever changed."""
        ...

    async def get_exts(self, message_ids: Sequence[int]) -> dict[int, ExtState]:
        """The extensions of those of ``message_ids`` that have one."""
        ...

    async def sync_ext(
        self,
        channel_id: str,
        channel_type: int,
        after_extra_version: int,
        limit: int,
        max_bytes: int = 0,
    ) -> list[ExtState]:
        """The channel's extension rows with ``extra_version > after_extra_version``, the
        oldest ``limit`` of them, ascending; ``after_extra_version == 0`` gives the newest
        ``limit`` rows, ascending. Reads only changed rows (an index on ``(channel,
        extra_version)``), whatever the length of the channel's history.

        ``max_bytes > 0`` bounds the read like :meth:`get_messages`, measuring a row by its
        stored ``extra`` and ``content_edit`` JSON text: rows are taken in reading order
        (after a cursor: oldest first; cursor 0: newest first) while the rows before sum to
        less than ``max_bytes``."""
        ...

    async def list_ops(self, message_id: int, after_op_id: int, limit: int) -> list[OpRecord]:
        """The message's operation-log rows with ``op_id > after_op_id``, ascending, at most
        ``limit``."""
        ...

    async def clear_unread(
        self, uid: str, channel_id: str, channel_type: int, message_seq: int
    ) -> tuple[ConversationRow, bool] | None:
        """Move ``uid``'s read position in the conversation up to ``message_seq`` (0 or a seq
        above the last message: the last message) in one transaction; ``None`` when the user
        has no such conversation. The position never moves back: a seq at or below it changes
        nothing (the flag is false). Otherwise ``readed_to_msg_seq`` becomes the seq,
        ``unread`` the number of red-dot messages of others after it, and the row takes the
        user's next conversation version (so a ``/conversation/sync`` by version returns it)."""
        ...

    # reminders (magpie.domain.reminders) -------------------------------------------------

    async def sync_reminders(self, uid: str, after_version: int, limit: int) -> list[Reminder]:
        """``uid``'s reminders with ``version > after_version``, ascending, at most
        ``limit``."""
        ...

    async def done_reminders(self, uid: str, reminder_ids: Sequence[int]) -> list[Reminder] | None:
        """Mark ``uid``'s reminders done in one transaction: each one not done yet takes the
        user's next version (returned, ascending); ``None`` — and nothing changes — when one
        of the ids is not a reminder of ``uid``."""
        ...

    # search (magpie.domain.search) -------------------------------------------------------

    async def search_messages(self, uid: str, query: SearchQuery) -> list[StoredMessage]:
        """The channel-log messages whose indexed text (``content``, a file's ``name``; an
        edit's when edited; none when revoked; no commands) has every word of the query as
        a word prefix, in channels ``uid`` can read now (groups ``uid`` subscribes to, person
        channels ``uid`` is a party of), newest first (by message id) below
        ``before_message_id``, at most ``limit``; in one channel when the query names one."""
        ...

    # files --------------------------------------------------------------------------------

    async def put_file(self, record: FileRecord) -> None:
        """Record an upload (its ``file_id`` is new)."""
        ...

    async def get_file(self, file_id: str) -> FileRecord | None:
        """An upload by id."""
        ...

    # reactions (magpie.domain.reactions) -------------------------------------------------

    async def react(self, change: ReactionChange) -> ReactionOutcome | None:
        """One transaction: ``None`` if there is no channel-log message
        ``change.message_id``. A revoked message, or a new emoji beyond ``max_emoji`` distinct
        live emoji on the message, is refused and nothing changes. Adding a live reaction or
        removing an absent or deleted one changes nothing (``changed`` false). Otherwise the
        row of ``(message_id, uid, emoji)`` is written (``deleted`` = not ``add``) with the
        channel's next reaction ``seq`` (strictly increasing per channel, in commit order)."""
        ...

    async def sync_reactions(
        self, channel_id: str, channel_type: int, after_seq: int, limit: int
    ) -> list[Reaction]:
        """The channel's reaction rows (tombstones included) with ``seq > after_seq``,
        ascending, at most ``limit``."""
        ...

    async def reaction_summaries(self, message_ids: Sequence[int]) -> dict[int, list[Summary]]:
        """Per message of ``message_ids`` with live (not deleted) reactions, their summaries,
        computed by the database — what :func:`~magpie.domain.reactions.summarise` makes of
        the message's live rows: emoji in the order of their first live seq, each with its
        count, its users in the order of their seq and its highest seq. Messages without
        live reactions are absent."""
        ...

    # durable jobs (magpie.domain.jobs) -----------------------------------------------------

    async def enqueue_jobs(self, jobs: Sequence[NewJob]) -> int:
        """Add ``jobs`` (one transaction); a job whose ``(kind, key)`` exists already (key
        not empty) is skipped. Returns how many were added. A job that breaks
        :func:`~magpie.domain.jobs.check_new_job` raises :class:`~magpie.errors.StoreError`
        and adds nothing."""
        ...

    async def claim_jobs(
        self, kind: str, owner: str, *, now_ms: int, lease_ms: int, limit: int
    ) -> list[Job]:
        """Claim up to ``limit`` due jobs of ``kind`` (not dead, ``due_at_ms <= now_ms`` —
        which includes claims whose lease ran out), the earliest due first, for ``owner``
        until ``now_ms + lease_ms`` (their new ``due_at_ms``). A job is claimed by one caller
        only, whatever the number of nodes. Jobs claimed for the first time get a fresh
        ``batch`` token shared by this claim; others keep theirs. Sorted by ``job_id``."""
        ...

    async def complete_jobs(self, job_ids: Sequence[int]) -> int:
        """Delete the jobs (done); returns how many existed."""
        ...

    async def retry_jobs(
        self,
        job_ids: Sequence[int],
        owner: str,
        *,
        due_at_ms: int,
        error: str = "",
        attempt: bool = True,
    ) -> int:
        """Give claimed jobs back, due again at ``due_at_ms``: ``attempt`` true counts a
        failed try (``attempts + 1``, ``last_error`` = ``error``), false gives them back
        untried. Only jobs whose last claim is ``owner``'s (not taken over meanwhile) and that
        are not dead change; returns how many did."""
        ...

    async def bury_jobs(self, job_ids: Sequence[int], owner: str, *, error: str) -> int:
        """Make claimed jobs dead after their last failed try (``attempts + 1``,
        ``last_error``): kept, listed by :meth:`list_jobs`, never claimed again unless
        revived. Only ``owner``'s claims; returns how many changed."""
        ...

    async def revive_jobs(self, job_ids: Sequence[int], *, due_at_ms: int) -> int:
        """Dead jobs become pending again with ``attempts`` 0, due at ``due_at_ms``; returns
        how many did (ids of jobs that are not dead are ignored)."""
        ...

    async def cancel_jobs(self, kind: str, keys: Sequence[str]) -> int:
        """Delete the jobs of ``kind`` with these keys, whatever their state; returns how
        many existed."""
        ...

    async def list_jobs(
        self, kind: str | None, *, dead: bool, after_job_id: int = 0, limit: int = 100
    ) -> list[Job]:
        """Jobs with ``job_id > after_job_id``, ascending, at most ``limit``: dead ones, or
        pending ones (``dead`` false); of one kind, or of every kind (``None``)."""
        ...

    async def next_due_ms(self, kind: str) -> int | None:
        """The earliest ``due_at_ms`` among the pending jobs of ``kind`` (``None``: none)."""
        ...

    async def count_jobs(self) -> list[JobCount]:
        """Pending and dead jobs per kind (kinds with no job are absent), sorted by kind."""
        ...

    async def ping(self) -> None:
        """One round trip to the database (``/ready``): returns when it answers;
        :class:`~magpie.errors.StoreUnavailable` when it cannot be reached, another
        :class:`~magpie.errors.StoreError` when the store is not open."""
        ...

    # node ids ---------------------------------------------------------------------------

    async def claim_node(self, claim: NodeClaim) -> NodeRow | None:
        """Lease a node id for ``claim.instance`` until ``lease_ms`` from now (the store's
        clock): ``claim.node_id`` when it is free (no row, or its lease ran out), else any
        free id (ids never used first, highest first; then the longest expired). ``None``
        when the named id is held by a live lease (or no id is free). Atomic across nodes:
        two claims never get one id."""
        ...

    async def renew_node(
        self, node_id: int, instance: str, lease_ms: int, ws_url: str, tcp_addr: str
    ) -> bool:
        """Extend ``instance``'s lease of ``node_id`` to ``lease_ms`` from now and record its
        public addresses; false when the row is not ``instance``'s any more (another process
        claimed the id after the lease ran out), then nothing changes."""
        ...

    async def release_node(self, node_id: int, instance: str) -> bool:
        """Delete ``instance``'s lease of ``node_id`` (false: it was not held by it)."""
        ...

    async def live_nodes(self) -> list[NodeRow]:
        """The leases that have not run out, by node id."""
        ...

    # shared values --------------------------------------------------------------------------

    # card types ---------------------------------------------------------------------------

    async def add_card_type(self, row: CardTypeRow) -> CardTypeRow:
        """Store ``row`` unless a type with its ``(name, version)`` exists; returns the stored
        row (the earlier one when it existed: a type never changes). Atomic across nodes."""
        ...

    async def get_card_type(self, name: str, version: int) -> CardTypeRow | None:
        """The registered type ``name@version``, if any."""
        ...

    async def list_card_types(self) -> list[CardTypeRow]:
        """Every registered type, sorted by name and version."""
        ...

    async def kv_setdefault(self, key: str, value: bytes) -> bytes:
        """The value stored under ``key``; when there is none yet, store ``value`` and return
        it. Atomic across nodes: callers racing on one key all get the same value."""
        ...

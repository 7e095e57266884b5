"""The PostgreSQL implementation of :class:`magpie.store.interface.Store` (for several nodes).

Several Magpie nodes (processes) may share one database; every guarantee holds across them
because it is enforced by the database, not by a process:

* **I1 ack = durable**: a method returns after its ``COMMIT`` (``synchronous_commit`` is the
  server's; keep it ``on``).
* **I2 dedupe**: the unique constraint ``messages_dedupe (from_uid, client_msg_no)``. An append
  looks for the original first; a concurrent duplicate from another node meets the constraint,
  its transaction rolls back whole, and the append runs again and returns the original.
* **I3 gap-free seqs**: the next seq comes from the channel's ``channel_seq`` row, updated in
  the insert's transaction; the row lock serialises the inserts of one channel across nodes,
  and a rolled-back insert rolls its seq back too.
* **I6 extensions**: see :mod:`magpie.store._pg_ext` (the message row locked while deciding).
* **I7 epoch**: ``meta.epoch``.

Appends go through :class:`~magpie.store._pg_writer.BatchWriter` (pipelined batches, one
commit each); every other write is one transaction on a pooled connection, re-run after a
deadlock or serialization failure (:func:`~magpie.store._pg_setup.attempt`). Reads are single
statements on pooled connections. A lost or refused connection raises
:class:`~magpie.errors.StoreUnavailable`; after a lost connection mid-write the write may or
may not have committed, which the idempotency keys make safe to retry.

Rows convert to the interface's types in :mod:`magpie.store._pg_rows` only. ``asyncpg`` is
imported by this package's PostgreSQL modules alone, which only the composition root imports
when a ``postgresql://`` store is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from magpie.domain.reminders import reminders_problem
from magpie.errors import StoreError, StoreUnavailable
from magpie.store import _pg_rows as rows
from magpie.store._migrations import load_migrations
from magpie.store._pg_conv import PgConvMethods
from magpie.store._pg_ext import PgExtMethods
from magpie.store._pg_jobs import JOBS_CTE, PgJobMethods, jobs_args
from magpie.store._pg_nodes import PgNodeMethods
from magpie.store._pg_rows import CONVERSATION_COLUMNS, MESSAGE_COLUMNS, TOKEN_COLUMNS
from magpie.store._pg_setup import (
    attempt,
    check_dsn,
    create_pool,
    ensure_epoch,
    migrate,
)
from magpie.store._pg_stop import StopGuard
from magpie.store._pg_writer import Append, BatchWriter
from magpie.store.interface import (
    AppendResult,
    ChannelInfo,
    ConversationRow,
    NewJob,
    NewMessage,
    NewReminder,
    QueueEntry,
    Store,
    StoredMessage,
    TokenRow,
)

if TYPE_CHECKING:
    from magpie.store._pg_setup import Conn

__all__ = ["PostgresStore"]

T = TypeVar("T")

_NO_BOUND = 2**63 - 1  # "no upper seq bound" in range queries
#: Seconds :meth:`PostgresStore.close` waits for the pool to close gracefully before it
#: terminates the connections (after an outage a graceful close can wait forever).
_CLOSE_TIMEOUT = 5.0

log = logging.getLogger(__name__)


class _State(enum.Enum):
    NEW = "new"
    OPENING = "opening"
    OPEN = "open"
    CLOSED = "closed"


# --- SQL -----------------------------------------------------------------------------------

_SET_TOKEN = """
    INSERT INTO tokens (uid, device_flag, token_hash, device_level) VALUES ($1, $2, $3, $4)
    ON CONFLICT (uid, device_flag) DO UPDATE
    SET token_hash = excluded.token_hash, device_level = excluded.device_level"""  # noqa: S105 (SQL)
_GET_TOKEN = f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE uid = $1 AND device_flag = $2"  # noqa: S608
_CLEAR_TOKEN = "DELETE FROM tokens WHERE uid = $1 AND device_flag = $2"  # noqa: S105 (SQL)
_CLEAR_TOKENS = "DELETE FROM tokens WHERE uid = $1"
_FIND_TOKENS = f"""
    SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = $1 ORDER BY uid, device_flag"""  # noqa: S608

_LIST_USERS = "SELECT DISTINCT uid FROM tokens WHERE uid > $1 ORDER BY uid LIMIT $2"
_LIST_CHANNELS = """
    SELECT channel_id, channel_type, large, ban FROM channels
    WHERE (channel_id, channel_type) > ($1, $2) ORDER BY channel_id, channel_type LIMIT $3"""

_UPSERT_CHANNEL = """
    INSERT INTO channels (channel_id, channel_type, large, ban) VALUES ($1, $2, $3, $4)
    ON CONFLICT (channel_id, channel_type) DO UPDATE
    SET large = excluded.large, ban = excluded.ban"""
_ENSURE_CHANNEL = """
    INSERT INTO channels (channel_id, channel_type) VALUES ($1, $2)
    ON CONFLICT (channel_id, channel_type) DO NOTHING"""
_GET_CHANNEL = """
    SELECT channel_id, channel_type, large, ban FROM channels
    WHERE channel_id = $1 AND channel_type = $2"""
_DELETE_CHANNEL = "DELETE FROM channels WHERE channel_id = $1 AND channel_type = $2"
_ADD_SUBSCRIBERS = """
    INSERT INTO subscribers (channel_id, channel_type, uid)
    SELECT $1, $2, u FROM unnest($3::text[]) AS u
    ON CONFLICT (channel_id, channel_type, uid) DO NOTHING"""
_KEEP_SUBSCRIBERS = """
    DELETE FROM subscribers WHERE channel_id = $1 AND channel_type = $2 AND uid <> ALL($3)"""
_REMOVE_SUBSCRIBERS = """
    DELETE FROM subscribers WHERE channel_id = $1 AND channel_type = $2 AND uid = ANY($3)"""
# COLLATE "C": sorted by code point, as the SQLite store sorts.
_GET_SUBSCRIBERS = """
    SELECT uid FROM subscribers WHERE channel_id = $1 AND channel_type = $2
    ORDER BY uid COLLATE "C" """
_IS_SUBSCRIBER = """
    SELECT 1 FROM subscribers WHERE channel_id = $1 AND channel_type = $2 AND uid = $3"""
_COUNT_SUBSCRIBERS = """
    SELECT count(*) FROM subscribers WHERE channel_id = $1 AND channel_type = $2 AND uid <> $3"""

# One statement per append (see _pg_writer). `dup` sees the original if it committed before
# this statement began; a concurrent one makes the INSERT fail on messages_dedupe instead.
# $1..$11: the message less its seq (rows.message_args); $12: the recipients, sorted, distinct.
_APPEND_MESSAGE = f"""
    WITH dup AS (
        SELECT {MESSAGE_COLUMNS} FROM messages WHERE from_uid = $3 AND client_msg_no = $2
    ), seq AS (
        INSERT INTO channel_seq (channel_id, channel_type, last_seq)
        SELECT $4, $5, 1 WHERE NOT EXISTS (SELECT 1 FROM dup)
        ON CONFLICT (channel_id, channel_type) DO UPDATE SET last_seq = channel_seq.last_seq + 1
        RETURNING last_seq
    ), ins AS (
        INSERT INTO messages ({MESSAGE_COLUMNS})
        SELECT $1, seq.last_seq, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM seq
        RETURNING {MESSAGE_COLUMNS}
    ), clock AS (
        INSERT INTO conversation_clock (uid, last_version)
        SELECT u, 1 FROM unnest($12::text[]) AS u WHERE EXISTS (SELECT 1 FROM ins)
        ON CONFLICT (uid) DO UPDATE SET last_version = conversation_clock.last_version + 1
        RETURNING uid, last_version
    ), conv AS (
        INSERT INTO conversations (uid, channel_id, channel_type, unread, last_msg_seq,
            last_client_msg_no, timestamp, version)
        SELECT c.uid, i.channel_id, i.channel_type,
            CASE WHEN (i.flags & 2) <> 0 AND c.uid <> i.from_uid THEN 1 ELSE 0 END,
            i.message_seq, i.client_msg_no, i.timestamp, c.last_version
        FROM clock AS c, ins AS i
        ON CONFLICT (uid, channel_id, channel_type) DO UPDATE SET
            unread = conversations.unread + excluded.unread,
            last_msg_seq = excluded.last_msg_seq,
            last_client_msg_no = excluded.last_client_msg_no,
            timestamp = excluded.timestamp,
            version = excluded.version
    )
    SELECT false AS duplicate, * FROM ins
    UNION ALL
    SELECT true, * FROM dup"""  # noqa: S608 (column lists are constants)
# The RED_DOT flag is bit 0x02 of the fixed header (spec §1.2).

# A sync-once command: stored once (seq 0) and queued for each uid ($12, sorted, distinct).
_APPEND_TO_QUEUES = f"""
    WITH dup AS (
        SELECT {MESSAGE_COLUMNS} FROM messages WHERE from_uid = $3 AND client_msg_no = $2
    ), ins AS (
        INSERT INTO messages ({MESSAGE_COLUMNS})
        SELECT $1, 0, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
        WHERE NOT EXISTS (SELECT 1 FROM dup)
        RETURNING {MESSAGE_COLUMNS}
    ), counters AS (
        INSERT INTO queue_counter (uid, last_seq)
        SELECT u, 1 FROM unnest($12::text[]) AS u WHERE EXISTS (SELECT 1 FROM ins)
        ON CONFLICT (uid) DO UPDATE SET last_seq = queue_counter.last_seq + 1
        RETURNING uid, last_seq
    ), queued AS (
        INSERT INTO user_queue (uid, queue_seq, message_id)
        SELECT c.uid, c.last_seq, i.message_id FROM counters AS c, ins AS i
    )
    SELECT false AS duplicate, i.*,
        ARRAY(SELECT uid FROM counters ORDER BY uid) AS uids,
        ARRAY(SELECT last_seq FROM counters ORDER BY uid) AS seqs
    FROM ins AS i
    UNION ALL
    SELECT true, d.*, NULL, NULL FROM dup AS d"""  # noqa: S608


def _with_jobs(append: str) -> str:
    """``append`` that also enqueues the jobs of ``$13 .. $17`` when it inserted (one more
    CTE; a separate statement, so an append without jobs pays nothing for them)."""
    head, marker, tail = append.partition("\n    SELECT false AS duplicate")
    if not marker:
        raise AssertionError("an append statement ends with its SELECT false AS duplicate")
    return head + JOBS_CTE + marker + tail


def _with_reminders(append: str, first: int) -> str:
    """``append`` (of a channel-log message) that also creates reminders: ``$first`` the uids
    (each a recipient, so the ``clock`` CTE holds its new version), ``$first+1`` the types,
    ``$first+2`` the texts."""
    cte = f""", reminded AS (
        INSERT INTO reminders (uid, channel_id, channel_type, message_id, message_seq,
            reminder_type, publisher, text, version)
        SELECT r.uid, i.channel_id, i.channel_type, i.message_id, i.message_seq, r.kind,
            i.from_uid, r.text, c.last_version
        FROM unnest(${first}::text[], ${first + 1}::integer[], ${first + 2}::text[])
            AS r(uid, kind, text)
        JOIN clock AS c ON c.uid = r.uid, ins AS i
        ON CONFLICT (uid, message_id, reminder_type) DO NOTHING
    )"""  # noqa: S608 (only parameter numbers are formatted in)
    head, marker, tail = append.partition("\n    SELECT false AS duplicate")
    if not marker:
        raise AssertionError("an append statement ends with its SELECT false AS duplicate")
    return head + cte + marker + tail


_APPEND_MESSAGE_JOBS = _with_jobs(_APPEND_MESSAGE)
#: The append statements by (with jobs, with reminders).
_APPENDS = {
    (False, False): _APPEND_MESSAGE,
    (True, False): _APPEND_MESSAGE_JOBS,
    (False, True): _with_reminders(_APPEND_MESSAGE, 13),
    (True, True): _with_reminders(_APPEND_MESSAGE_JOBS, 18),
}
_APPEND_TO_QUEUES_JOBS = _with_jobs(_APPEND_TO_QUEUES)

_GET_MESSAGE = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = $1"  # noqa: S608
_GET_MESSAGES_BY_ID = f"""
    SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = ANY($1::bigint[])"""  # noqa: S608
# "message_seq > 0" is repeated literally so the planner can use the partial index.
_M_COLUMNS = ", ".join("m." + c for c in MESSAGE_COLUMNS.split(", "))


def _within_budget(page: str, order: str) -> str:
    """The messages of ``page`` (a query of ``message_seq, size`` rows in ``order``) whose
    preceding payloads sum to less than ``$6`` bytes: sizes are summed over the page first,
    and only the kept rows' payloads are read."""
    return f"""
    WITH page AS ({page}),
    kept AS (
        SELECT message_seq FROM (
            SELECT message_seq,
                SUM(size) OVER (ORDER BY message_seq {order} ROWS UNBOUNDED PRECEDING)
                    - size AS before
            FROM page
        ) AS running
        WHERE before < $6
    )
    SELECT {_M_COLUMNS} FROM kept JOIN messages AS m
        ON m.channel_id = $1 AND m.channel_type = $2 AND m.message_seq = kept.message_seq
    ORDER BY m.message_seq {order}"""  # noqa: S608


_MESSAGES_DOWN = _within_budget(
    """SELECT message_seq, octet_length(payload) AS size FROM messages
    WHERE channel_id = $1 AND channel_type = $2 AND message_seq > 0
        AND message_seq <= $3 AND message_seq > $4
    ORDER BY message_seq DESC LIMIT $5""",
    "DESC",
)
_MESSAGES_UP = _within_budget(
    """SELECT message_seq, octet_length(payload) AS size FROM messages
    WHERE channel_id = $1 AND channel_type = $2 AND message_seq > 0
        AND message_seq >= $3 AND message_seq < $4
    ORDER BY message_seq ASC LIMIT $5""",
    "ASC",
)
_MAX_SEQ = "SELECT last_seq FROM channel_seq WHERE channel_id = $1 AND channel_type = $2"

_LIST_CONVERSATIONS = f"""
    SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE uid = $1
    ORDER BY timestamp DESC, version DESC, channel_id COLLATE "C", channel_type"""  # noqa: S608

_READ_QUEUE = f"""
    WITH page AS (
        SELECT q.queue_seq, q.message_id, octet_length(m.payload) AS size
        FROM user_queue AS q JOIN messages AS m ON m.message_id = q.message_id
        WHERE q.uid = $1 AND q.queue_seq > $2
        ORDER BY q.queue_seq LIMIT $3
    ),
    kept AS (
        SELECT queue_seq, message_id FROM (
            SELECT queue_seq, message_id,
                SUM(size) OVER (ORDER BY queue_seq ROWS UNBOUNDED PRECEDING) - size AS before
            FROM page
        ) AS running
        WHERE before < $4
    )
    SELECT $1::text AS uid, kept.queue_seq, {_M_COLUMNS}
    FROM kept JOIN messages AS m ON m.message_id = kept.message_id
    ORDER BY kept.queue_seq"""  # noqa: S608
_QUEUE_CURSOR = "SELECT ack_seq FROM queue_counter WHERE uid = $1"
_ACK_QUEUE = """
    WITH cursor AS (
        UPDATE queue_counter SET ack_seq = GREATEST(ack_seq, LEAST($2, last_seq))
        WHERE uid = $1 RETURNING ack_seq
    ), dropped AS (
        DELETE FROM user_queue WHERE uid = $1 AND queue_seq <= (SELECT ack_seq FROM cursor)
    )
    SELECT ack_seq FROM cursor"""


# --- the store -----------------------------------------------------------------------------


class PostgresStore(PgConvMethods, PgExtMethods, PgJobMethods, PgNodeMethods):
    """A :class:`~magpie.store.interface.Store` in a PostgreSQL database, shareable by nodes.

    ``dsn`` is a ``postgresql://user:password@host:port/database`` URL (query parameters such
    as ``?search_path=name`` become server settings). ``pool_size`` bounds the connections of
    this store; ``writers`` of them at most run append batches of up to ``max_batch`` appends
    (see :mod:`magpie.store._pg_writer`); ``connect_timeout`` is in seconds.
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        writers: int = 2,
        max_batch: int = 256,
        connect_timeout: float = 10.0,
    ) -> None:
        check_dsn(dsn)
        if not 1 <= writers < pool_size:
            raise StoreError("writers must be at least 1 and below pool_size")
        if max_batch < 1 or connect_timeout <= 0:
            raise StoreError("max_batch and connect_timeout must be positive")
        self._dsn = dsn
        self._pool_size = pool_size
        self._writers = writers
        self._max_batch = max_batch
        self._connect_timeout = connect_timeout
        self._state = _State.NEW
        self._epoch = ""
        self._pool_or_none: asyncpg.Pool[asyncpg.Record] | None = None
        self._writer_or_none: BatchWriter | None = None
        self._guard = StopGuard(self._terminate, self._probe)

    @property
    def epoch(self) -> str:
        """The store's incarnation id (I7), read from the database by :meth:`open`."""
        if self._state is not _State.OPEN:
            raise StoreError("the store is not open")
        return self._epoch

    async def open(self) -> None:
        """Connect, migrate (under the migration lock) and read the epoch."""
        if self._state is not _State.NEW:
            raise StoreError("a store can be opened only once")
        self._state = _State.OPENING
        try:
            pool = await create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                connect_timeout=self._connect_timeout,
            )
            self._pool_or_none = pool
            self._epoch = await attempt("open", lambda: self._prepare(pool))
            self._writer_or_none = BatchWriter(
                pool, writers=self._writers, max_batch=self._max_batch
            )
        except BaseException:
            await self.close()
            raise
        self._state = _State.OPEN

    async def _prepare(self, pool: asyncpg.Pool[asyncpg.Record]) -> str:
        async with pool.acquire() as conn:
            await migrate(conn, load_migrations("postgres_migrations"))
            return await ensure_epoch(conn)

    async def close(self) -> None:
        """Finish the queued appends, then close every connection. Idempotent. After
        :meth:`stopping`, both are bounded by its timeout (and skipped once the database was
        given up)."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        if self._writer_or_none is not None:
            writer = self._writer_or_none
            with contextlib.suppress(StoreUnavailable):  # given up: the lanes end by themselves
                await self._guard.call("close", writer.close)
        pool = self._pool_or_none
        if pool is None or self._guard.gone:
            return
        if self._guard.timeout is not None:
            with contextlib.suppress(StoreUnavailable):  # given up: terminated
                await self._guard.call("close", pool.close)
            return
        try:
            await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT)
        except TimeoutError:  # close() terminated the pool when it was cancelled
            log.warning("store: the pool did not close within %.0f s; terminated", _CLOSE_TIMEOUT)
            pool.terminate()

    def stopping(self, timeout: float) -> None:
        """The node stops: from now on each call has ``timeout`` seconds, and the database is
        probed for the calls under way; one that does not answer (or cannot be reached) is
        given up, with one WARNING line, so that the stop goes on without it
        (:mod:`magpie.store._pg_stop`)."""
        if self._state is _State.OPEN:
            self._guard.stopping(timeout)

    def _terminate(self) -> None:
        if self._pool_or_none is not None:
            self._pool_or_none.terminate()

    async def _probe(self) -> object:
        pool = self._pool
        return await attempt("ping", lambda: pool.fetchval("SELECT 1"))

    # plumbing -------------------------------------------------------------------------------

    @property
    def _pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._state is not _State.OPEN or self._pool_or_none is None:
            raise StoreError(f"the store is {self._state.value}, not open")
        return self._pool_or_none

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        pool = self._pool
        return await self._guard.call(what, lambda: attempt(what, lambda: pool.fetch(sql, *args)))

    async def _fetchrow(self, what: str, sql: str, *args: Any) -> asyncpg.Record | None:
        pool = self._pool
        return await self._guard.call(
            what, lambda: attempt(what, lambda: pool.fetchrow(sql, *args))
        )

    async def _execute(self, what: str, sql: str, *args: Any) -> str:
        """One statement, its own transaction."""
        pool = self._pool
        return await self._guard.call(what, lambda: attempt(what, lambda: pool.execute(sql, *args)))

    async def _transaction(self, what: str, body: Callable[[Conn], Awaitable[T]]) -> T:
        """``body`` in one transaction, re-run after a deadlock or serialization failure."""
        pool = self._pool

        async def run() -> T:
            async with pool.acquire() as conn, conn.transaction():
                return await body(conn)

        return await self._guard.call(what, lambda: attempt(what, run))

    async def _append(self, job: Append) -> asyncpg.Record:
        self._pool  # noqa: B018 (raises unless open)
        writer = self._writer_or_none
        if writer is None:
            raise StoreError("the store has no writer")
        return await self._guard.call(job.what, lambda: writer.submit(job))

    # users and tokens -----------------------------------------------------------------------

    async def ping(self) -> None:
        """``SELECT 1`` on a pooled connection (a broken one is replaced by the pool)."""
        await self._fetchrow("ping", "SELECT 1")

    async def set_token(self, row: TokenRow) -> None:
        """Create or replace the token of ``(uid, device_flag)``."""
        args = (row.uid, row.device_flag, row.token_hash, row.device_level)
        await self._execute("set_token", _SET_TOKEN, *args)

    async def get_token(self, uid: str, device_flag: int) -> TokenRow | None:
        """The token registered for ``(uid, device_flag)``, if any."""
        row = await self._fetchrow("get_token", _GET_TOKEN, uid, device_flag)
        return None if row is None else rows.token_row(row)

    async def clear_tokens(self, uid: str, device_flag: int | None) -> int:
        """Remove the tokens of ``uid`` (one device flag, or all when ``None``)."""
        if device_flag is None:
            status = await self._execute("clear_tokens", _CLEAR_TOKENS, uid)
        else:
            status = await self._execute("clear_tokens", _CLEAR_TOKEN, uid, device_flag)
        return _count(status)

    async def find_tokens(self, token_hash: bytes) -> list[TokenRow]:
        """Every token row with this digest (index ``tokens_by_hash``)."""
        found = await self._fetch("find_tokens", _FIND_TOKENS, token_hash)
        return [rows.token_row(r) for r in found]

    async def list_users(self, after: str, limit: int) -> list[str]:
        """Uids holding a token, above ``after`` (primary key order)."""
        found = await self._fetch("list_users", _LIST_USERS, after, limit)
        return [r[0] for r in found]

    async def list_channels(self, after_id: str, after_type: int, limit: int) -> list[ChannelInfo]:
        """Channels above ``(after_id, after_type)`` (primary key order)."""
        found = await self._fetch("list_channels", _LIST_CHANNELS, after_id, after_type, limit)
        return [rows.channel_info(r) for r in found]

    # channels -------------------------------------------------------------------------------

    async def upsert_channel(self, info: ChannelInfo) -> None:
        """Create the channel or update its attributes."""
        args = (info.channel_id, info.channel_type, info.large, info.ban)
        await self._execute("upsert_channel", _UPSERT_CHANNEL, *args)

    async def get_channel(self, channel_id: str, channel_type: int) -> ChannelInfo | None:
        """The channel, if it exists."""
        row = await self._fetchrow("get_channel", _GET_CHANNEL, channel_id, channel_type)
        return None if row is None else rows.channel_info(row)

    async def delete_channel(self, channel_id: str, channel_type: int) -> bool:
        """Delete the channel and (by cascade) its subscribers; messages stay."""
        status = await self._execute("delete_channel", _DELETE_CHANNEL, channel_id, channel_type)
        return _count(status) > 0

    async def add_subscribers(
        self, channel_id: str, channel_type: int, uids: Sequence[str], *, reset: bool = False
    ) -> None:
        """Add subscribers (creating the channel if needed); ``reset`` replaces the set
        (members who stay keep their roles)."""
        members = sorted(set(uids))

        async def body(conn: Conn) -> None:
            await conn.execute(_ENSURE_CHANNEL, channel_id, channel_type)
            if reset:  # those who stay keep their rows (and roles)
                await conn.execute(_KEEP_SUBSCRIBERS, channel_id, channel_type, members)
            await conn.execute(_ADD_SUBSCRIBERS, channel_id, channel_type, members)

        await self._transaction("add_subscribers", body)

    async def remove_subscribers(
        self, channel_id: str, channel_type: int, uids: Sequence[str]
    ) -> None:
        """Remove subscribers; unknown uids are ignored."""
        args = (channel_id, channel_type, list(uids))
        await self._execute("remove_subscribers", _REMOVE_SUBSCRIBERS, *args)

    async def get_subscribers(self, channel_id: str, channel_type: int) -> list[str]:
        """The channel's subscribers, sorted by code point."""
        found = await self._fetch("get_subscribers", _GET_SUBSCRIBERS, channel_id, channel_type)
        return [r[0] for r in found]

    async def is_subscriber(self, channel_id: str, channel_type: int, uid: str) -> bool:
        """Whether ``uid`` subscribes to the channel."""
        args = (channel_id, channel_type, uid)
        return await self._fetchrow("is_subscriber", _IS_SUBSCRIBER, *args) is not None

    async def count_subscribers(self, channel_id: str, channel_type: int, excluding: str) -> int:
        """How many subscribers the channel has other than ``excluding``."""
        args = (channel_id, channel_type, excluding)
        row = await self._fetchrow("count_subscribers", _COUNT_SUBSCRIBERS, *args)
        return 0 if row is None else int(row[0])

    # messages -------------------------------------------------------------------------------

    async def append_message(
        self,
        msg: NewMessage,
        recipients: Sequence[str],
        jobs: Sequence[NewJob] = (),
        reminders: Sequence[NewReminder] = (),
    ) -> AppendResult:
        """Store ``msg`` with the channel's next seq, or return the original of a duplicate
        (the contract of :meth:`magpie.store.sqlite.SqliteStore.append_message`: a duplicate
        changes nothing, the sender gets no red dot, an empty ``client_msg_no`` or a taken
        ``message_id`` raises :class:`StoreError` and commits nothing); ``jobs`` are enqueued
        by the same statement unless it is a duplicate."""
        _check_key(msg)
        uids = sorted(set(recipients))
        extra = jobs_args(jobs) if jobs else ()
        if reminders:
            problem = reminders_problem(reminders, uids)
            if problem:
                raise StoreError(problem)
            remind = list(reminders)
            extra = (
                *extra,
                [r.uid for r in remind],
                [r.reminder_type for r in remind],
                [r.text for r in remind],
            )
        sql = _APPENDS[(bool(jobs), bool(reminders))]
        job = Append(
            "append_message",
            sql,
            (*rows.message_args(msg), uids, *extra),
            (msg.channel_id, msg.channel_type),
            takes_seq=True,
            clock_uids=uids,
        )
        row = await self._append(job)
        return AppendResult(rows.stored_message(row, 1), duplicate=row[0])

    async def get_message(self, message_id: int) -> StoredMessage | None:
        """One message by id (channel-log or queued)."""
        row = await self._fetchrow("get_message", _GET_MESSAGE, message_id)
        return None if row is None else rows.stored_message(row)

    async def get_messages_by_id(self, message_ids: Sequence[int]) -> dict[int, StoredMessage]:
        """Those of ``message_ids`` that exist, by id."""
        ids = list(dict.fromkeys(int(i) for i in message_ids))
        if not ids:
            return {}
        found = await self._fetch("get_messages_by_id", _GET_MESSAGES_BY_ID, ids)
        return {r[0]: rows.stored_message(r) for r in found}

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
        """Messages of a channel log, ascending by seq (``/channel/messagesync``, spec §6),
        with the semantics of :meth:`magpie.store.sqlite.SqliteStore.get_messages`. With
        ``max_bytes`` the server sums payload sizes (``octet_length``, no detoasting) over the
        page and returns only the rows within the budget."""
        if limit <= 0:
            return []
        budget = max_bytes if max_bytes > 0 else _NO_BOUND
        if pull_mode == 1 and (start_seq or end_seq):
            upper = end_seq if end_seq > 0 else _NO_BOUND
            args = (channel_id, channel_type, start_seq, upper, limit, budget)
            found = await self._fetch("get_messages", _MESSAGES_UP, *args)
        else:
            upper = start_seq if start_seq > 0 else _NO_BOUND
            args = (channel_id, channel_type, upper, max(end_seq, 0), limit, budget)
            found = (await self._fetch("get_messages", _MESSAGES_DOWN, *args))[::-1]
        return [rows.stored_message(r) for r in found]

    async def max_seq(self, channel_id: str, channel_type: int) -> int:
        """The highest committed ``message_seq`` of the channel (0 if empty)."""
        row = await self._fetchrow("max_seq", _MAX_SEQ, channel_id, channel_type)
        return 0 if row is None else int(row[0])

    # conversations --------------------------------------------------------------------------

    async def list_conversations(self, uid: str) -> list[ConversationRow]:
        """The user's conversations, newest message first (ties: most recently changed)."""
        found = await self._fetch("list_conversations", _LIST_CONVERSATIONS, uid)
        return [rows.conversation_row(r) for r in found]

    async def append_to_queues(
        self, msg: NewMessage, uids: Sequence[str], jobs: Sequence[NewJob] = ()
    ) -> tuple[AppendResult, dict[str, int]]:
        """Store a sync-once command once (seq 0, deduplicated like :meth:`append_message`)
        and append it to the queue of each distinct uid (its previous last + 1). A duplicate
        returns the original and an empty mapping, queuing nothing; ``jobs`` are enqueued by
        the same statement unless it is a duplicate."""
        _check_key(msg)
        members = sorted(set(uids))
        sql = _APPEND_TO_QUEUES_JOBS if jobs else _APPEND_TO_QUEUES
        extra = jobs_args(jobs) if jobs else ()
        job = Append(
            "append_to_queues",
            sql,
            (*rows.message_args(msg), members, *extra),
            (msg.channel_id, msg.channel_type),
            takes_seq=False,
            queue_uids=members,
        )
        row = await self._append(job)
        result = AppendResult(rows.stored_message(row, 1), duplicate=row[0])
        if row[0]:
            return result, {}
        return result, dict(zip(row["uids"], row["seqs"], strict=True))

    async def read_queue(
        self, uid: str, after_seq: int, limit: int, max_bytes: int = 0
    ) -> list[QueueEntry]:
        """Entries with ``queue_seq > after_seq``, ascending, at most ``limit`` and within
        ``max_bytes`` of payload (as :meth:`get_messages`); acknowledged entries are
        discarded."""
        if limit <= 0:
            return []
        budget = max_bytes if max_bytes > 0 else _NO_BOUND
        found = await self._fetch("read_queue", _READ_QUEUE, uid, after_seq, limit, budget)
        return [rows.queue_entry(r) for r in found]

    async def queue_cursor(self, uid: str) -> int:
        """The last acknowledged queue seq of ``uid`` (0 if none)."""
        row = await self._fetchrow("queue_cursor", _QUEUE_CURSOR, uid)
        return 0 if row is None else int(row[0])

    async def ack_queue(self, uid: str, seq: int) -> int:
        """Advance the cursor to ``seq``, never backwards and never past the last queued seq;
        entries at or below the cursor are deleted. Returns the cursor after the call."""
        row = await self._fetchrow("ack_queue", _ACK_QUEUE, uid, seq)
        return 0 if row is None else int(row[0])


def _check_key(msg: NewMessage) -> None:
    """Refuse an empty dedupe key: callers fill ``client_msg_no`` (WuKongIM: a UUID)."""
    if not msg.client_msg_no:
        raise StoreError("client_msg_no must not be empty")


def _count(status: str) -> int:
    """The row count of a command status such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


# mypy proves here that PostgresStore implements every method of the Store protocol.
_check: type[Store] = PostgresStore

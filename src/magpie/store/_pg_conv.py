"""The conversation-feature methods of :class:`magpie.store.postgres.PostgresStore`: member
roles, reactions, read positions and reminders (and, as they land, files and search).

A reaction change locks its channel's ``reaction_clock`` row first, so the changes of one
channel — from any node — run one at a time: the distinct-emoji limit is checked on a state
nobody else changes meanwhile, and seqs become visible in commit order.

A mixin like :mod:`magpie.store._pg_ext`; each write is one transaction on a pooled
connection (re-run after a deadlock or serialization failure by the store's plumbing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from magpie.domain.members import Member
from magpie.domain.reactions import Reaction, Summary
from magpie.domain.reminders import Reminder
from magpie.domain.search import SearchQuery
from magpie.store import _pg_rows as rows
from magpie.store._pg_rows import CONVERSATION_COLUMNS, MESSAGE_COLUMNS
from magpie.store.interface import (
    ConversationRow,
    FileRecord,
    ReactionChange,
    ReactionOutcome,
    StoredMessage,
)

if TYPE_CHECKING:
    from magpie.store._pg_setup import Conn

__all__ = ["PgConvMethods"]

T = TypeVar("T")

# --- SQL -----------------------------------------------------------------------------------

# COLLATE "C": sorted by code point, as the SQLite store sorts.
_GET_MEMBERS = """
    SELECT uid, role FROM subscribers WHERE channel_id = $1 AND channel_type = $2
    ORDER BY uid COLLATE "C" """
_GET_ROLE = """
    SELECT role FROM subscribers WHERE channel_id = $1 AND channel_type = $2 AND uid = $3"""
# Locks the rows it will change, so the count cannot go stale before the update.
_LOCK_MEMBERS_OF = """
    SELECT count(*) FROM (
        SELECT 1 FROM subscribers WHERE channel_id = $1 AND channel_type = $2 AND uid = ANY($3)
        FOR UPDATE
    ) AS locked"""
_SET_ROLE = """
    UPDATE subscribers SET role = $4 WHERE channel_id = $1 AND channel_type = $2
        AND uid = ANY($3)"""


_LOG_MESSAGE_CHANNEL = """
    SELECT channel_id, channel_type FROM messages WHERE message_id = $1 AND message_seq > 0"""
_ENSURE_REACTION_CLOCK = """
    INSERT INTO reaction_clock (channel_id, channel_type, last_seq) VALUES ($1, $2, 0)
    ON CONFLICT (channel_id, channel_type) DO NOTHING"""
_LOCK_REACTION_CLOCK = """
    SELECT last_seq FROM reaction_clock WHERE channel_id = $1 AND channel_type = $2
    FOR UPDATE"""
_IS_REVOKED = "SELECT revoke FROM message_ext WHERE message_id = $1"
_REACTION_COLUMNS = "message_id, channel_id, channel_type, uid, emoji, seq, deleted, created_at"
_GET_REACTION = f"""
    SELECT {_REACTION_COLUMNS} FROM message_reactions
    WHERE message_id = $1 AND uid = $2 AND emoji = $3"""  # noqa: S608 (a constant column list)
_LIVE_EMOJI = """
    SELECT DISTINCT emoji FROM message_reactions WHERE message_id = $1 AND NOT deleted"""
_NEXT_REACTION_SEQ = """
    UPDATE reaction_clock SET last_seq = last_seq + 1
    WHERE channel_id = $1 AND channel_type = $2 RETURNING last_seq"""
_PUT_REACTION = f"""
    INSERT INTO message_reactions ({_REACTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (message_id, uid, emoji) DO UPDATE SET
        seq = excluded.seq, deleted = excluded.deleted, created_at = excluded.created_at"""  # noqa: S608
_SYNC_REACTIONS = f"""
    SELECT {_REACTION_COLUMNS} FROM message_reactions
    WHERE channel_id = $1 AND channel_type = $2 AND seq > $3
    ORDER BY seq LIMIT $4"""  # noqa: S608
# Per (message, emoji) of the live rows: count, highest seq, first seq (the emoji's place on
# the message) and the uids in seq order.
_REACTION_SUMMARIES = """
    SELECT message_id, emoji, count(*), max(seq), min(seq) AS first, array_agg(uid ORDER BY seq)
    FROM message_reactions
    WHERE message_id = ANY($1::bigint[]) AND NOT deleted
    GROUP BY message_id, emoji
    ORDER BY message_id, first"""


def _reaction(r: asyncpg.Record) -> Reaction:
    """A ``message_reactions`` row (columns as :data:`_REACTION_COLUMNS`)."""
    return Reaction(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])


async def _react(conn: Conn, change: ReactionChange) -> ReactionOutcome | None:
    found = await conn.fetchrow(_LOG_MESSAGE_CHANNEL, change.message_id)
    if found is None:
        return None
    channel_id, channel_type = found[0], found[1]
    await conn.execute(_ENSURE_REACTION_CLOCK, channel_id, channel_type)
    await conn.fetchval(_LOCK_REACTION_CLOCK, channel_id, channel_type)
    if await conn.fetchval(_IS_REVOKED, change.message_id):
        return ReactionOutcome(channel_id, channel_type, False, None, "revoked")
    row = await conn.fetchrow(_GET_REACTION, change.message_id, change.uid, change.emoji)
    current = None if row is None else _reaction(row)
    live = current is not None and not current.deleted
    if live == change.add:  # already so: nothing to change
        return ReactionOutcome(channel_id, channel_type, False, current)
    if change.add:
        emoji = {r[0] for r in await conn.fetch(_LIVE_EMOJI, change.message_id)}
        if change.emoji not in emoji and len(emoji) >= change.max_emoji:
            return ReactionOutcome(channel_id, channel_type, False, current, "too_many_emoji")
    seq = await conn.fetchval(_NEXT_REACTION_SEQ, channel_id, channel_type)
    new = Reaction(
        change.message_id,
        channel_id,
        channel_type,
        change.uid,
        change.emoji,
        seq,
        deleted=not change.add,
        created_at=change.created_at,
    )
    args = (new.message_id, channel_id, channel_type, new.uid, new.emoji, seq)
    await conn.execute(_PUT_REACTION, *args, new.deleted, new.created_at)
    return ReactionOutcome(channel_id, channel_type, True, new)


# The user's clock row first, then the conversation: the order the append statement takes.
_LOCK_CONVERSATION_CLOCK = """
    INSERT INTO conversation_clock (uid, last_version) VALUES ($1, 0)
    ON CONFLICT (uid) DO UPDATE SET last_version = conversation_clock.last_version
    RETURNING last_version"""
_GET_CONVERSATION = f"""
    SELECT {CONVERSATION_COLUMNS} FROM conversations
    WHERE uid = $1 AND channel_id = $2 AND channel_type = $3 FOR UPDATE"""  # noqa: S608
# The RED_DOT flag is bit 0x02 of the fixed header (spec §1.2).
_COUNT_UNREAD = """
    SELECT count(*) FROM messages
    WHERE channel_id = $1 AND channel_type = $2 AND message_seq > 0
        AND message_seq > $3 AND message_seq <= $4 AND from_uid <> $5 AND (flags & 2) <> 0"""
_NEXT_CONVERSATION_VERSION = """
    UPDATE conversation_clock SET last_version = last_version + 1 WHERE uid = $1
    RETURNING last_version"""
_SET_READ_POSITION = """
    UPDATE conversations SET readed_to_msg_seq = $4, unread = $5, version = $6
    WHERE uid = $1 AND channel_id = $2 AND channel_type = $3"""


async def _clear_unread(
    conn: Conn, key: tuple[str, str, int], message_seq: int
) -> tuple[ConversationRow, bool] | None:
    uid, channel_id, channel_type = key
    await conn.fetchval(_LOCK_CONVERSATION_CLOCK, uid)
    found = await conn.fetchrow(_GET_CONVERSATION, *key)
    if found is None:
        return None
    row = rows.conversation_row(found)
    last = row.last_msg_seq
    position = last if message_seq <= 0 else min(message_seq, last)
    if position <= row.readed_to_msg_seq:
        return row, False
    unread = await conn.fetchval(_COUNT_UNREAD, channel_id, channel_type, position, last, uid)
    version = await conn.fetchval(_NEXT_CONVERSATION_VERSION, uid)
    await conn.execute(_SET_READ_POSITION, *key, position, unread, version)
    return replace(row, readed_to_msg_seq=position, unread=unread, version=version), True


_REMINDER_COLUMNS = """reminder_id, uid, channel_id, channel_type, message_id, message_seq,
    reminder_type, publisher, text, version, done"""
_SYNC_REMINDERS = f"""
    SELECT {_REMINDER_COLUMNS} FROM reminders WHERE uid = $1 AND version > $2
    ORDER BY version LIMIT $3"""  # noqa: S608
_LOCK_REMINDERS = f"""
    SELECT {_REMINDER_COLUMNS} FROM reminders WHERE reminder_id = ANY($1::bigint[])
    ORDER BY reminder_id FOR UPDATE"""  # noqa: S608
_DONE_REMINDER = "UPDATE reminders SET done = true, version = $2 WHERE reminder_id = $1"


def _reminder(r: asyncpg.Record) -> Reminder:
    return Reminder(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])


async def _done_reminders(conn: Conn, uid: str, ids: list[int]) -> list[Reminder] | None:
    await conn.fetchval(_LOCK_CONVERSATION_CLOCK, uid)  # the clock first, as appends take it
    found = [_reminder(r) for r in await conn.fetch(_LOCK_REMINDERS, ids)]
    if len(found) != len(ids) or any(r.uid != uid for r in found):
        return None
    changed = []
    for r in found:
        if r.done:
            continue
        version = await conn.fetchval(_NEXT_CONVERSATION_VERSION, uid)
        await conn.execute(_DONE_REMINDER, r.reminder_id, version)
        changed.append(replace(r, done=True, version=version))
    return changed


_GET_REPLIES = f"""
    SELECT {", ".join("m." + c for c in MESSAGE_COLUMNS.split(", "))}
    FROM message_replies AS r JOIN messages AS m ON m.message_id = r.message_id
    WHERE r.reply_to = $1 AND r.message_seq > $2
    ORDER BY r.message_seq LIMIT $3"""  # noqa: S608


_FILE_COLUMNS = """file_id, sha256, size, content_type, name, width, height, channel_id,
    channel_type, uploader, created_at"""
_PUT_FILE = (
    f"INSERT INTO files ({_FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"  # noqa: S608
)
_GET_FILE = f"SELECT {_FILE_COLUMNS} FROM files WHERE file_id = $1"  # noqa: S608

_FILE_FIELDS = tuple(c.strip() for c in _FILE_COLUMNS.split(","))


# The person channels of $1 are its fake ids "$1@x" and "x@$1" (uids have no '@'). The newest
# hits are taken from message_search alone (it holds the channel), then joined: joined before
# the LIMIT, the planner walked messages_pkey backwards from the newest message to the 20th
# hit (~130,000 rows for a mid-frequency word in 5 of 100 channels at 10^6, bench search).
_SEARCH = f"""
    SELECT {", ".join("m." + c for c in MESSAGE_COLUMNS.split(", "))}
    FROM (
        SELECT s.message_id FROM message_search AS s
        WHERE s.tsv @@ to_tsquery('simple', $2) AND s.message_id < $3
            AND ($4 = '' OR (s.channel_id = $4 AND s.channel_type = $5))
            AND CASE WHEN s.channel_type = 1
                THEN starts_with(s.channel_id, $1 || '@')
                    OR right(s.channel_id, length($1) + 1) = '@' || $1
                ELSE EXISTS (SELECT 1 FROM subscribers AS sub
                    WHERE sub.channel_id = s.channel_id AND sub.channel_type = s.channel_type
                        AND sub.uid = $1)
            END
        ORDER BY s.message_id DESC LIMIT $6
    ) AS hit JOIN messages AS m ON m.message_id = hit.message_id
    ORDER BY m.message_id DESC"""  # noqa: S608
_NO_BOUND = 2**63 - 1


def _tsquery(terms: Sequence[str]) -> str:
    """Every word as a quoted prefix lexeme (``'word':*``), joined by ``&``."""
    return " & ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "':*" for t in terms)


class PgConvMethods:
    """Conversation-feature methods of the PostgreSQL store (see the store interface)."""

    __slots__ = ()

    async def _transaction(self, what: str, body: Callable[[Conn], Awaitable[T]]) -> T:
        raise NotImplementedError  # provided by PostgresStore

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        raise NotImplementedError  # provided by PostgresStore

    async def _fetchrow(self, what: str, sql: str, *args: Any) -> asyncpg.Record | None:
        raise NotImplementedError  # provided by PostgresStore

    # roles ----------------------------------------------------------------------------------

    async def get_members(self, channel_id: str, channel_type: int) -> list[Member]:
        """The channel's subscribers with their roles, sorted by code point."""
        found = await self._fetch("get_members", _GET_MEMBERS, channel_id, channel_type)
        return [Member(r[0], r[1]) for r in found]

    async def get_role(self, channel_id: str, channel_type: int, uid: str) -> int | None:
        """The role of ``uid`` in the channel; ``None`` when not a subscriber."""
        row = await self._fetchrow("get_role", _GET_ROLE, channel_id, channel_type, uid)
        return None if row is None else int(row[0])

    async def set_role(
        self, channel_id: str, channel_type: int, uids: Sequence[str], role: int
    ) -> bool:
        """Give each of ``uids`` ``role``, or change nothing if one is not a subscriber."""
        members = sorted(set(uids))

        async def body(conn: Conn) -> bool:
            found = await conn.fetchval(_LOCK_MEMBERS_OF, channel_id, channel_type, members)
            if found != len(members):
                return False
            await conn.execute(_SET_ROLE, channel_id, channel_type, members, role)
            return True

        return await self._transaction("set_role", body)

    # read position --------------------------------------------------------------------------

    async def clear_unread(
        self, uid: str, channel_id: str, channel_type: int, message_seq: int
    ) -> tuple[ConversationRow, bool] | None:
        """Move the read position up (see the interface)."""
        key = (uid, channel_id, channel_type)
        return await self._transaction(
            "clear_unread", lambda conn: _clear_unread(conn, key, message_seq)
        )

    # replies --------------------------------------------------------------------------------

    async def get_replies(self, message_id: int, after_seq: int, limit: int) -> list[StoredMessage]:
        """The messages quoting ``message_id`` (index ``message_replies_thread``)."""
        if limit <= 0:
            return []
        found = await self._fetch("get_replies", _GET_REPLIES, message_id, after_seq, limit)
        return [rows.stored_message(r) for r in found]

    # reminders ------------------------------------------------------------------------------

    async def sync_reminders(self, uid: str, after_version: int, limit: int) -> list[Reminder]:
        """``uid``'s reminders after ``after_version`` (index ``reminders_sync``)."""
        if limit <= 0:
            return []
        found = await self._fetch("sync_reminders", _SYNC_REMINDERS, uid, after_version, limit)
        return [_reminder(r) for r in found]

    async def done_reminders(self, uid: str, reminder_ids: Sequence[int]) -> list[Reminder] | None:
        """Mark ``uid``'s reminders done (see the interface)."""
        ids = list(dict.fromkeys(int(i) for i in reminder_ids))
        return await self._transaction(
            "done_reminders", lambda conn: _done_reminders(conn, uid, ids)
        )

    # search ---------------------------------------------------------------------------------

    async def search_messages(self, uid: str, query: SearchQuery) -> list[StoredMessage]:
        """A GIN ``tsvector`` match over ``message_search`` (every word a prefix), scoped to
        ``uid``."""
        if not query.terms or query.limit <= 0:
            return []
        before = query.before_message_id or _NO_BOUND
        args = (uid, _tsquery(query.terms), before, query.channel_id, query.channel_type)
        found = await self._fetch("search_messages", _SEARCH, *args, query.limit)
        return [rows.stored_message(r) for r in found]

    # files ----------------------------------------------------------------------------------

    async def put_file(self, record: FileRecord) -> None:
        """Record an upload."""
        args = tuple(getattr(record, f) for f in _FILE_FIELDS)
        await self._fetch("put_file", _PUT_FILE, *args)

    async def get_file(self, file_id: str) -> FileRecord | None:
        """An upload by id."""
        row = await self._fetchrow("get_file", _GET_FILE, file_id)
        return None if row is None else FileRecord(*row)

    # reactions ------------------------------------------------------------------------------

    async def react(self, change: ReactionChange) -> ReactionOutcome | None:
        """Add or remove one reaction in one transaction (see the interface)."""
        return await self._transaction("react", lambda conn: _react(conn, change))

    async def sync_reactions(
        self, channel_id: str, channel_type: int, after_seq: int, limit: int
    ) -> list[Reaction]:
        """The channel's reaction rows after ``after_seq`` (index ``message_reactions_sync``)."""
        if limit <= 0:
            return []
        args = (channel_id, channel_type, after_seq, limit)
        return [_reaction(r) for r in await self._fetch("sync_reactions", _SYNC_REACTIONS, *args)]

    async def reaction_summaries(self, message_ids: Sequence[int]) -> dict[int, list[Summary]]:
        """The messages' reaction summaries, aggregated by PostgreSQL (see the interface)."""
        ids = list(dict.fromkeys(int(i) for i in message_ids))
        if not ids:
            return {}
        out: dict[int, list[Summary]] = {}
        for r in await self._fetch("reaction_summaries", _REACTION_SUMMARIES, ids):
            out.setdefault(r[0], []).append(Summary(r[1], r[2], tuple(r[5]), r[3]))
        return out

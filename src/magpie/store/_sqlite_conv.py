"""The conversation-feature methods of :class:`magpie.store.sqlite.SqliteStore`: member roles,
reactions, read positions and reminders (and, as they land, files and search).

A mixin like :mod:`magpie.store._sqlite_ext`: it needs only the store's ``_write`` (one
``BEGIN IMMEDIATE`` transaction on the single writer thread) and ``_read`` (one pooled
read-only connection).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

from magpie.domain.members import Member
from magpie.domain.reactions import Reaction, Summary
from magpie.domain.reminders import NewReminder, Reminder, reminders_problem
from magpie.domain.search import SearchQuery
from magpie.errors import StoreError
from magpie.store.interface import (
    ConversationRow,
    FileRecord,
    ReactionChange,
    ReactionOutcome,
    StoredMessage,
)

__all__ = ["SqliteConvMethods", "checked_reminders", "insert_reminders"]

T = TypeVar("T")
_Job = Callable[[sqlite3.Connection], T]

# --- SQL -----------------------------------------------------------------------------------

_GET_MEMBERS = """
    SELECT uid, role FROM subscribers WHERE channel_id = ? AND channel_type = ? ORDER BY uid"""
_GET_ROLE = """
    SELECT role FROM subscribers WHERE channel_id = ? AND channel_type = ? AND uid = ?"""
_COUNT_MEMBERS_OF = """
    SELECT count(*) FROM subscribers WHERE channel_id = ? AND channel_type = ?
        AND uid IN (SELECT value FROM json_each(?))"""
_SET_ROLE = """
    UPDATE subscribers SET role = ? WHERE channel_id = ? AND channel_type = ?
        AND uid IN (SELECT value FROM json_each(?))"""


_LOG_MESSAGE_CHANNEL = """
    SELECT channel_id, channel_type FROM messages WHERE message_id = ? AND message_seq > 0"""
_IS_REVOKED = "SELECT revoke FROM message_ext WHERE message_id = ?"
_REACTION_COLUMNS = "message_id, channel_id, channel_type, uid, emoji, seq, deleted, created_at"
_GET_REACTION = f"""
    SELECT {_REACTION_COLUMNS} FROM message_reactions
    WHERE message_id = ? AND uid = ? AND emoji = ?"""  # noqa: S608 (a constant column list)
_LIVE_EMOJI = """
    SELECT DISTINCT emoji FROM message_reactions WHERE message_id = ? AND deleted = 0"""
_NEXT_REACTION_SEQ = """
    INSERT INTO reaction_clock (channel_id, channel_type, last_seq) VALUES (?, ?, 1)
    ON CONFLICT (channel_id, channel_type) DO UPDATE SET last_seq = last_seq + 1
    RETURNING last_seq"""
_PUT_REACTION = f"""
    INSERT INTO message_reactions ({_REACTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (message_id, uid, emoji) DO UPDATE SET
        seq = excluded.seq, deleted = excluded.deleted, created_at = excluded.created_at"""  # noqa: S608
_SYNC_REACTIONS = f"""
    SELECT {_REACTION_COLUMNS} FROM message_reactions
    WHERE channel_id = ? AND channel_type = ? AND seq > ?
    ORDER BY seq LIMIT ?"""  # noqa: S608
# Per (message, emoji) of the live rows: count, highest seq, first seq (the emoji's place on
# the message) and the uids joined by a space, which no uid holds (docs/security.md). SQLite
# before 3.44 has no group_concat(... ORDER BY) (3.40 is common): the rows are read from the
# index message_reactions_live (migration 0013), ordered by (message_id, emoji, seq), so each
# group meets its uids in seq order (and a sort, if a plan had one, keeps the order of equal
# keys). The store contract suite checks the order.
_REACTION_SUMMARIES = """
    SELECT message_id, emoji, count(*), max(seq), min(seq) AS first, group_concat(uid, ' ')
    FROM message_reactions INDEXED BY message_reactions_live
    WHERE message_id IN (SELECT value FROM json_each(?)) AND deleted = 0
    GROUP BY message_id, emoji
    ORDER BY message_id, first"""

_CONVERSATION_COLUMNS = """uid, channel_id, channel_type, unread, last_msg_seq,
    last_client_msg_no, readed_to_msg_seq, timestamp, version"""
_GET_CONVERSATION = f"""
    SELECT {_CONVERSATION_COLUMNS} FROM conversations
    WHERE uid = ? AND channel_id = ? AND channel_type = ?"""  # noqa: S608
# The RED_DOT flag is bit 0x02 of the fixed header (spec §1.2).
_COUNT_UNREAD = """
    SELECT count(*) FROM messages
    WHERE channel_id = ? AND channel_type = ? AND message_seq > 0
        AND message_seq > ? AND message_seq <= ? AND from_uid <> ? AND (flags & 2) <> 0"""
_NEXT_CONVERSATION_VERSION = """
    INSERT INTO conversation_clock (uid, last_version) VALUES (?, 1)
    ON CONFLICT (uid) DO UPDATE SET last_version = last_version + 1
    RETURNING last_version"""
_SET_READ_POSITION = """
    UPDATE conversations SET readed_to_msg_seq = ?, unread = ?, version = ?
    WHERE uid = ? AND channel_id = ? AND channel_type = ?"""

_REMINDER_COLUMNS = """reminder_id, uid, channel_id, channel_type, message_id, message_seq,
    reminder_type, publisher, text, version, done"""
_CLOCK_OF = "SELECT last_version FROM conversation_clock WHERE uid = ?"
_INSERT_REMINDER = """
    INSERT INTO reminders (uid, channel_id, channel_type, message_id, message_seq,
        reminder_type, publisher, text, version)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (uid, message_id, reminder_type) DO NOTHING"""
_SYNC_REMINDERS = f"""
    SELECT {_REMINDER_COLUMNS} FROM reminders WHERE uid = ? AND version > ?
    ORDER BY version LIMIT ?"""  # noqa: S608
_REMINDERS_OF = f"""
    SELECT {_REMINDER_COLUMNS} FROM reminders
    WHERE reminder_id IN (SELECT value FROM json_each(?))"""  # noqa: S608
_DONE_REMINDER = "UPDATE reminders SET done = 1, version = ? WHERE reminder_id = ?"

_GET_REPLIES = """
    SELECT m.message_id, m.message_seq, m.client_msg_no, m.from_uid, m.channel_id,
        m.channel_type, m.timestamp, m.payload, m.flags, m.setting, m.topic, m.expire
    FROM message_replies AS r JOIN messages AS m ON m.message_id = r.message_id
    WHERE r.reply_to = ? AND r.message_seq > ?
    ORDER BY r.message_seq LIMIT ?"""

_FILE_COLUMNS = """file_id, sha256, size, content_type, name, width, height, channel_id,
    channel_type, uploader, created_at"""
_PUT_FILE = f"INSERT INTO files ({_FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_GET_FILE = f"SELECT {_FILE_COLUMNS} FROM files WHERE file_id = ?"  # noqa: S608

_FILE_FIELDS = tuple(c.strip() for c in _FILE_COLUMNS.split(","))

# The person channels of ?1 are its fake ids "?1@x" and "x@?1" (uids have no '@').
_SEARCH = """
    SELECT m.message_id, m.message_seq, m.client_msg_no, m.from_uid, m.channel_id,
        m.channel_type, m.timestamp, m.payload, m.flags, m.setting, m.topic, m.expire
    FROM message_search AS s JOIN messages AS m ON m.message_id = s.rowid
    WHERE message_search MATCH ?2 AND s.rowid < ?3
        AND (?4 = '' OR (m.channel_id = ?4 AND m.channel_type = ?5))
        AND CASE WHEN m.channel_type = 1
            THEN substr(m.channel_id, 1, length(?1) + 1) = ?1 || '@'
                OR substr(m.channel_id, -length(?1) - 1) = '@' || ?1
            ELSE EXISTS (SELECT 1 FROM subscribers AS sub WHERE sub.channel_id = m.channel_id
                AND sub.channel_type = m.channel_type AND sub.uid = ?1)
        END
    ORDER BY s.rowid DESC LIMIT ?6"""
_NO_BOUND = 2**63 - 1

#: Ids per ``IN (…)`` lookup.
_IDS_PER_QUERY = 500


def _reaction(r: Sequence[Any]) -> Reaction:
    """A ``message_reactions`` row (columns as :data:`_REACTION_COLUMNS`)."""
    return Reaction(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7])


# --- transaction bodies --------------------------------------------------------------------


def _fetch(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[Any]:
    return conn.execute(sql, args).fetchall()


def _react(conn: sqlite3.Connection, change: ReactionChange) -> ReactionOutcome | None:
    found = conn.execute(_LOG_MESSAGE_CHANNEL, (change.message_id,)).fetchone()
    if found is None:
        return None
    channel_id, channel_type = found
    revoked = conn.execute(_IS_REVOKED, (change.message_id,)).fetchone()
    if revoked is not None and revoked[0]:
        return ReactionOutcome(channel_id, channel_type, False, None, "revoked")
    key = (change.message_id, change.uid, change.emoji)
    row = conn.execute(_GET_REACTION, key).fetchone()
    current = None if row is None else _reaction(row)
    live = current is not None and not current.deleted
    if live == change.add:  # already so: nothing to change
        return ReactionOutcome(channel_id, channel_type, False, current)
    if change.add:
        emoji = {e for (e,) in conn.execute(_LIVE_EMOJI, (change.message_id,))}
        if change.emoji not in emoji and len(emoji) >= change.max_emoji:
            return ReactionOutcome(channel_id, channel_type, False, current, "too_many_emoji")
    seq = conn.execute(_NEXT_REACTION_SEQ, (channel_id, channel_type)).fetchone()[0]
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
    conn.execute(_PUT_REACTION, (*args, int(new.deleted), new.created_at))
    return ReactionOutcome(channel_id, channel_type, True, new)


def _clear_unread(
    conn: sqlite3.Connection, key: tuple[str, str, int], message_seq: int
) -> tuple[ConversationRow, bool] | None:
    found = conn.execute(_GET_CONVERSATION, key).fetchone()
    if found is None:
        return None
    row = ConversationRow(*found)
    last = row.last_msg_seq
    position = last if message_seq <= 0 else min(message_seq, last)
    if position <= row.readed_to_msg_seq:
        return row, False
    uid, channel_id, channel_type = key
    args = (channel_id, channel_type, position, last, uid)
    unread: int = conn.execute(_COUNT_UNREAD, args).fetchone()[0]
    version: int = conn.execute(_NEXT_CONVERSATION_VERSION, (uid,)).fetchone()[0]
    conn.execute(_SET_READ_POSITION, (position, unread, version, *key))
    return replace(row, readed_to_msg_seq=position, unread=unread, version=version), True


def checked_reminders(
    reminders: Sequence[NewReminder], recipients: Sequence[str]
) -> list[NewReminder]:
    """``reminders`` if each is for one of ``recipients`` (:class:`StoreError` otherwise)."""
    problem = reminders_problem(reminders, recipients)
    if problem:
        raise StoreError(problem)
    return list(reminders)


def insert_reminders(
    conn: sqlite3.Connection, m: StoredMessage, reminders: Sequence[NewReminder]
) -> None:
    """Create ``reminders`` about ``m`` (inside its append: each uid's conversation clock was
    just bumped, so its value is this append's version for the uid)."""
    for r in reminders:
        version: int = conn.execute(_CLOCK_OF, (r.uid,)).fetchone()[0]
        place = (m.channel_id, m.channel_type, m.message_id, m.message_seq)
        conn.execute(
            _INSERT_REMINDER, (r.uid, *place, r.reminder_type, m.from_uid, r.text, version)
        )


def _reminder(r: Sequence[Any]) -> Reminder:
    return Reminder(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], bool(r[10]))


def _done_reminders(conn: sqlite3.Connection, uid: str, ids: list[int]) -> list[Reminder] | None:
    found = [_reminder(r) for r in conn.execute(_REMINDERS_OF, (json.dumps(ids),))]
    if len(found) != len(ids) or any(r.uid != uid for r in found):
        return None
    changed = []
    for r in sorted(found, key=lambda r: r.reminder_id):
        if r.done:
            continue
        version: int = conn.execute(_NEXT_CONVERSATION_VERSION, (uid,)).fetchone()[0]
        conn.execute(_DONE_REMINDER, (version, r.reminder_id))
        changed.append(replace(r, done=True, version=version))
    return changed


def _set_role(
    conn: sqlite3.Connection, channel: tuple[str, int], uids: list[str], role: int
) -> bool:
    wanted = json.dumps(uids)
    found: int = conn.execute(_COUNT_MEMBERS_OF, (*channel, wanted)).fetchone()[0]
    if found != len(uids):
        return False
    conn.execute(_SET_ROLE, (role, *channel, wanted))
    return True


# --- the mixin -----------------------------------------------------------------------------


class SqliteConvMethods:
    """Conversation-feature methods of the SQLite store (see the store interface)."""

    __slots__ = ()

    async def _write(self, what: str, job: _Job[T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _read(self, what: str, job: _Job[T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    # roles ----------------------------------------------------------------------------------

    async def get_members(self, channel_id: str, channel_type: int) -> list[Member]:
        """The channel's subscribers with their roles, sorted by code point."""
        args = (channel_id, channel_type)
        rows = await self._read("get_members", lambda c: c.execute(_GET_MEMBERS, args).fetchall())
        return [Member(uid, role) for uid, role in rows]

    async def get_role(self, channel_id: str, channel_type: int, uid: str) -> int | None:
        """The role of ``uid`` in the channel; ``None`` when not a subscriber."""
        args = (channel_id, channel_type, uid)
        row = await self._read("get_role", lambda c: c.execute(_GET_ROLE, args).fetchone())
        return None if row is None else int(row[0])

    async def set_role(
        self, channel_id: str, channel_type: int, uids: Sequence[str], role: int
    ) -> bool:
        """Give each of ``uids`` ``role``, or change nothing if one is not a subscriber."""
        members = list(dict.fromkeys(uids))
        job = partial(_set_role, channel=(channel_id, channel_type), uids=members, role=role)
        return await self._write("set_role", job)

    # read position --------------------------------------------------------------------------

    async def clear_unread(
        self, uid: str, channel_id: str, channel_type: int, message_seq: int
    ) -> tuple[ConversationRow, bool] | None:
        """Move the read position up (see the interface)."""
        job = partial(_clear_unread, key=(uid, channel_id, channel_type), message_seq=message_seq)
        return await self._write("clear_unread", job)

    # replies --------------------------------------------------------------------------------

    async def get_replies(self, message_id: int, after_seq: int, limit: int) -> list[StoredMessage]:
        """The messages quoting ``message_id`` (index ``message_replies_thread``)."""
        if limit <= 0:
            return []
        args = (message_id, after_seq, limit)
        rows = await self._read("get_replies", partial(_fetch, sql=_GET_REPLIES, args=args))
        return [StoredMessage(*r) for r in rows]

    # reminders ------------------------------------------------------------------------------

    async def sync_reminders(self, uid: str, after_version: int, limit: int) -> list[Reminder]:
        """``uid``'s reminders after ``after_version`` (index ``reminders_sync``)."""
        if limit <= 0:
            return []
        args = (uid, after_version, limit)
        rows = await self._read("sync_reminders", partial(_fetch, sql=_SYNC_REMINDERS, args=args))
        return [_reminder(r) for r in rows]

    async def done_reminders(self, uid: str, reminder_ids: Sequence[int]) -> list[Reminder] | None:
        """Mark ``uid``'s reminders done (see the interface)."""
        ids = list(dict.fromkeys(int(i) for i in reminder_ids))
        return await self._write("done_reminders", partial(_done_reminders, uid=uid, ids=ids))

    # search ---------------------------------------------------------------------------------

    async def search_messages(self, uid: str, query: SearchQuery) -> list[StoredMessage]:
        """FTS5 over ``message_search`` (every word a quoted prefix), scoped to ``uid``."""
        if not query.terms or query.limit <= 0:
            return []
        match = " ".join('"' + t.replace('"', '""') + '"*' for t in query.terms)
        before = query.before_message_id or _NO_BOUND
        args = (uid, match, before, query.channel_id, query.channel_type, query.limit)
        rows = await self._read("search_messages", partial(_fetch, sql=_SEARCH, args=args))
        return [StoredMessage(*r) for r in rows]

    # files ----------------------------------------------------------------------------------

    async def put_file(self, record: FileRecord) -> None:
        """Record an upload."""
        args = tuple(getattr(record, f) for f in _FILE_FIELDS)
        await self._write("put_file", lambda c: c.execute(_PUT_FILE, args))

    async def get_file(self, file_id: str) -> FileRecord | None:
        """An upload by id."""
        rows = await self._read("get_file", partial(_fetch, sql=_GET_FILE, args=(file_id,)))
        return FileRecord(*rows[0]) if rows else None

    # reactions ------------------------------------------------------------------------------

    async def react(self, change: ReactionChange) -> ReactionOutcome | None:
        """Add or remove one reaction in one transaction (see the interface)."""
        return await self._write("react", partial(_react, change=change))

    async def sync_reactions(
        self, channel_id: str, channel_type: int, after_seq: int, limit: int
    ) -> list[Reaction]:
        """The channel's reaction rows after ``after_seq`` (index ``message_reactions_sync``)."""
        if limit <= 0:
            return []
        args = (channel_id, channel_type, after_seq, limit)
        rows = await self._read(
            "sync_reactions", lambda c: c.execute(_SYNC_REACTIONS, args).fetchall()
        )
        return [_reaction(r) for r in rows]

    async def reaction_summaries(self, message_ids: Sequence[int]) -> dict[int, list[Summary]]:
        """The messages' reaction summaries, aggregated by SQLite (see the interface)."""
        ids = list(dict.fromkeys(int(i) for i in message_ids))
        out: dict[int, list[Summary]] = {}
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = json.dumps(ids[start : start + _IDS_PER_QUERY])
            rows = await self._read(
                "reaction_summaries", partial(_fetch, sql=_REACTION_SUMMARIES, args=(chunk,))
            )
            for mid, emoji, count, top, _first, users in rows:
                out.setdefault(mid, []).append(Summary(emoji, count, tuple(users.split(" ")), top))
        return out

"""The SDK's local cache: one SQLite file, owned by one worker thread
(:mod:`magpie.sqlite_worker`).

What it keeps (all per user; the file records its uid and refuses another):

* ``messages``: every cached message of every channel, keyed by ``(channel, message_seq)``,
  unique by ``message_id`` (so a RECV delivered twice is stored once);
* ``extensions``: the newest known extension row of each message and its ``version`` —
  replaced only through :func:`magpie.domain.ext.apply_if_newer` (I6), so duplicates and
  out-of-order deliveries change nothing;
* ``ext_cursors``: per channel, the highest ``extra_version`` received (the next
  ``/message/extra/sync`` asks for rows above it);
* ``conversations``: the conversation list with each channel's last known seq, and the
  ``/conversation/sync`` version cursor;
* ``meta``: uid, schema version, and the server store's ``epoch`` (I7) — a different epoch
  means another store incarnation: :meth:`Cache.reset` drops everything but the uid. Data
  cached while no epoch was recorded is stale too (:meth:`Cache.adopt_epoch` refuses to
  adopt an epoch for it), since nothing tells which store it came from.

Every method is one transaction. With ``synchronous=FULL`` (the default) a method returns only
once its changes are on disk, which is what lets the client RECVACK after caching.
The schema is disposable: a file of another schema version is emptied and rebuilt.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from magpie.client.errors import CacheMismatch
from magpie.client.model import Channel, Conversation, ExtChange, Message
from magpie.domain.ext import ExtState, apply_if_newer
from magpie.sqlite_worker import SqliteWorker

__all__ = ["SCHEMA_VERSION", "Cache", "Stored"]

#: Version of the cache's tables; a file with another is rebuilt.
SCHEMA_VERSION = "1"

_TABLES = ("messages", "extensions", "ext_cursors", "conversations")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    channel_id TEXT NOT NULL, channel_type INTEGER NOT NULL, message_seq INTEGER NOT NULL,
    message_id INTEGER NOT NULL, client_msg_no TEXT NOT NULL, from_uid TEXT NOT NULL,
    timestamp INTEGER NOT NULL, payload BLOB NOT NULL, is_cmd INTEGER NOT NULL,
    PRIMARY KEY (channel_id, channel_type, message_seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_id ON messages (message_id);
CREATE TABLE IF NOT EXISTS extensions (
    message_id INTEGER PRIMARY KEY, channel_id TEXT NOT NULL, channel_type INTEGER NOT NULL,
    version INTEGER NOT NULL, extra_version INTEGER NOT NULL, row TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ext_cursors (
    channel_id TEXT NOT NULL, channel_type INTEGER NOT NULL, extra_version INTEGER NOT NULL,
    PRIMARY KEY (channel_id, channel_type)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversations (
    channel_id TEXT NOT NULL, channel_type INTEGER NOT NULL, last_msg_seq INTEGER NOT NULL,
    unread INTEGER NOT NULL, timestamp INTEGER NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (channel_id, channel_type)
) WITHOUT ROWID;
"""
_MESSAGE_COLUMNS = (
    "m.channel_id, m.channel_type, m.message_id, m.message_seq, m.client_msg_no, m.from_uid, "
    "m.timestamp, m.payload, e.row"
)
_INSERT_MESSAGE = """INSERT OR IGNORE INTO messages (channel_id, channel_type, message_seq,
    message_id, client_msg_no, from_uid, timestamp, payload, is_cmd)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_BUMP_CONVERSATION = """INSERT INTO conversations
    (channel_id, channel_type, last_msg_seq, unread, timestamp, version)
    VALUES (?, ?, ?, 0, ?, 0)
    ON CONFLICT (channel_id, channel_type) DO UPDATE SET
        last_msg_seq = MAX(last_msg_seq, excluded.last_msg_seq),
        timestamp = MAX(timestamp, excluded.timestamp)"""
_UPSERT_CONVERSATION = """INSERT INTO conversations
    (channel_id, channel_type, last_msg_seq, unread, timestamp, version)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (channel_id, channel_type) DO UPDATE SET
        last_msg_seq = MAX(last_msg_seq, excluded.last_msg_seq), unread = excluded.unread,
        timestamp = MAX(timestamp, excluded.timestamp), version = excluded.version"""
_HOLES = """WITH s AS (
        SELECT message_seq AS seq, LEAD(message_seq) OVER (ORDER BY message_seq) AS nxt
        FROM messages WHERE channel_id = ? AND channel_type = ? AND message_seq BETWEEN ? AND ?)
    SELECT seq + 1, nxt - 1 FROM s WHERE nxt > seq + 1 ORDER BY seq"""

R = TypeVar("R")


def _transaction(conn: sqlite3.Connection, body: Callable[[], R]) -> R:
    """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _setup(synchronous: str, conn: sqlite3.Connection) -> None:
    """Pragmas, then the schema (rebuilt if the file has another version)."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")  # validated by ClientOptions
    conn.executescript(_SCHEMA)
    if _meta(conn, "schema") not in (None, SCHEMA_VERSION):
        conn.executescript("".join(f"DROP TABLE {t};" for t in (*_TABLES, "meta")))
        conn.executescript(_SCHEMA)
    _transaction(conn, lambda: _set_meta(conn, "schema", SCHEMA_VERSION))


def _claim(uid: str, conn: sqlite3.Connection) -> tuple[str, int]:
    """Record ``uid`` as the file's owner (refusing another); returns (epoch, conv version)."""

    def body() -> tuple[str, int]:
        owner = _meta(conn, "uid")
        if owner is not None and owner != uid:
            raise CacheMismatch(f"the cache file belongs to uid {owner!r}, not {uid!r}")
        _set_meta(conn, "uid", uid)
        return _meta(conn, "epoch") or "", int(_meta(conn, "conversation_version") or 0)

    return _transaction(conn, body)


def _message_row(message: Message) -> tuple[Any, ...]:
    c = message.channel
    return (
        c.channel_id,
        c.channel_type,
        message.message_seq,
        message.message_id,
        message.client_msg_no,
        message.from_uid,
        message.timestamp,
        message.payload,
        int(message.is_command),
    )


def _to_message(row: Sequence[Any]) -> Message:
    ext = None if row[8] is None else ExtState.from_json(json.loads(row[8]))
    return Message.of(Channel(row[0], row[1]), row[2], row[3], row[4], row[5], row[6], row[7], ext)


@dataclass(frozen=True, slots=True)
class Stored:
    """What :meth:`Cache.put_messages` did: the messages not cached before, and the
    extension changes their ``ext`` rows made."""

    fresh: list[Message]
    changes: list[ExtChange]


def _put_messages(messages: Sequence[Message], conn: sqlite3.Connection) -> Stored:
    def body() -> Stored:
        fresh = [m for m in messages if conn.execute(_INSERT_MESSAGE, _message_row(m)).rowcount]
        tops: dict[Channel, Message] = {}
        for m in messages:
            if m.channel not in tops or m.message_seq > tops[m.channel].message_seq:
                tops[m.channel] = m
        for c, m in tops.items():
            args = (c.channel_id, c.channel_type, m.message_seq, m.timestamp)
            conn.execute(_BUMP_CONVERSATION, args)
        changes = []
        for message in messages:
            if message.ext is not None and (change := _apply_one(message, conn)) is not None:
                changes.append(change)
        return Stored(fresh, changes)

    return _transaction(conn, body)


def _apply_one(message: Message, conn: sqlite3.Connection) -> ExtChange | None:
    """A message's ``ext`` (its state when the page was read) applied if newer; it says
    nothing about other messages, so the channel's cursor does not move."""
    assert message.ext is not None  # noqa: S101 - checked by the caller
    cached = _ext(message.message_id, conn)
    if apply_if_newer(cached, message.ext) is cached:
        return None
    _store_ext(message.channel, message.ext, conn)
    return ExtChange(message.channel, message.message_id, cached, message.ext, message)


def _holes(channel: Channel, low: int, high: int, conn: sqlite3.Connection) -> list[range]:
    key = (channel.channel_id, channel.channel_type)
    first, last = conn.execute(
        "SELECT MIN(message_seq), MAX(message_seq) FROM messages "
        "WHERE channel_id = ? AND channel_type = ? AND message_seq BETWEEN ? AND ?",
        (*key, low, high),
    ).fetchone()
    if first is None:
        return [range(low, high + 1)] if low <= high else []
    holes = [range(low, first)] if first > low else []
    holes += [range(a, b + 1) for a, b in conn.execute(_HOLES, (*key, low, high))]
    return holes + ([range(last + 1, high + 1)] if last < high else [])


def _history(
    channel: Channel, limit: int, before: int | None, conn: sqlite3.Connection
) -> list[Message]:
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m "  # noqa: S608 - constant column list
        "LEFT JOIN extensions e ON e.message_id = m.message_id "
        "WHERE m.channel_id = ? AND m.channel_type = ? AND m.message_seq < ? AND m.is_cmd = 0 "
        "ORDER BY m.message_seq DESC LIMIT ?",
        (channel.channel_id, channel.channel_type, before or 2**63 - 1, limit),
    ).fetchall()
    return [_to_message(r) for r in reversed(rows)]


def _message(message_id: int, conn: sqlite3.Connection) -> Message | None:
    row = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m "  # noqa: S608 - constant column list
        "LEFT JOIN extensions e ON e.message_id = m.message_id WHERE m.message_id = ?",
        (message_id,),
    ).fetchone()
    return None if row is None else _to_message(row)


def _ext(message_id: int, conn: sqlite3.Connection) -> ExtState | None:
    row = conn.execute("SELECT row FROM extensions WHERE message_id = ?", (message_id,)).fetchone()
    return None if row is None else ExtState.from_json(json.loads(row[0]))


def _cursor(channel: Channel, conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT extra_version FROM ext_cursors WHERE channel_id = ? AND channel_type = ?",
        (channel.channel_id, channel.channel_type),
    ).fetchone()
    return 0 if row is None else int(row[0])


def _store_ext(channel: Channel, row: ExtState, conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO extensions (message_id, channel_id, channel_type, version, extra_version, "
        "row) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO UPDATE SET "
        "version = excluded.version, extra_version = excluded.extra_version, row = excluded.row",
        (
            row.message_id,
            channel.channel_id,
            channel.channel_type,
            row.version,
            row.extra_version,
            json.dumps(row.to_json(), separators=(",", ":")),
        ),
    )


def _apply_ext(
    channel: Channel, rows: Sequence[ExtState], conn: sqlite3.Connection
) -> list[ExtChange]:
    """Each row applied if newer (I6); the channel cursor moved to the highest
    ``extra_version`` seen. Returns the rows that changed something."""

    def body() -> list[ExtChange]:
        changes = []
        cursor = _cursor(channel, conn)
        for row in rows:
            cached = _ext(row.message_id, conn)
            if apply_if_newer(cached, row) is not cached:
                _store_ext(channel, row, conn)
                changes.append(ExtChange(channel, row.message_id, cached, row))
            cursor = max(cursor, row.extra_version)
        conn.execute(
            "INSERT INTO ext_cursors (channel_id, channel_type, extra_version) VALUES (?, ?, ?) "
            "ON CONFLICT (channel_id, channel_type) DO UPDATE SET extra_version = "
            "MAX(extra_version, excluded.extra_version)",
            (channel.channel_id, channel.channel_type, cursor),
        )
        return [_with_message(c, conn) for c in changes]

    return _transaction(conn, body)


def _with_message(change: ExtChange, conn: sqlite3.Connection) -> ExtChange:
    message = _message(change.message_id, conn)
    return ExtChange(change.channel, change.message_id, change.old, change.new, message)


def _put_conversations(
    conversations: Sequence[Conversation], version: int, conn: sqlite3.Connection
) -> None:
    def body() -> None:
        for c in conversations:
            ch = c.channel
            args = (ch.channel_id, ch.channel_type, c.last_msg_seq, c.unread, c.timestamp)
            conn.execute(_UPSERT_CONVERSATION, (*args, c.version))
        _set_meta(conn, "conversation_version", str(version))

    _transaction(conn, body)


def _conversations(conn: sqlite3.Connection) -> list[Conversation]:
    rows = conn.execute(
        "SELECT channel_id, channel_type, last_msg_seq, unread, timestamp, version "
        "FROM conversations ORDER BY timestamp DESC, channel_id, channel_type"
    ).fetchall()
    return [Conversation(Channel(r[0], r[1]), *r[2:]) for r in rows]


def _adopt_epoch(epoch: str, conn: sqlite3.Connection) -> bool:
    def body() -> bool:
        if _meta(conn, "epoch"):
            return False
        for table in _TABLES:
            if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():  # noqa: S608
                return False
        _set_meta(conn, "epoch", epoch)
        return True

    return _transaction(conn, body)


def _reset(epoch: str, conn: sqlite3.Connection) -> None:
    def body() -> None:
        for table in _TABLES:
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - constant table names
        _set_meta(conn, "epoch", epoch)
        _set_meta(conn, "conversation_version", "0")

    _transaction(conn, body)


class Cache:
    """The local cache of one user. ``path`` ``None`` keeps it in memory only."""

    def __init__(self, path: str | Path | None, synchronous: str = "FULL") -> None:
        self._path = ":memory:" if path is None else str(path)
        self._worker = SqliteWorker(
            self._path, partial(_setup, synchronous), name="magpie-client-cache"
        )
        self._epoch = ""
        self._conversation_version = 0

    async def open(self, uid: str) -> None:
        """Open (creating) the file for ``uid``; :class:`CacheMismatch` if it is another's."""
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        await self._worker.start()
        try:
            self._epoch, self._conversation_version = await self._worker.run(partial(_claim, uid))
        except BaseException:
            await self._worker.close()
            raise

    async def close(self) -> None:
        """Finish pending writes and close the file."""
        await self._worker.close()

    @property
    def epoch(self) -> str:
        """The server store epoch the cached data came from (``""``: none yet)."""
        return self._epoch

    @property
    def conversation_version(self) -> int:
        """The ``/conversation/sync`` version cursor."""
        return self._conversation_version

    async def adopt_epoch(self, epoch: str) -> bool:
        """Record ``epoch`` as the one the cached data comes from — only when the cache
        has no epoch yet *and holds nothing*. A cache that holds data but no epoch (it
        only sent messages, or was filled before an epoch was ever read) cannot tell which
        store its data came from: it is stale, and the caller resets it (I7). ``False``
        when nothing was adopted."""
        adopted: bool = await self._worker.run(partial(_adopt_epoch, epoch))
        if adopted:
            self._epoch = epoch
        return adopted

    async def reset(self, epoch: str) -> None:
        """Drop every cached message, extension, cursor and conversation; adopt ``epoch``."""
        await self._worker.run(partial(_reset, epoch))
        self._epoch, self._conversation_version = epoch, 0

    async def put_messages(self, messages: Sequence[Message]) -> Stored:
        """Cache messages with a seq (and apply their ``ext`` rows if newer)."""
        stored = [m for m in messages if m.message_seq > 0]
        if not stored:
            return Stored([], [])
        return await self._worker.run(partial(_put_messages, stored))

    async def holes(self, channel: Channel, low: int, high: int) -> list[range]:
        """The ranges of seqs in ``low..high`` (inclusive) that are not cached."""
        return await self._worker.run(partial(_holes, channel, low, high))

    async def max_seq(self, channel: Channel) -> int:
        """The highest cached seq of ``channel`` (0 if none)."""
        sql = "SELECT MAX(message_seq) FROM messages WHERE channel_id = ? AND channel_type = ?"
        args = (channel.channel_id, channel.channel_type)
        row = await self._worker.run(lambda c: c.execute(sql, args).fetchone())
        return int(row[0] or 0)

    async def last_seq(self, channel: Channel) -> int:
        """The channel's last known seq: the conversation's, or the highest cached."""
        sql = "SELECT last_msg_seq FROM conversations WHERE channel_id = ? AND channel_type = ?"
        args = (channel.channel_id, channel.channel_type)
        row = await self._worker.run(lambda c: c.execute(sql, args).fetchone())
        return max(int(row[0]) if row else 0, await self.max_seq(channel))

    async def cached_seqs(self) -> list[tuple[Channel, int]]:
        """Every channel with cached messages and its highest cached seq."""
        sql = (
            "SELECT channel_id, channel_type, MAX(message_seq) FROM messages "
            "GROUP BY channel_id, channel_type"
        )
        rows = await self._worker.run(lambda c: c.execute(sql).fetchall())
        return [(Channel(r[0], r[1]), int(r[2])) for r in rows]

    async def history(
        self, channel: Channel, limit: int = 50, before_seq: int | None = None
    ) -> list[Message]:
        """Up to ``limit`` cached messages of ``channel`` below ``before_seq`` (default: the
        newest), ascending, each with its extension; commands are left out."""
        return await self._worker.run(partial(_history, channel, limit, before_seq))

    async def message(self, message_id: int) -> Message | None:
        """The cached message ``message_id`` with its extension."""
        return await self._worker.run(partial(_message, message_id))

    async def ext(self, message_id: int) -> ExtState | None:
        """The cached extension of ``message_id``."""
        return await self._worker.run(partial(_ext, message_id))

    async def ext_cursor(self, channel: Channel) -> int:
        """The highest ``extra_version`` received for ``channel``."""
        return await self._worker.run(partial(_cursor, channel))

    async def apply_ext(self, channel: Channel, rows: Iterable[ExtState]) -> list[ExtChange]:
        """Apply extension rows of ``channel`` if newer; returns the effective changes."""
        return await self._worker.run(partial(_apply_ext, channel, list(rows)))

    async def put_conversations(self, conversations: Sequence[Conversation], version: int) -> None:
        """Upsert conversations (a seq never goes down) and set the version cursor."""
        version = max(version, self._conversation_version)
        await self._worker.run(partial(_put_conversations, conversations, version))
        self._conversation_version = version

    async def conversations(self) -> list[Conversation]:
        """The cached conversation list, newest first."""
        return await self._worker.run(_conversations)

    async def channels(self) -> list[Channel]:
        """Every channel the cache knows (conversations, messages, extension cursors)."""
        sql = " UNION ".join(
            f"SELECT channel_id, channel_type FROM {t}"  # noqa: S608 - constant table names
            for t in _TABLES
        )
        rows = await self._worker.run(lambda c: c.execute(sql).fetchall())
        return sorted(Channel(r[0], r[1]) for r in rows)

"""The message-extension methods of :class:`magpie.store.sqlite.SqliteStore` (I6).

A mixin, so the extension SQL lives apart from the IM core's: :class:`SqliteExtMethods`
needs only the two plumbing methods of the store — ``_write`` (one ``BEGIN IMMEDIATE``
transaction on the single writer thread) and ``_read`` (one pooled read-only connection).
Because writes are serialized on one thread, the read-decide-write of :meth:`update_ext`
needs no retry loop; a PostgreSQL backend would lock the row (``SELECT … FOR UPDATE``) and the
channel counter instead.

Tables (``migrations/0002_extensions.sql``): ``message_ext`` (one row per changed message,
indexed on ``(channel_id, channel_type, extra_version)``), ``ext_channel_clock`` (the
per-channel ``extra_version`` counter) and ``message_ext_ops`` (the operation log, unique on
``(message_id, action_id)``); ``migrations/0005_records.sql``: ``message_ext_records`` (a
message's records, keyed) and ``card_types`` (registered card types).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import msgspec

from magpie.domain.ext import (
    Actor,
    Decision,
    ExtAttempt,
    ExtRecord,
    ExtState,
    Fields,
    Mutate,
    OpRecord,
    Result,
    UpdateResult,
)
from magpie.errors import StoreError
from magpie.store._sqlite_jobs import checked_jobs, insert_jobs
from magpie.store.interface import CardTypeRow, JobsOf, StoredMessage
from magpie.store.records import check_reads, check_record_keys

__all__ = ["SqliteExtMethods"]

T = TypeVar("T")
_Job = Callable[[sqlite3.Connection], T]

#: Ids per ``IN (…)`` query of :meth:`SqliteExtMethods.get_exts` (far below SQLite's limit).
_IDS_PER_QUERY = 500

# --- SQL -----------------------------------------------------------------------------------

# Only channel-log messages (message_seq > 0) carry extensions.
_GET_LOG_MESSAGE = """
    SELECT message_id, message_seq, client_msg_no, from_uid, channel_id, channel_type,
        timestamp, payload, flags, setting, topic, expire
    FROM messages WHERE message_id = ? AND message_seq > 0"""

# Columns in the order _ext_row reads them.
_GET_EXT = """
    SELECT message_id, channel_id, channel_type, message_seq, status, extra, revoke, revoker,
        content_edit, edited_at, readed_count, version, extra_version, updated_at,
        updated_uid, updated_device, last_op_id, unread_count
    FROM message_ext WHERE message_id = ?"""
_GET_EXTS = """
    SELECT message_id, channel_id, channel_type, message_seq, status, extra, revoke, revoker,
        content_edit, edited_at, readed_count, version, extra_version, updated_at,
        updated_uid, updated_device, last_op_id, unread_count
    FROM message_ext WHERE message_id IN (SELECT value FROM json_each(?))"""
_SYNC_AFTER = """
    SELECT message_id, channel_id, channel_type, message_seq, status, extra, revoke, revoker,
        content_edit, edited_at, readed_count, version, extra_version, updated_at,
        updated_uid, updated_device, last_op_id, unread_count
    FROM message_ext
    WHERE channel_id = ? AND channel_type = ? AND extra_version > ?
    ORDER BY extra_version ASC LIMIT ?"""
#: Where ``extra`` and ``content_edit`` are in the rows of the sync queries.
_EXTRA_COLUMN, _CONTENT_EDIT_COLUMN = 5, 8
_SYNC_LATEST = """
    SELECT message_id, channel_id, channel_type, message_seq, status, extra, revoke, revoker,
        content_edit, edited_at, readed_count, version, extra_version, updated_at,
        updated_uid, updated_device, last_op_id, unread_count
    FROM message_ext
    WHERE channel_id = ? AND channel_type = ?
    ORDER BY extra_version DESC LIMIT ?"""
_UPSERT_EXT = """
    INSERT INTO message_ext (message_id, channel_id, channel_type, message_seq, status, extra,
        revoke, revoker, content_edit, edited_at, readed_count, version, extra_version,
        updated_at, updated_uid, updated_device, last_op_id, unread_count)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (message_id) DO UPDATE SET
        status = excluded.status, extra = excluded.extra, revoke = excluded.revoke,
        revoker = excluded.revoker, content_edit = excluded.content_edit,
        edited_at = excluded.edited_at, readed_count = excluded.readed_count,
        version = excluded.version, extra_version = excluded.extra_version,
        updated_at = excluded.updated_at, updated_uid = excluded.updated_uid,
        updated_device = excluded.updated_device, last_op_id = excluded.last_op_id,
        unread_count = excluded.unread_count"""
_NEXT_EXTRA_VERSION = """
    INSERT INTO ext_channel_clock (channel_id, channel_type, last_extra_version) VALUES (?, ?, 1)
    ON CONFLICT (channel_id, channel_type) DO UPDATE
    SET last_extra_version = last_extra_version + 1
    RETURNING last_extra_version"""

# Columns in the order _op reads them.
_FIND_OP = """
    SELECT op_id, message_id, action_id, actor_uid, actor_device, operation, patch,
        base_version, status_before, status_after, version_after, result, detail, created_at
    FROM message_ext_ops WHERE message_id = ? AND action_id = ?"""
_GET_OP = """
    SELECT op_id, message_id, action_id, actor_uid, actor_device, operation, patch,
        base_version, status_before, status_after, version_after, result, detail, created_at
    FROM message_ext_ops WHERE op_id = ?"""
_LIST_OPS = """
    SELECT op_id, message_id, action_id, actor_uid, actor_device, operation, patch,
        base_version, status_before, status_after, version_after, result, detail, created_at
    FROM message_ext_ops WHERE message_id = ? AND op_id > ?
    ORDER BY op_id ASC LIMIT ?"""
_INSERT_OP = """
    INSERT INTO message_ext_ops (message_id, action_id, actor_uid, actor_device, operation,
        patch, base_version, status_before, status_after, version_after, result, detail,
        created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    RETURNING op_id"""


_GET_RECORDS = """
    SELECT key, value, version FROM message_ext_records
    WHERE message_id = ? AND key IN (SELECT value FROM json_each(?))"""
_LIST_RECORDS = """
    SELECT key, value, version FROM message_ext_records
    WHERE message_id = ? AND key > ? AND key >= ? AND key < ?
    ORDER BY key LIMIT ?"""
_LIST_ALL_RECORDS = """
    SELECT key, value, version FROM message_ext_records
    WHERE message_id = ? AND key > ? ORDER BY key LIMIT ?"""
_PUT_RECORD = """
    INSERT INTO message_ext_records (message_id, key, value, version) VALUES (?, ?, ?, ?)
    ON CONFLICT (message_id, key) DO UPDATE SET value = excluded.value,
        version = excluded.version"""
_DELETE_RECORD = "DELETE FROM message_ext_records WHERE message_id = ? AND key = ?"

_ADD_CARD_TYPE = """
    INSERT INTO card_types (name, version, spec, created_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (name, version) DO NOTHING"""
_GET_CARD_TYPE = """
    SELECT name, version, spec, created_at FROM card_types WHERE name = ? AND version = ?"""
_LIST_CARD_TYPES = """
    SELECT name, version, spec, created_at FROM card_types ORDER BY name, version"""


def prefix_end(prefix: str) -> str:
    """The least string above every string starting with ``prefix`` (non-empty)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


# --- rows <-> values -----------------------------------------------------------------------


def _mapping(value: object) -> dict[str, Any]:
    """``json.dumps`` hook: any read-only mapping (``MappingProxyType``) is an object."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json(value: object) -> str:
    """Compact JSON text, as stored."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_mapping
    )


def _loads(text: str) -> Any:
    """Stored JSON text (written by :func:`_json`), decoded. msgspec decodes a sync row's
    ``extra`` in ≈ 0.5 µs against ≈ 2.7 for ``json.loads`` (measured in process), to the
    same values; what it refuses and ``json.loads`` takes (``NaN``, ``1e400``, a lone
    surrogate — none of which :func:`_json` writes) still goes through ``json.loads``."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


def _budgeted(
    sql: str, args: tuple[Any, ...], max_bytes: int, conn: sqlite3.Connection
) -> list[Any]:
    """The rows of an extension query, taken one at a time while the ``extra`` and
    ``content_edit`` texts of the rows before sum to less than ``max_bytes`` (0: all)."""
    cursor = conn.execute(sql, args)
    try:
        if max_bytes <= 0:
            return cursor.fetchall()
        out: list[Any] = []
        taken = 0
        while taken < max_bytes and (row := cursor.fetchone()) is not None:
            out.append(row)
            taken += len(row[_EXTRA_COLUMN]) + len(row[_CONTENT_EDIT_COLUMN] or "")
        return out
    finally:
        cursor.close()


def _ext_row(r: Sequence[Any]) -> tuple[ExtState, int]:
    """A ``message_ext`` row: the state and its ``last_op_id``."""
    fields = Fields(
        status=r[4],
        extra=_loads(r[5]),
        revoke=bool(r[6]),
        revoker=r[7],
        content_edit=_loads(r[8]) if r[8] else None,
        edited_at=r[9],
        readed_count=r[10],
        unread_count=r[17],
    )
    state = ExtState(r[0], r[1], r[2], r[3], fields, r[11], r[12], r[13], Actor(r[14], r[15]))
    return state, r[16]


def _op(r: Sequence[Any]) -> OpRecord:
    return OpRecord(
        op_id=r[0],
        message_id=r[1],
        action_id=r[2],
        actor=Actor(r[3], r[4]),
        operation=r[5],
        patch=_loads(r[6]),
        base_version=r[7],
        status_before=r[8],
        status_after=r[9],
        version_after=r[10],
        result=Result(r[11]),
        detail=r[12],
        created_at=r[13],
    )


def _fetch_op(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> OpRecord | None:
    row = conn.execute(sql, args).fetchone()
    return None if row is None else _op(row)


def _fetch_ext(conn: sqlite3.Connection, message_id: int) -> tuple[ExtState, int] | None:
    row = conn.execute(_GET_EXT, (message_id,)).fetchone()
    return None if row is None else _ext_row(row)


def _get_ext(conn: sqlite3.Connection, message_id: int) -> ExtState | None:
    found = _fetch_ext(conn, message_id)
    return None if found is None else found[0]


# --- the update transaction (writer thread) ------------------------------------------------


def _checked(decision: Decision) -> Decision:
    """Refuse a decision the log could not record (a bug in the decide function)."""
    check_record_keys(decision.records)
    if not isinstance(decision.result, Result):
        raise StoreError(f"unknown extension result {decision.result!r}")
    if decision.result is Result.APPLIED and (
        decision.fields is None or decision.updated_at is None
    ):
        raise StoreError("an applied extension decision needs fields and updated_at")
    return decision


def _append_op(
    conn: sqlite3.Connection,
    attempt: ExtAttempt,
    decision: Decision,
    base_version: int,
    statuses: tuple[str, str],
    version_after: int,
) -> OpRecord:
    values = (
        attempt.message_id,
        attempt.action_id,
        attempt.actor.uid,
        attempt.actor.device,
        attempt.operation,
        _json(attempt.patch),
        base_version,
        *statuses,
        version_after,
        decision.result.value,
        decision.log_detail,
        attempt.created_at,
    )
    op_id: int = conn.execute(_INSERT_OP, values).fetchone()[0]
    return _op((op_id, *values))


def _write_ext(
    conn: sqlite3.Connection,
    message: StoredMessage,
    attempt: ExtAttempt,
    decision: Decision,
    version: int,
    op_id: int,
) -> ExtState:
    """Write the applied decision with the channel's next extra_version."""
    fields = decision.fields or Fields()
    channel = (message.channel_id, message.channel_type)
    extra_version: int = conn.execute(_NEXT_EXTRA_VERSION, channel).fetchone()[0]
    edit = "" if fields.content_edit is None else _json(fields.content_edit)
    values = (
        message.message_id,
        *channel,
        message.message_seq,
        fields.status,
        _json(fields.extra),
        int(fields.revoke),
        fields.revoker,
        edit,
        fields.edited_at,
        fields.readed_count,
        version,
        extra_version,
        decision.updated_at,
        attempt.actor.uid,
        attempt.actor.device,
        op_id,
        fields.unread_count,
    )
    conn.execute(_UPSERT_EXT, values)
    return _ext_row(values)[0]


def _read_records(
    conn: sqlite3.Connection, message_id: int, keys: Sequence[str]
) -> dict[str, ExtRecord]:
    if not keys:
        return {}
    found = conn.execute(_GET_RECORDS, (message_id, _json(list(keys)))).fetchall()
    return {r[0]: ExtRecord(message_id, r[0], _loads(r[1]), r[2]) for r in found}


def _write_records(conn: sqlite3.Connection, state: ExtState, decision: Decision) -> None:
    """The applied decision's records, stamped with the change's version."""
    for key, value in decision.records.items():
        if value is None:
            conn.execute(_DELETE_RECORD, (state.message_id, key))
        else:
            conn.execute(_PUT_RECORD, (state.message_id, key, _json(value), state.version))


def _blank(message: StoredMessage) -> ExtState:
    """The state of a message that was never changed."""
    m = message
    return ExtState(m.message_id, m.channel_id, m.channel_type, m.message_seq)


def _update_ext(
    conn: sqlite3.Connection, attempt: ExtAttempt, decide: Mutate, jobs: JobsOf | None
) -> UpdateResult | None:
    found = conn.execute(_GET_LOG_MESSAGE, (attempt.message_id,)).fetchone()
    if found is None:
        return None
    message = StoredMessage(*found)
    row = _fetch_ext(conn, message.message_id)
    state, last_op_id = row if row is not None else (_blank(message), 0)
    original = _fetch_op(conn, _FIND_OP, (message.message_id, attempt.action_id))
    if original is not None:
        return UpdateResult(state, original, True, _last_applied(conn, last_op_id))
    if attempt.reads:
        records = _read_records(conn, message.message_id, attempt.reads)
        decision = _checked(decide(replace(state, records=records)))
    else:
        decision = _checked(decide(state))
    base = state.version if decision.base_version is None else decision.base_version
    applied = decision.result is Result.APPLIED
    after = decision.fields if applied and decision.fields is not None else state.fields
    statuses = (state.status, after.status)
    op = _append_op(conn, attempt, decision, base, statuses, state.version + applied)
    if applied:
        state = _write_ext(conn, message, attempt, decision, state.version + 1, op.op_id)
        _write_records(conn, state, decision)
        result = UpdateResult(state, op, False, op)
        if jobs is not None:
            insert_jobs(conn, checked_jobs(jobs(result)))
        return result
    return UpdateResult(state, op, False, _last_applied(conn, last_op_id))


def _last_applied(conn: sqlite3.Connection, last_op_id: int) -> OpRecord | None:
    return _fetch_op(conn, _GET_OP, (last_op_id,)) if last_op_id else None


def _get_exts(conn: sqlite3.Connection, ids: list[int]) -> dict[int, ExtState]:
    out: dict[int, ExtState] = {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = _json(ids[start : start + _IDS_PER_QUERY])
        for r in conn.execute(_GET_EXTS, (chunk,)):
            out[r[0]] = _ext_row(r)[0]
    return out


# --- the mixin -----------------------------------------------------------------------------


class SqliteExtMethods:
    """Extension methods of the SQLite store (see :class:`magpie.store.interface.Store`)."""

    __slots__ = ()

    async def _write(self, what: str, job: _Job[T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _read(self, what: str, job: _Job[T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def update_ext(
        self, attempt: ExtAttempt, decide: Mutate, jobs: JobsOf | None = None
    ) -> UpdateResult | None:
        """Decide and record one change in one transaction (see the interface)."""
        check_reads(attempt.reads)
        job = partial(_update_ext, attempt=attempt, decide=decide, jobs=jobs)
        return await self._write("update_ext", job)

    async def get_ext(self, message_id: int) -> ExtState | None:
        """The extension of one message, if it was ever changed."""
        return await self._read("get_ext", partial(_get_ext, message_id=message_id))

    async def get_exts(self, message_ids: Sequence[int]) -> dict[int, ExtState]:
        """The extensions of those of ``message_ids`` that have one."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return {}
        return await self._read("get_exts", partial(_get_exts, ids=ids))

    async def sync_ext(
        self,
        channel_id: str,
        channel_type: int,
        after_extra_version: int,
        limit: int,
        max_bytes: int = 0,
    ) -> list[ExtState]:
        """Rows changed after the cursor, ascending (cursor 0: the newest ``limit``), within
        ``max_bytes`` of ``extra``/``content_edit`` text (rows read one at a time)."""
        if limit <= 0:
            return []
        if after_extra_version > 0:
            args: tuple[Any, ...] = (channel_id, channel_type, after_extra_version, limit)
            rows = await self._read("sync_ext", partial(_budgeted, _SYNC_AFTER, args, max_bytes))
        else:
            args = (channel_id, channel_type, limit)
            rows = await self._read("sync_ext", partial(_budgeted, _SYNC_LATEST, args, max_bytes))
            rows.reverse()
        return [_ext_row(r)[0] for r in rows]

    async def list_ops(self, message_id: int, after_op_id: int, limit: int) -> list[OpRecord]:
        """Operation-log rows of a message after ``after_op_id``, ascending."""
        if limit <= 0:
            return []
        args = (message_id, after_op_id, limit)
        rows = await self._read("list_ops", lambda c: c.execute(_LIST_OPS, args).fetchall())
        return [_op(r) for r in rows]

    # records ------------------------------------------------------------------------------

    async def get_records(self, message_id: int, keys: Sequence[str]) -> dict[str, ExtRecord]:
        """The message's records of ``keys`` that exist, by key."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        return await self._read("get_records", partial(_read_records, message_id=message_id,
                                                         keys=wanted))  # fmt: skip

    async def list_records(
        self, message_id: int, prefix: str, after_key: str, limit: int
    ) -> list[ExtRecord]:
        """The message's records whose key starts with ``prefix`` and is above
        ``after_key``, ascending by key, at most ``limit``."""
        if limit <= 0:
            return []
        args: tuple[Any, ...]
        if prefix:
            sql, args = _LIST_RECORDS, (message_id, after_key, prefix, prefix_end(prefix), limit)
        else:
            sql, args = _LIST_ALL_RECORDS, (message_id, after_key, limit)
        found = await self._read("list_records", lambda c: c.execute(sql, args).fetchall())
        return [ExtRecord(message_id, r[0], _loads(r[1]), r[2]) for r in found]

    # card types ---------------------------------------------------------------------------

    async def add_card_type(self, row: CardTypeRow) -> CardTypeRow:
        """Store ``row`` unless its ``(name, version)`` exists; the stored row either way."""

        def job(conn: sqlite3.Connection) -> CardTypeRow:
            args = (row.name, row.version, _json(row.spec), row.created_at)
            conn.execute(_ADD_CARD_TYPE, args)
            found = conn.execute(_GET_CARD_TYPE, (row.name, row.version)).fetchone()
            return _card_type(found)

        return await self._write("add_card_type", job)

    async def get_card_type(self, name: str, version: int) -> CardTypeRow | None:
        """The registered card type ``name@version``, if any."""
        args = (name, version)
        found = await self._read(
            "get_card_type", lambda c: c.execute(_GET_CARD_TYPE, args).fetchone()
        )
        return None if found is None else _card_type(found)

    async def list_card_types(self) -> list[CardTypeRow]:
        """Every registered card type, by name and version."""
        found = await self._read(
            "list_card_types", lambda c: c.execute(_LIST_CARD_TYPES).fetchall()
        )
        return [_card_type(r) for r in found]


def _card_type(r: Sequence[Any]) -> CardTypeRow:
    return CardTypeRow(r[0], r[1], json.loads(r[2]), r[3])

"""The message-extension methods of :class:`magpie.store.postgres.PostgresStore` (I6).

:meth:`PgExtMethods.update_ext` is one transaction on one pooled connection:

1. lock the message row (``SELECT … FOR NO KEY UPDATE``; that lock mode leaves the foreign
   keys of other rows pointing at the message unblocked), so every change of one message —
   from any node — waits for the previous one to commit;
2. read, in a *new* statement (which sees what the previous holder committed), the
   extension row, the op-log row of this ``action_id`` (a repeat returns it unchanged) and
   the op named by the row's ``last_op_id``;
3. ``decide`` in Python, inside the transaction (it is pure, so a run aborted by a deadlock is
   simply run again);
4. one statement writes the op-log row and, when applied, the channel's next
   ``extra_version`` (its ``ext_channel_clock`` row locked until commit, so the values are
   strictly increasing in commit order) and the extension row;
5. an applied change's jobs (its webhook events) are inserted by one more statement.

Tables (``postgres_migrations/0002_extensions.sql``): ``message_ext``, ``ext_channel_clock``,
``message_ext_ops`` (unique on ``(message_id, action_id)``), JSON in ``jsonb``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from magpie.domain.ext import (
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
from magpie.store import _pg_rows as rows
from magpie.store._pg_jobs import INSERT_JOBS, jobs_args
from magpie.store._pg_rows import EXT_COLUMNS, MESSAGE_COLUMNS, OP_COLUMNS
from magpie.store.interface import CardTypeRow, JobsOf, StoredMessage
from magpie.store.records import check_reads, check_record_keys

if TYPE_CHECKING:
    from magpie.store._pg_setup import Conn

__all__ = ["PgExtMethods"]

T = TypeVar("T")


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c}" for c in columns.split(", "))


# --- SQL -----------------------------------------------------------------------------------

# Only channel-log messages (message_seq > 0) carry extensions.
_LOCK_LOG_MESSAGE = f"""
    SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = $1 AND message_seq > 0
    FOR NO KEY UPDATE"""  # noqa: S608
# Columns: the extension row (EXT_COLUMN_COUNT), this action's op (14), the last applied op.
_READ_STATE = f"""
    SELECT {_prefixed("e", EXT_COLUMNS)}, {_prefixed("o", OP_COLUMNS)},
        {_prefixed("l", OP_COLUMNS)}
    FROM (SELECT $1::bigint AS message_id) AS m
    LEFT JOIN message_ext AS e ON e.message_id = m.message_id
    LEFT JOIN message_ext_ops AS o ON o.message_id = m.message_id AND o.action_id = $2
    LEFT JOIN message_ext_ops AS l ON l.op_id = e.last_op_id"""  # noqa: S608
_INSERT_OP = """
    INSERT INTO message_ext_ops (message_id, action_id, actor_uid, actor_device, operation,
        patch, base_version, status_before, status_after, version_after, result, detail,
        created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"""
_RECORD_REJECTED = _INSERT_OP + " RETURNING op_id"
_OP_COUNT = len(OP_COLUMNS.split(", "))
# $14..$16: the message's channel and seq; $17..$23: the fields (rows.ext_field_args);
# $24: the new version; $25: updated_at; $26: unread_count.
_RECORD_APPLIED = f"""
    WITH op AS ({_INSERT_OP} RETURNING op_id
    ), clock AS (
        INSERT INTO ext_channel_clock (channel_id, channel_type, last_extra_version)
        VALUES ($14, $15, 1)
        ON CONFLICT (channel_id, channel_type) DO UPDATE
        SET last_extra_version = ext_channel_clock.last_extra_version + 1
        RETURNING last_extra_version
    ), ext AS (
        INSERT INTO message_ext ({EXT_COLUMNS})
        SELECT $1, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,
            clock.last_extra_version, $25, $3, $4, op.op_id, $26
        FROM op, clock
        ON CONFLICT (message_id) DO UPDATE SET
            status = excluded.status, extra = excluded.extra, revoke = excluded.revoke,
            revoker = excluded.revoker, content_edit = excluded.content_edit,
            edited_at = excluded.edited_at, readed_count = excluded.readed_count,
            version = excluded.version, extra_version = excluded.extra_version,
            updated_at = excluded.updated_at, updated_uid = excluded.updated_uid,
            updated_device = excluded.updated_device, last_op_id = excluded.last_op_id,
            unread_count = excluded.unread_count
        RETURNING extra_version, last_op_id
    )
    SELECT last_op_id, extra_version FROM ext"""  # noqa: S608

_GET_RECORDS = """
    SELECT key, value, version FROM message_ext_records
    WHERE message_id = $1 AND key = ANY($2::text[])"""
_LIST_RECORDS = """
    SELECT key, value, version FROM message_ext_records
    WHERE message_id = $1 AND key > $2 AND key >= $3 AND key < $4
    ORDER BY key LIMIT $5"""
_LIST_ALL_RECORDS = """
    SELECT key, value, version FROM message_ext_records
    WHERE message_id = $1 AND key > $2 ORDER BY key LIMIT $3"""
# $3: the values (NULL deletes), parallel to the keys $2.
_WRITE_RECORDS = """
    WITH w AS (
        SELECT * FROM unnest($2::text[], $3::jsonb[]) AS t(key, value)
    ), gone AS (
        DELETE FROM message_ext_records AS r USING w
        WHERE r.message_id = $1 AND r.key = w.key AND w.value IS NULL
    )
    INSERT INTO message_ext_records (message_id, key, value, version)
    SELECT $1, key, value, $4 FROM w WHERE value IS NOT NULL
    ON CONFLICT (message_id, key) DO UPDATE SET value = excluded.value,
        version = excluded.version"""
_ADD_CARD_TYPE = """
    WITH added AS (
        INSERT INTO card_types (name, version, spec, created_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (name, version) DO NOTHING
        RETURNING name, version, spec, created_at
    )
    SELECT * FROM added
    UNION ALL
    SELECT name, version, spec, created_at FROM card_types WHERE name = $1 AND version = $2
    LIMIT 1"""
_GET_CARD_TYPE = """
    SELECT name, version, spec, created_at FROM card_types WHERE name = $1 AND version = $2"""
_LIST_CARD_TYPES = """
    SELECT name, version, spec, created_at FROM card_types ORDER BY name, version"""

_GET_EXT = f"SELECT {EXT_COLUMNS} FROM message_ext WHERE message_id = $1"  # noqa: S608
_GET_EXTS = f"SELECT {EXT_COLUMNS} FROM message_ext WHERE message_id = ANY($1::bigint[])"  # noqa: S608
_NO_BUDGET = 2**62  # "no byte budget" in the sync queries
_E_COLUMNS = ", ".join("e." + c for c in EXT_COLUMNS.split(", "))


def _sync_within_budget(order: str) -> str:
    """Extension rows of a channel after ``$3`` (the newest first when ``order`` is DESC),
    at most ``$4``, whose preceding rows' ``extra``/``content_edit`` text sums to less than
    ``$5`` bytes."""
    return f"""
    WITH page AS (
        SELECT message_id, extra_version,
            octet_length(extra::text) + COALESCE(octet_length(content_edit::text), 0) AS size
        FROM message_ext
        WHERE channel_id = $1 AND channel_type = $2 AND extra_version > $3
        ORDER BY extra_version {order} LIMIT $4
    ),
    kept AS (
        SELECT message_id FROM (
            SELECT message_id,
                SUM(size) OVER (ORDER BY extra_version {order} ROWS UNBOUNDED PRECEDING)
                    - size AS before
            FROM page
        ) AS running
        WHERE before < $5
    )
    SELECT {_E_COLUMNS} FROM kept JOIN message_ext AS e ON e.message_id = kept.message_id
    ORDER BY e.extra_version {order}"""  # noqa: S608


_SYNC_AFTER = _sync_within_budget("ASC")
_SYNC_LATEST = _sync_within_budget("DESC")
_LIST_OPS = f"""
    SELECT {OP_COLUMNS} FROM message_ext_ops WHERE message_id = $1 AND op_id > $2
    ORDER BY op_id ASC LIMIT $3"""  # noqa: S608


# --- the update transaction ----------------------------------------------------------------


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


def _op_args(
    attempt: ExtAttempt,
    decision: Decision,
    base_version: int,
    statuses: tuple[str, str],
    version_after: int,
) -> tuple[Any, ...]:
    """The parameters ``$1..$13`` of an op-log insert (``OP_COLUMNS`` less ``op_id``)."""
    return (
        attempt.message_id,
        attempt.action_id,
        attempt.actor.uid,
        attempt.actor.device,
        attempt.operation,
        attempt.patch,
        base_version,
        *statuses,
        version_after,
        decision.result.value,
        decision.log_detail,
        attempt.created_at,
    )


def _blank(message: StoredMessage) -> ExtState:
    """The state of a message that was never changed."""
    m = message
    return ExtState(m.message_id, m.channel_id, m.channel_type, m.message_seq)


async def _update_ext(
    conn: Conn, attempt: ExtAttempt, decide: Mutate, jobs: JobsOf | None
) -> UpdateResult | None:
    found = await conn.fetchrow(_LOCK_LOG_MESSAGE, attempt.message_id)
    if found is None:
        return None
    message = rows.stored_message(found)
    read = await conn.fetchrow(_READ_STATE, message.message_id, attempt.action_id)
    if read is None:  # unreachable: the outer join always yields one row
        raise StoreError("the extension state could not be read")
    row = rows.ext_row(read)
    state = row[0] if row is not None else _blank(message)
    ops_at = rows.EXT_COLUMN_COUNT
    original, last = rows.ext_op(read, ops_at), rows.ext_op(read, ops_at + _OP_COUNT)
    if original is not None:
        return UpdateResult(state, original, True, last)
    if attempt.reads:
        found_records = await conn.fetch(_GET_RECORDS, message.message_id, list(attempt.reads))
        records = {r[0]: ExtRecord(message.message_id, r[0], r[1], r[2]) for r in found_records}
        decision = _checked(decide(replace(state, records=records)))
    else:
        decision = _checked(decide(state))
    base = state.version if decision.base_version is None else decision.base_version
    if decision.result is not Result.APPLIED or decision.fields is None:
        args = _op_args(attempt, decision, base, (state.status, state.status), state.version)
        op_id = await conn.fetchval(_RECORD_REJECTED, *args)
        return UpdateResult(state, rows.op_record(op_id, args), False, last)
    result = await _apply(conn, state, attempt, decision, base)
    if decision.records:
        keys, values = list(decision.records), list(decision.records.values())
        await conn.execute(_WRITE_RECORDS, message.message_id, keys, values, result.state.version)
    if jobs is not None and (new_jobs := jobs(result)):
        await conn.execute(INSERT_JOBS, *jobs_args(new_jobs))
    return result


async def _apply(
    conn: Conn, state: ExtState, attempt: ExtAttempt, decision: Decision, base: int
) -> UpdateResult:
    fields = decision.fields or Fields()
    updated_at = decision.updated_at or 0
    version = state.version + 1
    op_args = _op_args(attempt, decision, base, (state.status, fields.status), version)
    place = (state.channel_id, state.channel_type, state.message_seq)
    args = (*op_args, *place, *rows.ext_field_args(fields), version, updated_at)
    args = (*args, fields.unread_count)
    written = await conn.fetchrow(_RECORD_APPLIED, *args)
    if written is None:  # unreachable: the statement writes one row
        raise StoreError("the extension row was not written")
    op = rows.op_record(written[0], op_args)
    new = ExtState(state.message_id, *place, fields, version, written[1], updated_at, attempt.actor)
    return UpdateResult(new, op, False, op)


# --- the mixin -----------------------------------------------------------------------------


class PgExtMethods:
    """Extension methods of the PostgreSQL store (see :class:`magpie.store.interface.Store`)."""

    __slots__ = ()

    async def _transaction(self, what: str, body: Callable[[Conn], Awaitable[T]]) -> T:
        raise NotImplementedError  # provided by PostgresStore

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        raise NotImplementedError  # provided by PostgresStore

    async def _fetchrow(self, what: str, sql: str, *args: Any) -> asyncpg.Record | None:
        raise NotImplementedError  # provided by PostgresStore

    async def update_ext(
        self, attempt: ExtAttempt, decide: Mutate, jobs: JobsOf | None = None
    ) -> UpdateResult | None:
        """Decide and record one change in one transaction (see the interface)."""
        check_reads(attempt.reads)
        return await self._transaction(
            "update_ext", lambda conn: _update_ext(conn, attempt, decide, jobs)
        )

    async def get_ext(self, message_id: int) -> ExtState | None:
        """The extension of one message, if it was ever changed."""
        found = await self._fetchrow("get_ext", _GET_EXT, message_id)
        return None if found is None else rows.ext_state(found)

    async def get_exts(self, message_ids: Sequence[int]) -> dict[int, ExtState]:
        """The extensions of those of ``message_ids`` that have one."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return {}
        found = await self._fetch("get_exts", _GET_EXTS, ids)
        return {r[0]: rows.ext_state(r) for r in found}

    async def sync_ext(
        self,
        channel_id: str,
        channel_type: int,
        after_extra_version: int,
        limit: int,
        max_bytes: int = 0,
    ) -> list[ExtState]:
        """Rows changed after the cursor, ascending (cursor 0: the newest ``limit``), within
        ``max_bytes`` of ``extra``/``content_edit`` JSON text (summed by the server over the
        page; only the kept rows are sent)."""
        if limit <= 0:
            return []
        budget = max_bytes if max_bytes > 0 else _NO_BUDGET
        if after_extra_version > 0:
            args = (channel_id, channel_type, after_extra_version, limit, budget)
            found = await self._fetch("sync_ext", _SYNC_AFTER, *args)
        else:
            args = (channel_id, channel_type, 0, limit, budget)
            found = (await self._fetch("sync_ext", _SYNC_LATEST, *args))[::-1]
        return [rows.ext_state(r) for r in found]

    async def list_ops(self, message_id: int, after_op_id: int, limit: int) -> list[OpRecord]:
        """Operation-log rows of a message after ``after_op_id``, ascending."""
        if limit <= 0:
            return []
        found = await self._fetch("list_ops", _LIST_OPS, message_id, after_op_id, limit)
        return [op for r in found if (op := rows.ext_op(r)) is not None]

    # records ------------------------------------------------------------------------------

    async def get_records(self, message_id: int, keys: Sequence[str]) -> dict[str, ExtRecord]:
        """The message's records of ``keys`` that exist, by key."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        found = await self._fetch("get_records", _GET_RECORDS, message_id, wanted)
        return {r[0]: ExtRecord(message_id, r[0], r[1], r[2]) for r in found}

    async def list_records(
        self, message_id: int, prefix: str, after_key: str, limit: int
    ) -> list[ExtRecord]:
        """The message's records whose key starts with ``prefix`` and is above
        ``after_key``, ascending by key (bytewise: the "C" collation), at most ``limit``."""
        if limit <= 0:
            return []
        if prefix:
            end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            args: tuple[Any, ...] = (message_id, after_key, prefix, end, limit)
            found = await self._fetch("list_records", _LIST_RECORDS, *args)
        else:
            found = await self._fetch(
                "list_records", _LIST_ALL_RECORDS, message_id, after_key, limit
            )
        return [ExtRecord(message_id, r[0], r[1], r[2]) for r in found]

    # card types ---------------------------------------------------------------------------

    async def add_card_type(self, row: CardTypeRow) -> CardTypeRow:
        """Store ``row`` unless its ``(name, version)`` exists; the stored row either way."""
        args = (row.name, row.version, row.spec, row.created_at)
        found = await self._fetchrow("add_card_type", _ADD_CARD_TYPE, *args)
        if found is None:  # another node's insert committed after this statement's snapshot
            found = await self._fetchrow("add_card_type", _GET_CARD_TYPE, row.name, row.version)
        if found is None:
            raise StoreError("the card type was not stored")
        return CardTypeRow(found[0], found[1], found[2], found[3])

    async def get_card_type(self, name: str, version: int) -> CardTypeRow | None:
        """The registered card type ``name@version``, if any."""
        found = await self._fetchrow("get_card_type", _GET_CARD_TYPE, name, version)
        return None if found is None else CardTypeRow(found[0], found[1], found[2], found[3])

    async def list_card_types(self) -> list[CardTypeRow]:
        """Every registered card type, by name and version."""
        found = await self._fetch("list_card_types", _LIST_CARD_TYPES)
        return [CardTypeRow(r[0], r[1], r[2], r[3]) for r in found]

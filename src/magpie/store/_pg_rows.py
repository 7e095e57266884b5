"""PostgreSQL rows <-> the store interface's types: the one place that knows both.

Every ``SELECT`` of :mod:`magpie.store.postgres` and :mod:`magpie.store._pg_ext` names its
columns with the lists below, so a record converts by position; when a row type of
:mod:`magpie.store.interface` changes, this module and the column lists change together.
JSON columns are ``jsonb``; :func:`register_json` makes asyncpg encode and decode them with
the standard library (compact, non-ASCII kept, read-only mappings allowed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from magpie.domain.ext import Actor, ExtState, Fields, OpRecord, Result
from magpie.domain.jobs import Job
from magpie.store.interface import (
    ChannelInfo,
    ConversationRow,
    NewMessage,
    QueueEntry,
    StoredMessage,
    TokenRow,
)

__all__ = [
    "CONVERSATION_COLUMNS",
    "EXT_COLUMNS",
    "JOB_COLUMNS",
    "MESSAGE_COLUMNS",
    "OP_COLUMNS",
    "TOKEN_COLUMNS",
    "channel_info",
    "conversation_row",
    "ext_field_args",
    "ext_op",
    "ext_row",
    "ext_state",
    "job",
    "json_text",
    "message_args",
    "op_record",
    "queue_entry",
    "register_json",
    "stored_message",
    "token_row",
]

#: In :class:`StoredMessage` field order.
MESSAGE_COLUMNS = (
    "message_id, message_seq, client_msg_no, from_uid, channel_id, channel_type, timestamp, "
    "payload, flags, setting, topic, expire"
)
#: In :class:`TokenRow` field order.
TOKEN_COLUMNS = "uid, device_flag, token_hash, device_level"  # noqa: S105 (column names)
#: In :class:`ConversationRow` field order.
CONVERSATION_COLUMNS = (
    "uid, channel_id, channel_type, unread, last_msg_seq, last_client_msg_no, "
    "readed_to_msg_seq, timestamp, version"
)
#: In the order :func:`ext_row` reads them.
EXT_COLUMNS = (
    "message_id, channel_id, channel_type, message_seq, status, extra, revoke, revoker, "
    "content_edit, edited_at, readed_count, version, extra_version, updated_at, updated_uid, "
    "updated_device, last_op_id, unread_count"
)
#: How many columns ``EXT_COLUMNS`` has.
EXT_COLUMN_COUNT = len(EXT_COLUMNS.split(", "))
#: In :class:`ExtOp` field order.
OP_COLUMNS = (
    "op_id, message_id, action_id, actor_uid, actor_device, operation, patch, base_version, "
    "status_before, status_after, version_after, result, detail, created_at"
)

#: In :class:`~magpie.domain.jobs.Job` field order.
JOB_COLUMNS = (
    "job_id, kind, job_key, payload, due_at_ms, attempts, claimed_by, batch, dead, "
    "last_error, created_at_ms"
)


def _mapping(value: object) -> dict[str, Any]:
    """``json.dumps`` hook: any read-only mapping (``MappingProxyType``) is an object."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_text(value: object) -> str:
    """Compact JSON text, as sent to a ``jsonb`` parameter."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_mapping
    )


async def register_json(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Connection setup: ``jsonb`` values cross as Python objects."""
    await conn.set_type_codec(
        "jsonb", encoder=json_text, decoder=json.loads, schema="pg_catalog", format="text"
    )


def stored_message(r: asyncpg.Record, start: int = 0) -> StoredMessage:
    """A message from ``MESSAGE_COLUMNS`` beginning at column ``start``."""
    return StoredMessage(*r[start : start + 12])


def token_row(r: asyncpg.Record) -> TokenRow:
    """A token from ``TOKEN_COLUMNS``."""
    return TokenRow(r[0], r[1], bytes(r[2]), r[3])


def channel_info(r: asyncpg.Record) -> ChannelInfo:
    """A channel from ``channel_id, channel_type, large, ban``."""
    return ChannelInfo(r[0], r[1], r[2], r[3])


def conversation_row(r: asyncpg.Record) -> ConversationRow:
    """A conversation from ``CONVERSATION_COLUMNS``."""
    return ConversationRow(*r)


def queue_entry(r: asyncpg.Record) -> QueueEntry:
    """A queue entry from ``uid, queue_seq`` followed by ``MESSAGE_COLUMNS``."""
    return QueueEntry(r[0], r[1], stored_message(r, 2))


def ext_row(record: asyncpg.Record, start: int = 0) -> tuple[ExtState, int] | None:
    """An extension state and its ``last_op_id`` from ``EXT_COLUMNS`` beginning at column
    ``start`` (``None`` when they are the NULLs of an outer join that found no row)."""
    r = record[start : start + EXT_COLUMN_COUNT]
    if r[0] is None:
        return None
    fields = Fields(
        status=r[4],
        extra=r[5],
        revoke=r[6],
        revoker=r[7],
        content_edit=r[8],
        edited_at=r[9],
        readed_count=r[10],
        unread_count=r[17],
    )
    state = ExtState(r[0], r[1], r[2], r[3], fields, r[11], r[12], r[13], Actor(r[14], r[15]))
    return state, r[16]


def ext_state(record: asyncpg.Record) -> ExtState:
    """The extension state of a ``SELECT EXT_COLUMNS`` row."""
    found = ext_row(record)
    if found is None:
        raise ValueError("not an extension row")
    return found[0]


def ext_op(record: asyncpg.Record, start: int = 0) -> OpRecord | None:
    """An operation-log row from ``OP_COLUMNS`` beginning at column ``start`` (``None`` for
    the NULLs of an outer join)."""
    r = record[start : start + 14]
    if r[0] is None:
        return None
    return op_record(r[0], r[1:])


def op_record(op_id: int, v: tuple[Any, ...]) -> OpRecord:
    """An operation-log row from its id and ``op_args`` (``OP_COLUMNS`` less ``op_id``)."""
    return OpRecord(
        op_id=op_id,
        message_id=v[0],
        action_id=v[1],
        actor=Actor(v[2], v[3]),
        operation=v[4],
        patch=v[5],
        base_version=v[6],
        status_before=v[7],
        status_after=v[8],
        version_after=v[9],
        result=Result(v[10]),
        detail=v[11],
        created_at=v[12],
    )


def job(r: asyncpg.Record) -> Job:
    """A job from ``JOB_COLUMNS``."""
    return Job(*r)


def message_args(m: NewMessage) -> tuple[Any, ...]:
    """The parameters ``$1..$11`` of a message insert, in ``MESSAGE_COLUMNS`` order less
    ``message_seq`` (which the statement allocates)."""
    return (
        m.message_id,
        m.client_msg_no,
        m.from_uid,
        m.channel_id,
        m.channel_type,
        m.timestamp,
        m.payload,
        m.flags,
        m.setting,
        m.topic,
        m.expire,
    )


def ext_field_args(f: Fields) -> tuple[Any, ...]:
    """``status, extra, revoke, revoker, content_edit, edited_at, readed_count`` of a row."""
    return (f.status, f.extra, f.revoke, f.revoker, f.content_edit, f.edited_at, f.readed_count)

"""The conversation-feature methods of :class:`magpie.store.sqlite.SqliteStore`: member roles
(and, as they land, reactions, reminders, read state, files and search).

A mixin like :mod:`magpie.store._sqlite_ext`: it needs only the store's ``_write`` (one
``BEGIN IMMEDIATE`` transaction on the single writer thread) and ``_read`` (one pooled
read-only connection).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from magpie.domain.members import Member

__all__ = ["SqliteConvMethods"]

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


# --- transaction bodies --------------------------------------------------------------------


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

"""The conversation-feature methods of :class:`magpie.store.postgres.PostgresStore`: member
roles (and, as they land, reactions, reminders, read state, files and search).

A mixin like :mod:`magpie.store._pg_ext`; each write is one transaction on a pooled
connection (re-run after a deadlock or serialization failure by the store's plumbing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from magpie.domain.members import Member

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

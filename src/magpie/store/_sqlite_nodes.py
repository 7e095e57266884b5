"""Node id leases of :class:`magpie.store.sqlite.SqliteStore` (``magpie.domain.nodes``).

A mixin, like the job methods. A claim is a read-then-write on the single writer thread, so
two claims never get one id. Times are this machine's wall clock (every process using the
file runs here; ``magpie serve`` holds a lock on it, so there is one at a time).

Table: ``migrations/0012_nodes.sql``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from magpie.domain.nodes import MAX_NODE_ID, NodeClaim, NodeRow

__all__ = ["SqliteNodeMethods"]

T = TypeVar("T")
_Job = Callable[[sqlite3.Connection], T]

_COLUMNS = "node_id, instance, expires_at_ms, started_at_ms, ws_url, tcp_addr"
_UPSERT = """
    INSERT INTO nodes (node_id, instance, expires_at_ms, started_at_ms) VALUES (?, ?, ?, ?)
    ON CONFLICT (node_id) DO UPDATE SET instance = excluded.instance,
        expires_at_ms = excluded.expires_at_ms, started_at_ms = excluded.started_at_ms,
        ws_url = '', tcp_addr = ''"""
_RENEW = """
    UPDATE nodes SET expires_at_ms = ?, ws_url = ?, tcp_addr = ?
    WHERE node_id = ? AND instance = ?"""
_RELEASE = "DELETE FROM nodes WHERE node_id = ? AND instance = ?"
_LIVE = f"SELECT {_COLUMNS} FROM nodes WHERE expires_at_ms > ? ORDER BY node_id"  # noqa: S608


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _pick(taken: dict[int, int], wanted: int | None, now_ms: int) -> int | None:
    """The id to claim: ``wanted`` if free; else never-used ids first (highest first), then
    the longest expired; ``None`` when none is free."""
    if wanted is not None:
        expires = taken.get(wanted)
        return wanted if expires is None or expires <= now_ms else None
    for node_id in range(MAX_NODE_ID, -1, -1):
        if node_id not in taken:
            return node_id
    expired = [(expires, -node_id) for node_id, expires in taken.items() if expires <= now_ms]
    return -min(expired)[1] if expired else None


def _claim(conn: sqlite3.Connection, claim: NodeClaim) -> NodeRow | None:
    now = _now_ms()
    taken = dict(conn.execute("SELECT node_id, expires_at_ms FROM nodes").fetchall())
    node_id = _pick(taken, claim.node_id, now)
    if node_id is None:
        return None
    conn.execute(_UPSERT, (node_id, claim.instance, now + claim.lease_ms, now))
    return NodeRow(node_id, claim.instance, now + claim.lease_ms, now, "", "")


class SqliteNodeMethods:
    """Node lease methods of the SQLite store (see the store interface)."""

    __slots__ = ()

    async def _write(self, what: str, job: _Job[T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _read(self, what: str, job: _Job[T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def claim_node(self, claim: NodeClaim) -> NodeRow | None:
        """Lease ``claim.node_id`` or any free id (see the store interface)."""
        return await self._write("claim_node", partial(_claim, claim=claim))

    async def renew_node(
        self, node_id: int, instance: str, lease_ms: int, ws_url: str, tcp_addr: str
    ) -> bool:
        """Extend ``instance``'s lease; false when the id is not its own any more."""
        args = (_now_ms() + lease_ms, ws_url, tcp_addr, node_id, instance)
        changed: int = await self._write("renew_node", lambda c: c.execute(_RENEW, args).rowcount)
        return changed == 1

    async def release_node(self, node_id: int, instance: str) -> bool:
        """Delete ``instance``'s lease of ``node_id``."""
        args = (node_id, instance)
        changed: int = await self._write(
            "release_node", lambda c: c.execute(_RELEASE, args).rowcount
        )
        return changed == 1

    async def live_nodes(self) -> list[NodeRow]:
        """The leases that have not run out."""
        now = _now_ms()
        found: list[Any] = await self._read(
            "live_nodes", lambda c: c.execute(_LIVE, (now,)).fetchall()
        )
        return [NodeRow(*r) for r in found]

"""Node id leases of :class:`magpie.store.postgres.PostgresStore` (``magpie.domain.nodes``).

A mixin, like the job methods. Expiry times come from the database server's clock
(``clock_timestamp()``), so nodes whose clocks disagree still agree on whether a lease ran
out. A claim picks its id and writes its row in one statement; the ``ON CONFLICT`` update
re-checks the latest version of a taken row (``expires_at_ms`` passed), so a holder's
renewal that commits first wins, and two claims of one id never both succeed.

Table: ``postgres_migrations/0012_nodes.sql``.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from magpie.domain.nodes import MAX_NODE_ID, NodeClaim, NodeRow

__all__ = ["PgNodeMethods"]

_NOW = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
_COLUMNS = "node_id, instance, expires_at_ms, started_at_ms, ws_url, tcp_addr"
# Never-used ids first (highest first, away from the small ids operators name), then the
# longest expired.
_CLAIM = f"""
    WITH now AS (SELECT {_NOW} AS ms),
    pick AS (
        SELECT g.id FROM generate_series(0, {MAX_NODE_ID}) AS g(id)
        CROSS JOIN now
        LEFT JOIN nodes n ON n.node_id = g.id
        WHERE (n.node_id IS NULL OR n.expires_at_ms <= now.ms)
          AND ($1::int IS NULL OR g.id = $1::int)
        ORDER BY (n.node_id IS NOT NULL), n.expires_at_ms, g.id DESC
        LIMIT 1
    )
    INSERT INTO nodes AS n (node_id, instance, expires_at_ms, started_at_ms)
    SELECT pick.id, $2, now.ms + $3, now.ms FROM pick, now
    ON CONFLICT (node_id) DO UPDATE SET instance = excluded.instance,
        expires_at_ms = excluded.expires_at_ms, started_at_ms = excluded.started_at_ms,
        ws_url = '', tcp_addr = ''
    WHERE n.expires_at_ms <= {_NOW}
    RETURNING {_COLUMNS}"""  # noqa: S608 (constants)
_RENEW = f"""
    UPDATE nodes SET expires_at_ms = {_NOW} + $3, ws_url = $4, tcp_addr = $5
    WHERE node_id = $1 AND instance = $2"""  # noqa: S608
_RELEASE = "DELETE FROM nodes WHERE node_id = $1 AND instance = $2"
_LIVE = f"SELECT {_COLUMNS} FROM nodes WHERE expires_at_ms > {_NOW} ORDER BY node_id"  # noqa: S608
#: Claims racing for the same free id: the loser's statement finds the row taken and
#: returns nothing; it picks again (another id) this many times.
_CLAIM_RUNS = 5


def _row(r: asyncpg.Record) -> NodeRow:
    return NodeRow(r[0], r[1], r[2], r[3], r[4], r[5])


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


class PgNodeMethods:
    """Node lease methods of the PostgreSQL store (see the store interface)."""

    __slots__ = ()

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        raise NotImplementedError  # provided by PostgresStore

    async def _fetchrow(self, what: str, sql: str, *args: Any) -> asyncpg.Record | None:
        raise NotImplementedError  # provided by PostgresStore

    async def _execute(self, what: str, sql: str, *args: Any) -> str:
        raise NotImplementedError  # provided by PostgresStore

    async def claim_node(self, claim: NodeClaim) -> NodeRow | None:
        """Lease ``claim.node_id`` or any free id (see the store interface)."""
        runs = 1 if claim.node_id is not None else _CLAIM_RUNS
        for _ in range(runs):
            args = (claim.node_id, claim.instance, claim.lease_ms)
            found = await self._fetchrow("claim_node", _CLAIM, *args)
            if found is not None:
                return _row(found)
        return None

    async def renew_node(
        self, node_id: int, instance: str, lease_ms: int, ws_url: str, tcp_addr: str
    ) -> bool:
        """Extend ``instance``'s lease; false when the id is not its own any more."""
        args = (node_id, instance, lease_ms, ws_url, tcp_addr)
        return _count(await self._execute("renew_node", _RENEW, *args)) == 1

    async def release_node(self, node_id: int, instance: str) -> bool:
        """Delete ``instance``'s lease of ``node_id``."""
        return _count(await self._execute("release_node", _RELEASE, node_id, instance)) == 1

    async def live_nodes(self) -> list[NodeRow]:
        """The leases that have not run out."""
        return [_row(r) for r in await self._fetch("live_nodes", _LIVE)]

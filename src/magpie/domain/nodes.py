"""Node ids: which running node holds which snowflake node id, and where clients reach it.

A node id (0–1023, the 10 node bits of every message id) is *leased* from the store, the one
authority every node of a cluster shares: a node claims a row at start (the id it was given,
``node_id``, or any free one), renews it every third of the lease (``node_lease``) and deletes
it when it stops. A row whose lease has run out is free; a row held by a live node is not, so
two running nodes never hold one id and their message ids never collide. The row also carries
the node's public addresses, from which ``/route`` picks a node for a user.

This module states the values only; the store keeps them (``magpie.store``) and
``magpie.core.nodes`` runs the lease.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_NODE_ID", "NodeClaim", "NodeRow"]

#: Largest node id (10 bits).
MAX_NODE_ID = 1023


@dataclass(frozen=True, slots=True)
class NodeClaim:
    """A claim of a node id by one process: ``node_id`` (``None``: any free id), the
    process's unique ``instance`` token and the lease length in ms."""

    instance: str
    lease_ms: int
    node_id: int | None = None


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A node id's lease: who holds it until when (the store's clock, unix ms), and the
    holder's public addresses (empty until it listens)."""

    node_id: int
    instance: str
    expires_at_ms: int
    started_at_ms: int
    ws_url: str
    tcp_addr: str

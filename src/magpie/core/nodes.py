"""This node's id lease (:mod:`magpie.domain.nodes`) and the choice of a node for a user.

:class:`NodeLease` claims a node id from the store at start — the configured ``node_id``, or
any free id when it is unset — renews it every third of ``node_lease`` seconds with the
node's public addresses, and releases it when the node stops. The store is the one
authority (the same for every node of a cluster, on SQLite and PostgreSQL alike), so two
running processes never hold one id and their snowflake message ids never collide.

* A named id held by a live lease: the claim is retried for one lease length (a crashed
  predecessor's lease runs out meanwhile), then start-up fails naming ``node_id``.
* While renewals fail (the store is unreachable), the node keeps its id for two thirds of
  the lease, counted from the start of its last successful renewal; after that
  :meth:`NodeLease.valid` is false and no message id is issued (sends fail as retryable)
  until a renewal succeeds. The last third is the margin for clock rates and for
  PostgreSQL's clock, which decides when the lease runs out for everybody else.
* A renewal that finds the row taken by another process (possible only after the lease ran
  out) claims the id again if it is free; if it is not, the node has lost its id: it calls
  ``on_lost`` (the composition root stops the node) and stays invalid.

:func:`pick_node` spreads users over the live nodes by rendezvous hashing, so every node
that knows the same live set gives the same answer, and a node joining or leaving moves
only the users it gains or held.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence

from magpie.domain.nodes import NodeClaim, NodeRow
from magpie.errors import ConfigError, StoreError
from magpie.store.interface import Store

__all__ = ["Directory", "NodeLease", "pick_node"]

log = logging.getLogger(__name__)


class NodeLease:
    """One process's lease of a node id (module doc)."""

    def __init__(
        self,
        store: Store,
        *,
        instance: str,
        lease: float,
        wanted: int | None = None,
        on_lost: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.instance = instance
        self.lease = lease
        self.wanted = wanted
        self._on_lost = on_lost
        self._clock = clock
        self._lease_ms = max(1, int(lease * 1000))
        self._beat = lease / 3
        self._id: int | None = None
        self._valid_until = 0.0
        self._addresses = ("", "")
        self._task: asyncio.Task[None] | None = None
        self._lost = False

    @property
    def node_id(self) -> int:
        """The leased id (after :meth:`claim`)."""
        if self._id is None:
            raise RuntimeError("no node id leased yet")
        return self._id

    @property
    def held(self) -> bool:
        """Whether an id is leased (claimed and not released)."""
        return self._id is not None

    def valid(self) -> bool:
        """Whether this node may issue ids now (module doc)."""
        return not self._lost and self._clock() < self._valid_until

    async def claim(self) -> int:
        """Lease the configured id (waiting up to one lease for a crashed holder's to run
        out) or any free one; :class:`ConfigError` naming ``node_id`` when that fails."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lease + self._beat
        while True:
            started = self._clock()
            row = await self._store.claim_node(
                NodeClaim(self.instance, self._lease_ms, self.wanted)
            )
            if row is not None:
                self._id = row.node_id
                self._valid_until = started + 2 * self._beat
                log.debug("leased node id %d (%s)", row.node_id, self.instance)
                return row.node_id
            if self.wanted is None:
                raise ConfigError(
                    "node_id", "every node id 0–1023 is leased by a live node; stop some nodes"
                )
            if loop.time() >= deadline:
                raise ConfigError(
                    "node_id",
                    f"node id {self.wanted} is held by another running node (its lease is "
                    "renewed); give each node its own node_id, or leave node_id unset to lease "
                    "a free one",
                )
            await asyncio.sleep(min(self._beat, 0.5))

    async def start(self, ws_url: str, tcp_addr: str) -> None:
        """Publish the node's addresses (one renewal, now) and keep renewing every third of
        the lease."""
        self._addresses = (ws_url, tcp_addr)
        await self.renew()
        self._task = asyncio.get_running_loop().create_task(self._renew_loop())

    async def stop(self) -> None:
        """Stop renewing and give the id back (best effort: otherwise it runs out)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        node_id, self._id = self._id, None
        self._valid_until = 0.0
        if node_id is None or self._lost:
            return
        try:
            await self._store.release_node(node_id, self.instance)
        except StoreError as exc:
            log.info("could not release node id %d: %s", node_id, exc.message)

    async def renew(self) -> bool:
        """One renewal (also re-claiming the id when its lease ran out and nobody took it);
        false when the store could not be reached or the id is lost."""
        node_id = self.node_id
        started = self._clock()
        ws_url, tcp_addr = self._addresses
        try:
            if await self._store.renew_node(
                node_id, self.instance, self._lease_ms, *self._addresses
            ):
                self._valid_until = started + 2 * self._beat
                return True
            row = await self._store.claim_node(NodeClaim(self.instance, self._lease_ms, node_id))
            if row is not None:
                await self._store.renew_node(
                    node_id, self.instance, self._lease_ms, ws_url, tcp_addr
                )
                self._valid_until = started + 2 * self._beat
                log.warning("the lease of node id %d had run out; it is claimed again", node_id)
                return True
        except StoreError as exc:
            log.warning("cannot renew the lease of node id %d: %s", node_id, exc.message)
            return False
        self._lost = True
        why = (
            f"node id {node_id} was leased by another process after this node's lease ran out "
            "(the store was unreachable for longer than node_lease)"
        )
        log.error("%s; stopping", why)
        if self._on_lost is not None:
            self._on_lost(why)
        return False

    async def _renew_loop(self) -> None:
        while not self._lost:
            await asyncio.sleep(self._beat)
            await self.renew()


def pick_node(uid: str, nodes: Sequence[NodeRow]) -> NodeRow | None:
    """The node ``uid`` is sent to among ``nodes`` (those with a WebSocket address), by
    rendezvous hashing: the node with the highest hash of ``(node id, uid)``."""
    best: NodeRow | None = None
    best_score = b""
    for node in nodes:
        if not node.ws_url:
            continue
        score = hashlib.blake2b(f"{node.node_id}\0{uid}".encode(), digest_size=8).digest()
        if best is None or score > best_score:
            best, best_score = node, score
    return best


class Directory:
    """The live nodes as ``/route`` sees them: read from the store at most once per
    ``ttl`` seconds (every node then answers alike within that time); ``[]`` while the
    store cannot be read (then ``/route`` names the node asked)."""

    def __init__(
        self, store: Store, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._rows: list[NodeRow] = []
        self._read_at = -ttl - 1.0
        self._lock = asyncio.Lock()

    async def live(self) -> list[NodeRow]:
        """The live nodes with their addresses (cached)."""
        if self._clock() - self._read_at < self._ttl:
            return self._rows
        async with self._lock:
            if self._clock() - self._read_at >= self._ttl:
                try:
                    self._rows = await self._store.live_nodes()
                except StoreError as exc:
                    log.debug("live nodes unknown: %s", exc.message)
                    self._rows = []
                self._read_at = self._clock()
        return self._rows

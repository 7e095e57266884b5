"""The Redis bus: events between nodes over Redis pub/sub, routed by a presence registry.

Design (``docs/architecture.md``, *Bus*):

* **Presence**: the gateway registers every connection; the first connection of a uid on this
  node adds the node id to the uid's entry in the ``presence`` hash, the last one removes it
  (``_redis_lua.PRESENCE``). Redis 7.0 has no per-field TTL, so liveness is per *node*: a
  lease key ``node:<id>`` with a TTL (``bus_presence_ttl``) refreshed by heartbeats every
  third of it. Routing skips nodes whose lease is gone, and any live node purges a dead node's
  entries (``PURGE``) — a dead node stops attracting events within one TTL.
* **Publish**: this node's handlers run at once (local recipients never wait for Redis); the
  event is then queued (bounded by ``bus_queue_max``, dropped and counted beyond it, or while
  Redis is down) for one pump task that sends a pipeline of ``ROUTE`` scripts: inside Redis,
  each looks up the recipients' nodes and publishes one frame per live node holding any of
  them, to that node's channel, naming only the recipients it holds.
* **Receive**: one pub/sub connection subscribed to this node's channel; frames are decoded
  (``magpie.bus.codec``) and handed to the handlers in arrival order.
* **Outages**: any failure makes the bus *down*: queued events are dropped (counted), the
  links are closed, and a supervisor reconnects with capped exponential backoff; on reconnect
  it resubscribes, reclaims the lease and reconciles this node's registrations with its own
  connection counts, then the bus is *up* again. ``health()`` says which, for ``/ready``.

The lease doubles as the node id's claim: a second process starting with a live node id is
refused (after waiting one TTL for the lease of a crashed predecessor to expire).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import random
import socket
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from magpie.bus import _redis_lua as lua
from magpie.bus._local import Counts, run_handlers
from magpie.bus.codec import BusDecodeError, decode_frame, route_args
from magpie.bus.interface import BusEvent, BusHealth, Delivery, Handler
from magpie.config import redact_url
from magpie.errors import ConfigError
from magpie.metrics import Metrics

__all__ = ["RedisBus", "RedisBusConfig"]

log = logging.getLogger(__name__)

#: Events sent in one pipeline at most (a bigger backlog takes several round trips).
_BATCH = 512
#: Recipients per ROUTE call at most (one call runs atomically, holding Redis meanwhile:
#: about 0.3 µs per recipient).
_ROUTE_UIDS = 5000
#: Uids per PRESENCE / PURGE script call (bounds how long one script blocks Redis).
_CHUNK = 1000
#: Reconnect backoff: first delay, cap (seconds), and the jitter fraction.
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 5.0
_JITTER = 0.2


@dataclass(frozen=True, slots=True)
class RedisBusConfig:
    """The bus's share of the settings (``bus_url``, ``cluster_name``, ``node_id``, …)."""

    url: str
    cluster_name: str
    node_id: int
    #: Seconds a node's lease lives without a heartbeat (heartbeats every third of it).
    presence_ttl: float = 15.0
    #: Events waiting for Redis at most; more are dropped and counted.
    queue_max: int = 10_000
    #: Seconds for one Redis command or connect, and the longest ``register`` waits.
    timeout: float = 2.0


class _State(Enum):
    NEW = "new"
    UP = "up"
    DOWN = "down"
    CLOSED = "closed"


#: (state, happening) -> next state; a missing pair is a bug (``_move`` raises).
_TRANSITIONS: dict[tuple[_State, str], _State] = {
    (_State.NEW, "connected"): _State.UP,
    (_State.NEW, "close"): _State.CLOSED,
    (_State.UP, "lost"): _State.DOWN,
    (_State.UP, "close"): _State.CLOSED,
    (_State.DOWN, "connected"): _State.UP,
    (_State.DOWN, "lost"): _State.DOWN,
    (_State.DOWN, "close"): _State.CLOSED,
    (_State.CLOSED, "close"): _State.CLOSED,
}


class _LeaseLost(Exception):
    """The node's lease is gone or held by another incarnation."""


#: What makes the bus go down (and reconnect) instead of crashing.
_FAILURES = (RedisError, OSError, _LeaseLost)


@dataclass(slots=True)
class _Link:
    """One connection set: commands (with timeouts) and the subscription (without: it is idle
    for as long as nobody sends to this node)."""

    client: aioredis.Redis
    sub_client: aioredis.Redis
    pubsub: PubSub

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()
        for c in (self.client, self.sub_client):
            with contextlib.suppress(Exception):
                await c.aclose()


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


_SCRIPTS = (lua.ROUTE, lua.PRESENCE, lua.HEARTBEAT, lua.PURGE, lua.RELEASE)
_ROUTE, _PRESENCE, _HEARTBEAT, _PURGE, _RELEASE = map(_sha, _SCRIPTS)


class RedisBus:
    """:class:`~magpie.bus.interface.Bus` over Redis (module doc)."""

    def __init__(self, config: RedisBusConfig, metrics: Metrics) -> None:
        self.config = config
        self._metrics = metrics
        self._prefix = f"{config.cluster_name}:"
        self._me = str(config.node_id)
        self._incarnation = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
        self._ttl_ms = max(1, int(config.presence_ttl * 1000))
        self._beat = config.presence_ttl / 3
        self._handlers: list[Handler] = []
        self._counts = Counts()
        self._changes: dict[str, bool] = {}
        self._queue: deque[BusEvent] = deque()
        self._state = _State.NEW
        self._detail = "not started"
        self._wake = asyncio.Event()
        self._flushed: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._up_detail = f"redis: node {self._me} of cluster {config.cluster_name}"

    # --- the Bus interface ---------------------------------------------------------------

    @property
    def node_id(self) -> int:
        """This node's id (its lease key and channel)."""
        return self.config.node_id

    @property
    def channel(self) -> str:
        """The pub/sub channel this node listens on."""
        return f"{self._prefix}events:{self._me}"

    def assign(self, node_id: int) -> None:
        """Take this node's id (its lease key and channel); only before :meth:`start`."""
        if self._state is not _State.NEW:
            raise RuntimeError("bus: the node id is assigned before start")
        self.config = dataclasses.replace(self.config, node_id=node_id)
        self._me = str(node_id)
        self._up_detail = f"redis: node {self._me} of cluster {self.config.cluster_name}"

    def subscribe(self, handler: Handler) -> None:
        """Register a handler."""
        self._handlers.append(handler)

    async def publish(self, event: BusEvent) -> None:
        """Run this node's handlers, then queue the event for the other nodes (dropped and
        counted when the bus is down or the queue is full)."""
        run_handlers(self._handlers, event)
        if isinstance(event, Delivery) and not event.recipients:
            return
        if self._state is not _State.UP:
            self._metrics.bus_dropped.labels(reason="down").inc()
        elif len(self._queue) >= self.config.queue_max:
            self._metrics.bus_dropped.labels(reason="overflow").inc()
        else:
            self._queue.append(event)
            self._wake.set()

    async def register(self, uid: str) -> None:
        """Count the connection; the uid's first one is written to the registry, and this
        waits (at most ``timeout``) until it is, unless the bus is down."""
        if self._counts.add(uid):
            self._changes[uid] = True
            self._wake.set()
        if uid in self._changes and self._state is _State.UP:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.timeout):
                    await asyncio.shield(self._next_flush())

    def unregister(self, uid: str) -> None:
        """Count the departure; the uid's last one is removed from the registry soon."""
        if self._counts.remove(uid):
            self._changes[uid] = False
            self._wake.set()

    def connections(self, uid: str) -> int:
        """How many connections of ``uid`` are registered here."""
        return self._counts.get(uid)

    @property
    def queued(self) -> int:
        """Events waiting to be sent to Redis (at most ``queue_max``)."""
        return len(self._queue)

    def health(self) -> BusHealth:
        """Up (reaching Redis, lease held) or why not."""
        return BusHealth(self._state is _State.UP, self._detail)

    async def start(self) -> None:
        """Connect, claim the node id, register, and start the pump and reader."""
        link = await self._first_link()
        self._move("connected", self._up_detail)
        self._task = asyncio.get_running_loop().create_task(self._run(link))

    async def close(self) -> None:
        """Flush what is queued (bounded), withdraw the registrations, give up the lease."""
        if self._state is _State.UP:
            await self._drain()
        self._closing = True
        self._wake.set()  # the pump ends its loop; the supervisor then ends too
        task, self._task = self._task, None
        if task is not None:
            if self._state is not _State.UP:
                task.cancel()  # asleep in a backoff or reconnecting
            _, pending = await asyncio.wait({task}, timeout=self.config.timeout)
            if pending:
                await _cancel(pending)
        was_started = self._state is not _State.NEW
        self._move("close", "closed")
        self._counts.clear()
        self._queue.clear()
        if was_started:
            await self._withdraw()

    # --- state ---------------------------------------------------------------------------

    def _move(self, happening: str, detail: str) -> None:
        key = (self._state, happening)
        if key not in _TRANSITIONS:
            raise RuntimeError(f"bus: {happening!r} in state {self._state.value}")
        self._state = _TRANSITIONS[key]
        self._detail = detail
        self._metrics.bus_up.set(1 if self._state is _State.UP else 0)

    def _lost(self, exc: BaseException) -> None:
        if self._state is _State.UP:
            log.warning("bus down: %s", _describe(exc))
        dropped = len(self._queue)
        self._queue.clear()
        if dropped:
            self._metrics.bus_dropped.labels(reason="down").inc(dropped)
        self._move("lost", f"redis unreachable: {_describe(exc)}")
        self._release_waiters()

    def _next_flush(self) -> asyncio.Future[None]:
        if self._flushed is None:
            self._flushed = asyncio.get_running_loop().create_future()
        return self._flushed

    def _release_waiters(self) -> None:
        done, self._flushed = self._flushed, None
        if done is not None and not done.done():
            done.set_result(None)

    # --- connecting ----------------------------------------------------------------------

    async def _first_link(self) -> _Link:
        """Connect at start; wait up to one TTL (plus a heartbeat) for the lease of a crashed
        predecessor with this node id to expire."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.presence_ttl + self._beat
        while True:
            try:
                return await self._connect()
            except _LeaseLost:
                if loop.time() >= deadline:
                    raise ConfigError(
                        "node_id",
                        f"node {self._me} is live in cluster {self.config.cluster_name!r} "
                        "(another process holds its lease); give each node its own node_id",
                    ) from None
                await asyncio.sleep(min(self._beat, 0.5))
            except (RedisError, OSError) as exc:
                raise ConfigError(
                    "bus_url", f"cannot reach Redis at {redact_url(self.config.url)}: {exc}"
                ) from None

    def _new_client(self, timeout: float | None) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.config.url,
            socket_timeout=timeout,
            socket_connect_timeout=self.config.timeout,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            client_name=f"magpie-{self.config.cluster_name}-{self._me}",
        )

    async def _connect(self) -> _Link:
        """Subscribe first (so no event for this node is published before it listens), then
        claim the lease and reconcile the registrations."""
        client = self._new_client(self.config.timeout)
        sub_client = self._new_client(None)
        link = _Link(client, sub_client, sub_client.pubsub(ignore_subscribe_messages=True))
        try:
            for script in _SCRIPTS:
                await client.script_load(script)
            await link.pubsub.subscribe(self.channel)
            if await self._heartbeat(client) == 0:
                raise _LeaseLost("the node id's lease is held by another process")
            await self._reconcile(client, self._counts.uids())
        except BaseException:
            await link.close()
            raise
        return link

    async def _heartbeat(self, client: aioredis.Redis) -> int:
        args = (self._prefix, self._me, self._incarnation, self._ttl_ms)
        return int(await client.evalsha(_HEARTBEAT, 0, *args))

    async def _reconcile(self, client: aioredis.Redis, local: set[str]) -> None:
        """Make the registry's view of this node equal ``local``."""
        raw = await client.smembers(f"{self._prefix}node:{self._me}:uids")
        remote = {m.decode() if isinstance(m, bytes) else m for m in raw}
        await self._write_presence(client, sorted(local - remote), sorted(remote - local))

    async def _write_presence(
        self, client: aioredis.Redis, add: list[str], remove: list[str]
    ) -> None:
        for added, removed in _chunks(add, remove):
            args: tuple[str | int, ...] = (
                self._prefix, self._me, self._incarnation, len(added), *added, *removed,
            )  # fmt: skip
            if int(await client.evalsha(_PRESENCE, 0, *args)) < 0:
                raise _LeaseLost("the node id's lease was lost")

    async def _withdraw(self) -> None:
        """After close: remove this node's registrations and free its lease (best effort, one
        short-lived connection; a node that cannot do it is purged after one TTL)."""
        client = self._new_client(self.config.timeout)
        try:
            await self._reconcile(client, set())
            await client.eval(lua.RELEASE, 0, self._prefix, self._me, self._incarnation)
        except (RedisError, OSError, _LeaseLost) as exc:
            log.info("bus: could not withdraw registrations: %s", _describe(exc))
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    # --- running -------------------------------------------------------------------------

    async def _run(self, link: _Link | None) -> None:
        """Serve while connected; reconnect with capped exponential backoff when not."""
        delay = _BACKOFF_MIN
        while not self._closing:
            if link is None:
                await asyncio.sleep(delay * random.uniform(1 - _JITTER, 1 + _JITTER))  # noqa: S311
                delay = min(delay * 2, _BACKOFF_MAX)
                try:
                    link = await self._connect()
                except _FAILURES as exc:
                    self._detail = f"redis unreachable: {_describe(exc)}"
                    continue
                log.info("bus up again (node %s)", self._me)
                self._move("connected", self._up_detail)
                delay = _BACKOFF_MIN
            try:
                await self._serve(link)
            except _FAILURES as exc:
                self._lost(exc)
            finally:
                await link.close()
            link = None

    async def _serve(self, link: _Link) -> None:
        """Run the pump and the reader until one fails (raised) or the bus closes."""
        tasks = {
            asyncio.ensure_future(self._pump(link.client)),
            asyncio.ensure_future(self._read(link.pubsub)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            await _cancel(tasks)

    async def _pump(self, client: aioredis.Redis) -> None:
        """Send registrations, queued events and heartbeats, one pipeline per round."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self._beat
        while not self._closing:
            wait = next_beat - loop.time()
            if not self._queue and not self._changes and wait > 0:
                # asyncio.timeout, not wait_for: 3.11's wait_for can miss a cancellation
                # that races its timeout, and the pump would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
            self._wake.clear()
            beat = loop.time() >= next_beat
            await self._round(client, beat)
            if beat:
                next_beat = loop.time() + self._beat

    async def _round(self, client: aioredis.Redis, beat: bool) -> None:
        changes, self._changes = self._changes, {}
        done, self._flushed = self._flushed, None
        try:
            await self._send(client, changes, beat)
        finally:
            if done is not None and not done.done():
                done.set_result(None)
        if self._queue:
            self._wake.set()

    async def _send(self, client: aioredis.Redis, changes: dict[str, bool], beat: bool) -> None:
        pipe = client.pipeline(transaction=False)
        add = [uid for uid, on in changes.items() if on]
        remove = [uid for uid, on in changes.items() if not on]
        n_presence = 0
        for added, removed in _chunks(add, remove):
            pipe.evalsha(
                _PRESENCE, 0, self._prefix, self._me, self._incarnation, len(added),
                *added, *removed,
            )  # fmt: skip
            n_presence += 1
        n_events, n_routes = self._add_routes(pipe)
        if beat:
            pipe.evalsha(_HEARTBEAT, 0, self._prefix, self._me, self._incarnation, self._ttl_ms)
            pipe.evalsha(_PURGE, 0, self._prefix, _CHUNK)
        if not len(pipe):
            return
        results = await pipe.execute()
        self._check(results, n_presence, n_events, n_routes, beat)

    def _add_routes(self, pipe: Pipeline) -> tuple[int, int]:
        """Queue up to ``_BATCH`` events as ROUTE calls of at most about ``_ROUTE_UIDS``
        recipients each (one call holds Redis while it runs; a bigger recipient list is split
        over calls — a node may then get one event as several frames with disjoint
        recipients); returns (events, calls)."""
        queue, origin = self._queue, self.config.node_id
        n_events = 0
        calls: list[list[str | bytes]] = []
        args: list[str | bytes] = []
        uids = 0
        while queue and n_events < _BATCH:
            n_events += 1
            for part in _split(queue.popleft()):
                size = len(part.recipients) if isinstance(part, Delivery) else 1
                if not args or uids + size > _ROUTE_UIDS:
                    args = [self._prefix, self._me]
                    calls.append(args)
                    uids = 0
                args.extend(route_args(part, origin))
                uids += size
        for call in calls:
            pipe.evalsha(_ROUTE, 0, *call)
        return n_events, len(calls)

    def _check(
        self, results: list[Any], n_presence: int, n_events: int, n_routes: int, beat: bool
    ) -> None:
        if any(int(r) < 0 for r in results[:n_presence]):
            raise _LeaseLost("the node id's lease was lost")
        if n_events:
            self._metrics.bus_events.labels(direction="sent").inc(n_events)
            frames = sum(int(r) for r in results[n_presence : n_presence + n_routes])
            self._metrics.bus_frames.inc(frames)
        if beat and int(results[n_presence + n_routes]) != 1:
            raise _LeaseLost("the node id's lease expired or was taken")

    async def _read(self, pubsub: PubSub) -> None:
        """Hand every frame of this node's channel to the handlers, in arrival order."""
        received = self._metrics.bus_events.labels(direction="received")
        undecodable = self._metrics.bus_dropped.labels(reason="undecodable")
        handlers = self._handlers
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None or message["type"] != "message":
                continue
            try:
                _, event = decode_frame(message["data"])
            except BusDecodeError as exc:
                log.warning("bus: %s", exc.message)
                undecodable.inc()
                continue
            received.inc()
            run_handlers(handlers, event)

    async def _drain(self) -> None:
        """Wait (at most ``timeout``) until queued events and registrations are sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout
        while (self._queue or self._changes) and self._state is _State.UP:
            left = deadline - loop.time()
            if left <= 0:
                return
            flushed = self._next_flush()
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await asyncio.shield(flushed)


def _split(event: BusEvent) -> list[BusEvent]:
    """``event``, or a Delivery with more than ``_ROUTE_UIDS`` recipients cut into parts."""
    if not isinstance(event, Delivery) or len(event.recipients) <= _ROUTE_UIDS:
        return [event]
    r = event.recipients
    return [
        dataclasses.replace(event, recipients=r[i : i + _ROUTE_UIDS])
        for i in range(0, len(r), _ROUTE_UIDS)
    ]


def _chunks(add: list[str], remove: list[str]) -> Iterable[tuple[list[str], list[str]]]:
    """``(added, removed)`` slices of at most ``_CHUNK`` uids in all."""
    for i in range(0, len(add), _CHUNK):
        yield add[i : i + _CHUNK], []
    for i in range(0, len(remove), _CHUNK):
        yield [], remove[i : i + _CHUNK]


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until they ended. A cancellation that arrives while redis-py
    is inside a command can be absorbed by it, so whatever still runs is cancelled again."""
    for task in tasks:
        task.cancel()
    pending = tasks
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.05)
        for task in pending:
            task.cancel()


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__

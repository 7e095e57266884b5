"""Store calls while the node stops: bounded, so that a PostgreSQL that does not answer
cannot hold a stopping node for ever.

asyncpg waits without limit for a pooled connection and for a statement's answer, and a
database behind a network partition answers nothing (no error either: TCP keeps waiting).
A node's stop makes store calls (a request still running, the lease's release, the last
appends), so while running that is the caller's business, but once the node stops:

* :meth:`StopGuard.stopping` probes the database (``SELECT 1``) under the stop timeout: the
  calls under way at that moment were started without a bound, and a database that does not
  answer the probe is not answering them either;
* every call started after it runs under the same timeout;
* the first call that times out, or finds the database unreachable, gives it up: one
  WARNING line says so, the pool is terminated (which ends every call still waiting on one of
  its connections with an error), and every later call fails at once with
  :class:`~magpie.errors.StoreUnavailable` — so the rest of the stop goes on without the
  database, and the node exits.

A bounded call runs as a task of its own and is left to the terminated pool when it times out:
cancelling an asyncpg call inside the caller's task would make the caller wait for the
connection's release, which asks the same silent database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from magpie.errors import StoreError, StoreUnavailable

__all__ = ["StopGuard"]

T = TypeVar("T")

log = logging.getLogger("magpie.store")


class StopGuard:
    """The bound on one store's calls once its node stops (module doc). ``give_up`` drops
    every connection (the pool's ``terminate``); ``probe`` is one cheap round trip."""

    def __init__(self, give_up: Callable[[], None], probe: Callable[[], Awaitable[object]]) -> None:
        self._give_up = give_up
        self._probe = probe
        self._timeout: float | None = None
        self._gone = ""
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def timeout(self) -> float | None:
        """Seconds a call has once the node stops; ``None`` while it runs."""
        return self._timeout

    @property
    def gone(self) -> bool:
        """Whether the database was given up (every call fails at once)."""
        return bool(self._gone)

    def stopping(self, timeout: float) -> None:
        """The node stops: bound every call from now on, and probe the database for the calls
        already under way. Idempotent."""
        if self._timeout is not None:
            return
        self._timeout = timeout
        probe = asyncio.get_running_loop().create_task(self._run_probe())
        self._tasks.add(probe)
        probe.add_done_callback(self._tasks.discard)

    async def _run_probe(self) -> None:
        # An unreachable database is given up and logged by call().
        with contextlib.suppress(StoreError):
            await self.call("ping", self._probe)

    def check(self, what: str) -> None:
        """Fail at once when the database was given up."""
        if self._gone:
            raise StoreUnavailable(f"the database is unavailable ({what}): {self._gone}")

    async def call(self, what: str, body: Callable[[], Awaitable[T]]) -> T:
        """``body()`` — unbounded while the node runs, under the timeout once it stops."""
        self.check(what)
        if self._timeout is None:
            return await body()
        return await self._bounded(what, body, self._timeout)

    async def _bounded(self, what: str, body: Callable[[], Awaitable[T]], timeout: float) -> T:
        task: asyncio.Future[T] = asyncio.ensure_future(body())
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            self.give_up(what, f"no answer within {timeout:g} s")
            task.add_done_callback(_retrieve)  # ends once the pool is terminated
            raise StoreUnavailable(f"the database did not answer in time ({what})")
        try:
            return task.result()
        except StoreUnavailable as exc:
            self.give_up(what, exc.message)
            raise

    def give_up(self, what: str, why: str) -> None:
        """Stop waiting for the database: log once, terminate the pool, fail later calls."""
        if self._gone:
            return
        self._gone = f"given up while the node stopped ({what}: {why})"
        log.warning(
            "store: PostgreSQL is unreachable while the node stops (%s: %s); the rest of the "
            "stop goes on without it (its connections are dropped)",
            what,
            why,
        )
        self._give_up()


def _retrieve(task: asyncio.Future[T]) -> None:
    """Read an abandoned call's outcome (so asyncio does not log it as never retrieved)."""
    if not task.cancelled():
        task.exception()

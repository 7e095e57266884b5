"""Running durable jobs (:mod:`magpie.domain.jobs`): one :class:`JobWorker` per job kind and
node, all nodes claiming from the shared store.

A worker loops: claim up to ``batch`` due jobs of its kind for a lease, hand them to its
handler, then settle what the handler reports — done jobs are deleted; failed ones are
retried after an exponential backoff (``backoff`` doubling up to ``max_backoff``) until
their ``attempts``-th failure makes them dead (kept, counted, listable); jobs the handler
did not get to are given back at once, untried. Between rounds it sleeps until the kind's
next due job (a retry, a deadline), at most ``poll`` seconds (other nodes' new jobs are
seen that late at worst), at least ``pace`` seconds (a batching window), and wakes early
when this node enqueued something (:meth:`JobWorker.wake`).

Exactly once, and at least once: a job is claimed by one worker at a time (the store's
claim), so two nodes never run it together; if its worker dies mid-job, the job is due
again when the lease runs out and another worker takes it over — which is then a second run
of something the first may have finished. Handlers therefore make a repeat harmless
(webhooks carry an event id; card deadlines fire with a deterministic action id), and keep
each round well inside its lease (:attr:`Round.until_ms`).

A store that is down makes a round fail as a whole: the worker logs it, waits ``poll``
seconds and tries again; claimed jobs it could not settle are due again after their lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from magpie.domain.jobs import Job
from magpie.errors import StoreError
from magpie.store.interface import Store

__all__ = ["Handler", "JobWorker", "Outcome", "Report", "Round", "WorkerConfig", "retry_delay"]

log = logging.getLogger(__name__)

#: Seconds between refreshes of the stored job counts exported as a gauge.
COUNT_EVERY = 15.0


class Outcome(enum.Enum):
    """What became of one claimed job in a round."""

    DONE = "done"
    #: Tried and failed: retried later, or dead after the last attempt.
    FAILED = "failed"
    #: Not tried (the round ran out of lease or the node is stopping): given back at once.
    UNTRIED = "untried"


#: A handler's answer: the outcome of each job it reports, with an error text for failures.
#: Jobs it leaves out are :attr:`Outcome.UNTRIED`.
Report = Mapping[int, tuple[Outcome, str]]


@dataclass(slots=True)
class Round:
    """One claim round as a handler sees it: the claim's lease ends at ``until_ms`` (start
    nothing that may not finish by then) and ``stopping`` is set when the node stops."""

    until_ms: int
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


#: Handles the claimed jobs of one round (sorted by id); see :data:`Report`.
Handler = Callable[[Sequence[Job], Round], Awaitable[Report]]
#: Counts settled jobs: ``(kind, result, n)``, result done, retried, dead or released.
Count = Callable[[str, str, int], None]
#: Exports the stored number of pending and of dead jobs of a kind.
Gauge = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How one kind's jobs run. Times in seconds; ``attempts`` tries before a job is dead."""

    kind: str
    owner: str
    lease: float = 30.0
    batch: int = 100
    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 300.0
    poll: float = 1.0
    pace: float = 0.0
    drain_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.batch < 1:
            raise ValueError("attempts and batch must be at least 1")
        if min(self.lease, self.poll, self.backoff, self.max_backoff) <= 0:
            raise ValueError("lease, poll and backoffs must be positive")


def retry_delay(config: WorkerConfig, failures: int) -> float:
    """Seconds before the try after ``failures`` failed ones: ``backoff`` doubling, capped."""
    return float(min(config.backoff * 2 ** max(failures - 1, 0), config.max_backoff))


def _no_count(_: str, __: str, ___: int) -> None:
    """The default counter: nobody counts."""


def _no_gauge(_: str, __: int, ___: int) -> None:
    """The default gauge: nobody exports."""


class JobWorker:
    """Claims and runs the jobs of one kind on one node (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        config: WorkerConfig,
        handler: Handler,
        *,
        clock_ms: Callable[[], int],
        count: Count | None = None,
        gauge: Gauge | None = None,
    ) -> None:
        self._store = store
        self.config = config
        self._handler = handler
        self._clock_ms = clock_ms
        self._count = count or _no_count
        self._gauge = gauge or _no_gauge
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._counted_at = -COUNT_EVERY

    @property
    def kind(self) -> str:
        """The job kind this worker runs."""
        return self.config.kind

    def start(self) -> None:
        """Start the loop (claims begin at once: jobs left from before a restart run now)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish the round under way (up to ``drain_timeout`` seconds), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.config.drain_timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Look for due jobs now (this node enqueued one); the ``pace`` still applies."""
        self._wake.set()

    async def run_once(self) -> int:
        """One round: claim, handle, settle; returns how many jobs were claimed."""
        now = self._clock_ms()
        c = self.config
        jobs = await self._store.claim_jobs(
            c.kind, c.owner, now_ms=now, lease_ms=int(c.lease * 1000), limit=c.batch
        )
        if not jobs:
            return 0
        round_ = Round(now + int(c.lease * 1000), self._stopping)
        try:
            report = await self._handler(jobs, round_)
        except Exception as exc:  # a handler bug must not stop the worker: retry its jobs
            log.exception("%s jobs failed in their handler", c.kind)
            report = {j.job_id: (Outcome.FAILED, type(exc).__name__) for j in jobs}
        await self._settle(jobs, report)
        return len(jobs)

    # internals -------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                claimed = await self.run_once()
                await self._export_counts()
                if claimed >= self.config.batch:  # more may be due: go on after the pace
                    await self._pause(self.config.pace)
                    continue
                await self._sleep(await self._until_due())
            except StoreError as exc:
                log.warning("%s jobs: %s; trying again in %.1f s", self.kind, exc, self.config.poll)
                await self._sleep(self.config.poll)

    async def _until_due(self) -> float:
        """Seconds until the next due job of the kind, within ``[pace, poll]``."""
        due = await self._store.next_due_ms(self.kind)
        c = self.config
        wait = c.poll if due is None else (due - self._clock_ms()) / 1000
        return min(max(wait, c.pace, 0.0), c.poll)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, woken early by :meth:`wake` or :meth:`stop`."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` unless stopping (wakes do not shorten a batching window)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _settle(self, jobs: Sequence[Job], report: Report) -> None:
        """Done -> deleted; untried -> given back now; failed -> retried after the backoff
        (grouped by due time and error, one store call each) or, at the last attempt, dead."""
        done, untried = [], []
        retry: dict[tuple[int, str], list[int]] = {}
        dead: dict[str, list[int]] = {}
        now = self._clock_ms()
        for job in jobs:
            outcome, error = report.get(job.job_id, (Outcome.UNTRIED, ""))
            if outcome is Outcome.DONE:
                done.append(job.job_id)
            elif outcome is Outcome.UNTRIED:
                untried.append(job.job_id)
            elif job.attempts + 1 >= self.config.attempts:
                dead.setdefault(error, []).append(job.job_id)
            else:
                due = now + int(retry_delay(self.config, job.attempts + 1) * 1000)
                retry.setdefault((due, error), []).append(job.job_id)
        store, owner, kind = self._store, self.config.owner, self.kind
        await store.complete_jobs(done)
        await store.retry_jobs(untried, owner, due_at_ms=now, attempt=False)
        for (due, error), ids in retry.items():
            await store.retry_jobs(ids, owner, due_at_ms=due, error=error)
        for error, ids in dead.items():
            await store.bury_jobs(ids, owner, error=error)
            log.warning("%d %s job(s) dead after %d attempts: %s", len(ids), kind,
                        self.config.attempts, error)  # fmt: skip
        self._count(kind, "done", len(done))
        self._count(kind, "released", len(untried))
        self._count(kind, "retried", sum(len(ids) for ids in retry.values()))
        self._count(kind, "dead", sum(len(ids) for ids in dead.values()))

    async def _export_counts(self) -> None:
        """Refresh the stored-count gauge every :data:`COUNT_EVERY` seconds."""
        now = self._clock_ms() / 1000
        if now - self._counted_at < COUNT_EVERY:
            return
        self._counted_at = now
        counts = {c.kind: c for c in await self._store.count_jobs()}
        mine = counts.get(self.kind)
        self._gauge(self.kind, mine.pending if mine else 0, mine.dead if mine else 0)

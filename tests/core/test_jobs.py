"""The job worker (``magpie.core.jobs``) on a real SQLite store: rounds, retries with
backoff, dead letters, untried jobs given back, takeover after a lease, stop and outages."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from magpie.core.jobs import JobWorker, Outcome, Report, Round, WorkerConfig, retry_delay
from magpie.domain.jobs import Job, NewJob
from magpie.store.sqlite import SqliteStore
from tests.support.nodes import time_scale

T = 5 * time_scale()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "jobs.db", synchronous="NORMAL")
    await s.open()
    yield s
    await s.close()


def config(**kw: object) -> WorkerConfig:
    options: dict[str, object] = {
        "kind": "k",
        "owner": "me",
        "lease": 5.0,
        "batch": 10,
        "attempts": 3,
        "backoff": 0.05,
        "max_backoff": 0.1,
        "poll": 0.2,
    }
    options.update(kw)
    return WorkerConfig(**options)  # type: ignore[arg-type]


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + T
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


class Recorder:
    """A handler that records what it got and answers from ``outcome(job)``."""

    def __init__(self, outcome: Callable[[Job], tuple[Outcome, str]] | None = None) -> None:
        self.rounds: list[list[int]] = []
        self.outcome = outcome or (lambda job: (Outcome.DONE, ""))

    async def __call__(self, jobs: Sequence[Job], round_: Round) -> Report:
        assert round_.until_ms > now_ms()
        self.rounds.append([j.payload["n"] for j in jobs])
        return {j.job_id: self.outcome(j) for j in jobs}

    @property
    def seen(self) -> list[int]:
        return [n for r in self.rounds for n in r]


def jobs(*ns: int, due: int = 0) -> list[NewJob]:
    return [NewJob("k", {"n": n}, due_at_ms=due) for n in ns]


async def test_done_jobs_run_once_and_are_deleted(store: SqliteStore) -> None:
    counted: list[tuple[str, str, int]] = []
    handler = Recorder()
    worker = JobWorker(
        store, config(poll=30.0), handler, clock_ms=now_ms, count=lambda *a: counted.append(a)
    )
    await store.enqueue_jobs(jobs(1, 2, 3))
    worker.start()
    try:
        await eventually(lambda: _done(handler, 3))
        started = time.monotonic()
        await store.enqueue_jobs(jobs(4))
        worker.wake()  # the poll is 30 s: only the wake makes it look now
        await eventually(lambda: _done(handler, 4))
        assert time.monotonic() - started < 5
    finally:
        await worker.stop()
    assert sorted(handler.seen) == [1, 2, 3, 4]
    assert await store.list_jobs("k", dead=False) == []
    assert sum(n for kind, result, n in counted if result == "done") == 4


async def test_deadlines_run_at_their_time(store: SqliteStore) -> None:
    handler = Recorder()
    worker = JobWorker(store, config(poll=30.0), handler, clock_ms=now_ms)
    due = now_ms() + 300
    await store.enqueue_jobs(jobs(1, due=due))
    worker.start()
    try:
        await eventually(lambda: _done(handler, 1))
        assert now_ms() >= due, "not before its time"
    finally:
        await worker.stop()


async def test_failures_back_off_then_the_job_is_dead_and_kept(store: SqliteStore) -> None:
    tries: list[int] = []
    counted: list[tuple[str, str, int]] = []

    def outcome(job: Job) -> tuple[Outcome, str]:
        tries.append(now_ms())
        return (Outcome.FAILED, f"HTTP 503 on try {job.attempts + 1}")

    c = config(attempts=3, backoff=0.1, max_backoff=0.15)
    worker = JobWorker(
        store, c, Recorder(outcome), clock_ms=now_ms, count=lambda *a: counted.append(a)
    )
    await store.enqueue_jobs(jobs(1))
    worker.start()
    try:
        await eventually(lambda: _dead(store, 1))
    finally:
        await worker.stop()
    assert len(tries) == 3
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 100 and gaps[1] >= 150, "backoff doubles up to its cap"
    (dead,) = await store.list_jobs("k", dead=True)
    assert (dead.attempts, dead.last_error) == (3, "HTTP 503 on try 3")
    totals = {r: sum(n for _, res, n in counted if res == r) for r in ("retried", "dead")}
    assert totals == {"retried": 2, "dead": 1}
    assert [retry_delay(c, n) for n in (1, 2, 3)] == [0.1, 0.15, 0.15]


async def test_untried_jobs_are_given_back_at_once(store: SqliteStore) -> None:
    seen: list[list[int]] = []

    async def half(batch: Sequence[Job], round_: Round) -> Report:
        seen.append([j.payload["n"] for j in batch])
        return {batch[0].job_id: (Outcome.DONE, "")}  # the rest: not reached

    worker = JobWorker(store, config(lease=60.0), half, clock_ms=now_ms)
    await store.enqueue_jobs(jobs(1, 2, 3))
    worker.start()
    try:
        await eventually(lambda: _empty(store))
    finally:
        await worker.stop()
    assert seen == [[1, 2, 3], [2, 3], [3]], "no 60 s lease to wait out"


async def test_a_handler_exception_fails_the_round(store: SqliteStore) -> None:
    async def broken(batch: Sequence[Job], round_: Round) -> Report:
        raise RuntimeError("bug")

    worker = JobWorker(store, config(attempts=1), broken, clock_ms=now_ms)
    await store.enqueue_jobs(jobs(1, 2))
    await worker.run_once()
    dead = await store.list_jobs("k", dead=True)
    assert [(j.attempts, j.last_error) for j in dead] == [(1, "RuntimeError")] * 2


async def test_a_dead_workers_jobs_are_taken_over_after_the_lease(store: SqliteStore) -> None:
    await store.enqueue_jobs(jobs(1, 2))
    lost = await store.claim_jobs("k", "crashed", now_ms=now_ms(), lease_ms=400, limit=10)
    assert len(lost) == 2
    handler = Recorder()
    worker = JobWorker(store, config(owner="heir"), handler, clock_ms=now_ms)
    started = time.monotonic()
    worker.start()
    try:
        await eventually(lambda: _done(handler, 2))
    finally:
        await worker.stop()
    assert time.monotonic() - started >= 0.3, "not before the lease ran out"
    assert handler.rounds == [[1, 2]]


async def test_stop_lets_the_round_finish_and_tells_the_handler(store: SqliteStore) -> None:
    entered = asyncio.Event()
    saw_stop: list[bool] = []

    async def slow(batch: Sequence[Job], round_: Round) -> Report:
        entered.set()
        await asyncio.wait_for(round_.stopping.wait(), T)
        saw_stop.append(True)
        return {batch[0].job_id: (Outcome.DONE, "")}

    worker = JobWorker(store, config(), slow, clock_ms=now_ms)
    await store.enqueue_jobs(jobs(1, 2))
    worker.start()
    await asyncio.wait_for(entered.wait(), T)
    await worker.stop()
    assert saw_stop == [True]
    (left,) = await store.list_jobs("k", dead=False)
    assert (left.payload["n"], left.claimed_by, left.due_at_ms <= now_ms()) == (2, "", True)


async def test_a_store_outage_does_not_stop_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path / "gone.db")
    await store.open()
    await store.close()  # every call now fails with StoreError
    worker = JobWorker(store, config(poll=0.05), Recorder(), clock_ms=now_ms)
    with caplog.at_level("WARNING", logger="magpie.core.jobs"):
        worker.start()
        await asyncio.sleep(0.3)
        await worker.stop()
    retries = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert len(retries) >= 2, "it kept trying instead of dying on the first error"


def test_bad_configs_are_refused() -> None:
    for bad in ({"attempts": 0}, {"batch": 0}, {"lease": 0}, {"poll": -1}):
        with pytest.raises(ValueError):
            config(**bad)


async def _done(handler: Recorder, n: int) -> bool:
    return len(handler.seen) >= n


async def _dead(store: SqliteStore, n: int) -> bool:
    return len(await store.list_jobs("k", dead=True)) >= n


async def _empty(store: SqliteStore) -> bool:
    return await store.list_jobs("k", dead=False) == []

"""The store contract for durable jobs and shared values (``magpie.domain.jobs``), on every
backend of the store contract suite: enqueue with dedupe keys, exclusive claims with leases,
done / retry / dead letters / revive, the transactional outbox of the write methods, and
``kv_setdefault``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from magpie.domain.ext import Decision, ExtState, UpdateResult
from magpie.domain.jobs import Job, JobCount, NewJob
from magpie.errors import StoreError
from magpie.store.interface import Store
from tests.store.test_store_contract import (
    BACKENDS,
    GROUP,
    Backend,
    attempt,
    msg,
    opened,
    reject,
    set_status,
)

T0 = 1_700_000_000_000
LEASE = 30_000


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every backend of the store contract suite."""
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with opened(backend) as s:
        yield s


def job(n: int, *, kind: str = "k", key: str = "", due: int = 0) -> NewJob:
    return NewJob(kind, {"n": n}, key=key, due_at_ms=due, created_at_ms=T0 + n)


async def pending(store: Store, kind: str | None = None) -> list[Job]:
    return await store.list_jobs(kind, dead=False, limit=1000)


async def claim(store: Store, owner: str = "A", now: int = T0, limit: int = 100) -> list[Job]:
    return await store.claim_jobs("k", owner, now_ms=now, lease_ms=LEASE, limit=limit)


def numbers(jobs: Sequence[Job]) -> list[int]:
    return [j.payload["n"] for j in jobs]


# --- enqueue, claim, complete ----------------------------------------------------------------


async def test_enqueue_claim_and_complete(store: Store) -> None:
    assert await store.enqueue_jobs([job(1), job(2, due=T0 + 10), job(3, due=T0 + 500)]) == 3
    assert await store.enqueue_jobs([job(4, kind="other")]) == 1
    got = await claim(store, now=T0 + 10)
    assert numbers(got) == [1, 2], "due ones of the kind, not later ones or other kinds"
    first = got[0]
    assert (first.kind, first.key, first.attempts, first.dead) == ("k", "", 0, False)
    assert (first.claimed_by, first.due_at_ms, first.created_at_ms) == (
        "A",
        T0 + 10 + LEASE,
        T0 + 1,
    )
    assert dict(first.payload) == {"n": 1} and first.batch and got[1].batch == first.batch
    assert await claim(store, "B", now=T0 + 10) == [], "a claimed job is nobody else's"
    assert numbers(await claim(store, "B", now=T0 + 500)) == [3]
    assert await store.complete_jobs([j.job_id for j in got]) == 2
    assert await store.complete_jobs([got[0].job_id]) == 0
    assert numbers(await pending(store)) == [3, 4]
    assert await store.complete_jobs([]) == 0


async def test_a_claim_takes_the_earliest_due_first_up_to_the_limit(store: Store) -> None:
    await store.enqueue_jobs([job(n, due=T0 + 100 - n) for n in range(10)])
    got = await claim(store, now=T0 + 100, limit=3)
    assert sorted(numbers(got)) == [7, 8, 9]
    assert [j.job_id for j in got] == sorted(j.job_id for j in got)
    assert await claim(store, limit=0) == []


async def test_an_expired_lease_lets_another_owner_take_over(store: Store) -> None:
    await store.enqueue_jobs([job(1), job(2)])
    first = await claim(store, "A")
    assert await claim(store, "B", now=T0 + LEASE - 1) == []
    again = await claim(store, "B", now=T0 + LEASE)
    assert numbers(again) == [1, 2] and {j.claimed_by for j in again} == {"B"}
    assert {j.batch for j in again} == {first[0].batch}, "the first claim's batch is kept"
    # A's claim is gone: what A reports about them changes nothing.
    ids = [j.job_id for j in first]
    assert await store.retry_jobs(ids, "A", due_at_ms=T0) == 0
    assert await store.bury_jobs(ids, "A", error="late") == 0
    await store.enqueue_jobs([job(3)])
    fresh = await claim(store, "C", now=T0 + 2 * LEASE)
    batches = {j.payload["n"]: j.batch for j in fresh}
    assert batches[1] == batches[2] != batches[3]


async def test_dedupe_keys_are_unique_per_kind_while_the_job_exists(store: Store) -> None:
    assert await store.enqueue_jobs([job(1, key="x"), job(2, key="x"), job(3)]) == 2
    assert await store.enqueue_jobs([job(4, key="x")]) == 0
    assert await store.enqueue_jobs([job(5, key="x", kind="other"), job(6, key="y")]) == 2
    assert numbers(await pending(store, "k")) == [1, 3, 6]
    (first,) = [j for j in await claim(store) if j.key == "x"]
    assert dict(first.payload) == {"n": 1}
    await store.complete_jobs([first.job_id])
    assert await store.enqueue_jobs([job(7, key="x")]) == 1, "free again once done"


async def test_job_ids_are_never_reused(backend: Backend) -> None:
    async with opened(backend) as s:
        await s.enqueue_jobs([job(1), job(2)])
        got = await s.claim_jobs("k", "A", now_ms=T0, lease_ms=LEASE, limit=10)
        await s.complete_jobs([j.job_id for j in got])
    async with opened(backend) as s:
        await s.enqueue_jobs([job(3)])
        (later,) = await pending(s)
    assert later.job_id > max(j.job_id for j in got)


async def test_invalid_jobs_are_refused_and_nothing_is_added(store: Store) -> None:
    bad = [
        NewJob(""),
        NewJob("k" * 65),
        NewJob("k", key="x" * 257),
        NewJob("k", due_at_ms=-1),
        NewJob("k", {"not json": object()}),
    ]
    for one in bad:
        with pytest.raises(StoreError):
            await store.enqueue_jobs([job(1), one])
        with pytest.raises(StoreError):
            await store.append_message(msg(1), ["bob"], [one])
    assert await pending(store) == []
    assert await store.get_message(1_000_001) is None
    assert await store.enqueue_jobs([NewJob("k" * 64, key="x" * 256)]) == 1


# --- retry, dead letters, revive, cancel ----------------------------------------------------


async def test_retry_counts_failed_tries_and_releases_untried_jobs(store: Store) -> None:
    await store.enqueue_jobs([job(1), job(2)])
    one, two = await claim(store)
    assert await store.retry_jobs([one.job_id], "B", due_at_ms=T0) == 0, "not B's claim"
    assert await store.retry_jobs([one.job_id], "A", due_at_ms=T0 + 100, error="HTTP 503") == 1
    assert await store.retry_jobs([two.job_id], "A", due_at_ms=T0, attempt=False) == 1
    again = await claim(store, now=T0 + 100)
    by_n = {j.payload["n"]: j for j in again}
    assert (by_n[1].attempts, by_n[1].last_error) == (1, "HTTP 503")
    assert (by_n[2].attempts, by_n[2].last_error) == (0, "")
    assert await store.next_due_ms("k") == T0 + 100 + LEASE


async def test_dead_jobs_are_kept_listed_counted_and_revivable(store: Store) -> None:
    await store.enqueue_jobs([job(1, key="x"), job(2), job(3, kind="other")])
    one, two = await claim(store)
    assert await store.bury_jobs([one.job_id], "B", error="nope") == 0
    assert await store.bury_jobs([one.job_id], "A", error="HTTP 500 after 5 tries") == 1
    (dead,) = await store.list_jobs("k", dead=True)
    assert (dead.job_id, dead.dead, dead.attempts) == (one.job_id, True, 1)
    assert (dead.last_error, dead.claimed_by) == ("HTTP 500 after 5 tries", "")
    assert await store.list_jobs(None, dead=True) == [dead]
    assert await store.list_jobs("other", dead=True) == []
    assert await store.enqueue_jobs([job(4, key="x")]) == 0, "a dead job keeps its key"
    assert numbers(await claim(store, now=T0 + 10 * LEASE)) == [2], "never the dead one"
    assert await store.count_jobs() == [JobCount("k", 1, 1), JobCount("other", 1, 0)]
    assert await store.retry_jobs([one.job_id], "A", due_at_ms=T0) == 0, "dead stays dead"
    assert await store.revive_jobs([one.job_id, two.job_id], due_at_ms=T0 + 7) == 1
    revived = [j for j in await pending(store, "k") if j.job_id == one.job_id]
    assert [(j.dead, j.attempts, j.due_at_ms) for j in revived] == [(False, 0, T0 + 7)]
    assert await store.list_jobs(None, dead=True) == []


async def test_list_jobs_pages_by_id(store: Store) -> None:
    await store.enqueue_jobs([job(n) for n in range(5)])
    everything = await pending(store)
    page = await store.list_jobs("k", dead=False, after_job_id=everything[1].job_id, limit=2)
    assert page == everything[2:4]
    assert await store.list_jobs("k", dead=False, limit=0) == []


async def test_cancel_deletes_by_key_whatever_the_state(store: Store) -> None:
    await store.enqueue_jobs([job(1, key="a"), job(2, key="b"), job(3, key="c"), job(4)])
    await claim(store, limit=1)
    assert await store.cancel_jobs("k", ["a", "c", "zz", ""]) == 2
    assert await store.cancel_jobs("other", ["b"]) == 0
    assert numbers(await pending(store)) == [2, 4]
    assert await store.cancel_jobs("k", []) == 0


async def test_next_due_and_counts_of_an_empty_table(store: Store) -> None:
    assert await store.next_due_ms("k") is None
    assert await store.count_jobs() == []
    await store.enqueue_jobs([job(1, due=T0 + 5), job(2, due=T0 + 3)])
    assert await store.next_due_ms("k") == T0 + 3
    assert await store.next_due_ms("other") is None


# --- exclusive claims across stores ---------------------------------------------------------


async def test_concurrent_claimers_never_share_a_job(backend: Backend) -> None:
    async with opened(backend) as one, opened(backend) as two:
        await one.enqueue_jobs([job(n) for n in range(300)])
        seen: list[int] = []

        async def claimer(s: Store, owner: str) -> None:
            while got := await s.claim_jobs("k", owner, now_ms=T0, lease_ms=LEASE, limit=7):
                seen.extend(j.job_id for j in got)
                await s.complete_jobs([j.job_id for j in got])

        stores = [one, two] * 3
        await asyncio.gather(*(claimer(s, f"o{i}") for i, s in enumerate(stores)))
        assert len(seen) == 300 and len(set(seen)) == 300
        assert await pending(one) == []


# --- the transactional outbox ----------------------------------------------------------------


async def test_appends_enqueue_their_jobs_unless_duplicate(store: Store) -> None:
    first = await store.append_message(msg(1), ["bob"], [job(1), job(2, key="m1")])
    assert not first.duplicate
    assert numbers(await pending(store)) == [1, 2]
    dup = await store.append_message(msg(2, client_msg_no="c1"), ["bob"], [job(3)])
    assert dup.duplicate and numbers(await pending(store)) == [1, 2]
    queued, _ = await store.append_to_queues(msg(4), ["bob"], [job(4)])
    assert not queued.duplicate
    again, seqs = await store.append_to_queues(msg(5, client_msg_no="c4"), ["bob"], [job(5)])
    assert again.duplicate and seqs == {}
    plain = await store.append_message(msg(6), ["bob"])
    assert plain.message.message_seq == 2
    assert numbers(await pending(store)) == [1, 2, 4]


async def test_a_failed_append_enqueues_nothing(store: Store) -> None:
    await store.append_message(msg(1), [])
    with pytest.raises(StoreError):
        await store.append_message(msg(1, client_msg_no="clash"), [], [job(1)])
    assert await pending(store) == []


async def test_batched_appends_keep_each_ones_jobs(store: Store) -> None:
    results = await asyncio.gather(
        *(store.append_message(msg(n, from_uid=f"u{n}"), ["bob"], [job(n)]) for n in range(40)),
        *(store.append_message(msg(100 + n, from_uid=f"v{n}"), ["bob"]) for n in range(40)),
    )
    assert all(not r.duplicate for r in results)
    assert sorted(numbers(await pending(store))) == list(range(40))


async def test_update_ext_enqueues_jobs_of_an_applied_change_only(store: Store) -> None:
    await store.append_message(msg(1), [])
    seen: list[UpdateResult] = []

    def events(result: UpdateResult) -> list[NewJob]:
        seen.append(result)
        return [NewJob("k", {"op": result.op.op_id, "version": result.state.version})]

    out = await store.update_ext(attempt(1_000_001, "a1"), set_status("open"), events)
    assert out is not None and seen == [out]
    assert [dict(j.payload) for j in await pending(store)] == [{"op": out.op.op_id, "version": 1}]
    dup = await store.update_ext(attempt(1_000_001, "a1"), set_status("open"), events)
    rejected = await store.update_ext(attempt(1_000_001, "a2"), reject("conflict"), events)
    assert dup is not None and dup.duplicate and rejected is not None
    assert len(seen) == 1 and len(await pending(store)) == 1
    assert (
        await store.update_ext(attempt(1_000_001, "a3"), set_status("x"), lambda r: []) is not None
    )
    assert len(await pending(store)) == 1


async def test_a_failing_jobs_function_rolls_the_change_back(store: Store) -> None:
    await store.append_message(msg(1), [])

    def boom(result: UpdateResult) -> list[NewJob]:
        raise ValueError("no jobs")

    with pytest.raises(ValueError, match="no jobs"):
        await store.update_ext(attempt(1_000_001, "a1"), set_status("open"), boom)
    with pytest.raises(StoreError):
        await store.update_ext(attempt(1_000_001, "a2"), set_status("open"), lambda r: [NewJob("")])
    assert await store.get_ext(1_000_001) is None
    assert await store.list_ops(1_000_001, 0, 10) == []
    assert await pending(store) == []

    def unchanged(state: ExtState) -> Decision:
        return set_status("fine")(state)

    ok = await store.update_ext(attempt(1_000_001, "a1"), unchanged)
    assert ok is not None and ok.state.extra_version == 1


async def test_jobs_survive_a_reopen(backend: Backend) -> None:
    async with opened(backend) as s:
        await s.append_message(msg(1), [], [job(1)])
        await s.enqueue_jobs([job(2, key="d", due=T0 + 9)])
        await s.claim_jobs("k", "A", now_ms=T0, lease_ms=LEASE, limit=1)
    async with opened(backend) as s:
        jobs = await pending(s)
        assert numbers(jobs) == [1, 2] and jobs[0].claimed_by == "A"
        assert numbers(await s.claim_jobs("k", "B", now_ms=T0 + LEASE, lease_ms=1, limit=5)) == [
            1,
            2,
        ]


# --- shared values and message lookups -------------------------------------------------------


async def test_kv_setdefault_keeps_the_first_value(backend: Backend) -> None:
    async with opened(backend) as one, opened(backend) as two:
        values = await asyncio.gather(
            *(s.kv_setdefault("secret", bytes([n]) * 32) for n, s in enumerate([one, two] * 5))
        )
        assert len(set(values)) == 1 and len(values[0]) == 32
        assert await two.kv_setdefault("secret", b"later") == values[0]
        assert await one.kv_setdefault("other", b"\x00\xff") == b"\x00\xff"


async def test_get_messages_by_id(store: Store) -> None:
    a = (await store.append_message(msg(1), [])).message
    b, _ = await store.append_to_queues(msg(2), ["bob"])
    found = await store.get_messages_by_id([b.message.message_id, 77, a.message_id, a.message_id])
    assert found == {a.message_id: a, b.message.message_id: b.message}
    assert await store.get_messages_by_id([]) == {}
    many = [(await store.append_message(msg(10 + n), [])).message for n in range(3)]
    ids = [m.message_id for m in many] + list(range(1, 1200))
    assert set(await store.get_messages_by_id(ids)) == {m.message_id for m in many}


async def test_group_seqs_stay_gap_free_with_jobs(store: Store) -> None:
    await asyncio.gather(
        *(store.append_message(msg(n, from_uid=f"u{n}"), ["bob"], [job(n)]) for n in range(30))
    )
    assert await store.max_seq("g1", GROUP) == 30

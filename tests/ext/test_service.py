"""ExtService over a real SQLite store: CAS races, LWW convergence, idempotency, notification."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from magpie.domain.ext import Actor, Result
from magpie.errors import BadRequest, NotFound
from magpie.ext.changes import FieldChange
from magpie.ext.hlc import Hlc, pack, physical_ms
from magpie.ext.notify import Notifier
from magpie.ext.patch import PatchLimits
from magpie.ext.service import ExtService
from magpie.store.interface import NewMessage, Store
from magpie.store.sqlite import SqliteStore
from tests.ext.test_notify import Recorder

NOW_MS = 1_700_000_000_000
GROUP = 2


class Clock:
    def __init__(self) -> None:
        self.ms = NOW_MS

    def __call__(self) -> int:
        return self.ms


@dataclass
class Env:
    store: Store
    ext: ExtService
    sent: Recorder
    clock: Clock


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = SqliteStore(tmp_path / "ext.sqlite3", synchronous="OFF")
    await store.open()
    sent, clock = Recorder(), Clock()
    ext = ExtService(
        store,
        Notifier(sent, window=0),
        limits=PatchLimits(),
        sync_max_limit=5,
        max_future_ms=60_000,
        clock_ms=clock,
    )
    try:
        yield Env(store, ext, sent, clock)
    finally:
        await ext.close()
        await store.close()


async def add_messages(store: Store, n: int, channel: str = "g1", first: int = 1) -> list[int]:
    ids = []
    for i in range(first, first + n):
        msg = NewMessage(i, f"c{i}", "alice", channel, GROUP, 1_700_000_000, b'{"type":1}')
        ids.append((await store.append_message(msg, [])).message.message_id)
    return ids


async def test_50_cas_updaters_20_rounds_one_winner_per_version(env: Env) -> None:
    (mid,) = await add_messages(env.store, 1)

    async def updater(i: int) -> list[int]:
        won = []
        for rnd in range(20):
            state = await env.ext.get(mid)
            version = state.version if state else 0
            extra = state.extra if state else {}
            patch = {"total": extra.get("total", 0) + 1, f"u{i}": extra.get(f"u{i}", 0) + 1}
            result = await env.ext.cas_update(
                mid,
                FieldChange(extra_patch=patch),
                expected_version=version,
                action_id=f"{i}-{rnd}",
                actor=Actor(f"u{i}", "web"),
            )
            assert result.result in (Result.APPLIED, Result.CONFLICT)
            if result.applied:
                assert result.state.version == version + 1
                won.append(result.state.version)
            else:
                assert result.state.version > version and result.last_applied is not None
        return won

    per_updater = await asyncio.gather(*(updater(i) for i in range(50)))
    wins = sorted(v for won in per_updater for v in won)
    final = await env.ext.get(mid)
    assert final is not None
    assert wins == list(range(1, final.version + 1)), "exactly one success per version"
    assert final.extra["total"] == final.version == len(wins), "no lost update"
    for i, won in enumerate(per_updater):
        assert final.extra.get(f"u{i}", 0) == len(won)
    ops = await env.ext.ops(mid, 0, 2000)
    assert len(ops) == 1000
    applied = [op for op in ops if op.result is Result.APPLIED]
    assert sorted(op.version_after for op in applied) == wins
    assert {op.result for op in ops} == {Result.APPLIED, Result.CONFLICT}


async def test_lww_with_skewed_out_of_order_writers_converges(env: Env) -> None:
    ids = await add_messages(env.store, 3)
    skews = {"w1": -3000, "w2": -100, "w3": 0, "w4": 500, "w5": 2000}
    writes = []
    for uid, skew in skews.items():
        hlc = Hlc(lambda skew=skew: NOW_MS + skew)  # type: ignore[misc]
        for n in range(4):
            writes.append((hlc.now(), uid, f"{uid}-{n}"))
    rng = random.Random(7)
    finals = []
    for mid in ids:  # the same writes, a different arrival order per message
        order = writes[:]
        rng.shuffle(order)
        for k, (at, uid, status) in enumerate(order):
            await env.ext.lww_update(
                mid,
                FieldChange(status=status, extra_patch={"by": uid}),
                updated_at=at,
                action_id=f"{k}",
                actor=Actor(uid, "d"),
            )
        state = await env.ext.get(mid)
        assert state is not None
        finals.append((state.status, dict(state.extra), state.updated_at))
    winner = max(writes)
    assert finals == [(winner[2], {"by": winner[1]}, winner[0])] * 3
    stale = [op for op in await env.ext.ops(ids[0], 0, 100) if op.result is Result.STALE]
    assert stale and all(op.version_after == op.base_version for op in stale)


async def test_server_stamps_follow_the_stored_state(env: Env) -> None:
    (mid,) = await add_messages(env.store, 1)
    ahead = pack(NOW_MS + 60_000, 5)  # exactly at the allowed skew
    await env.ext.lww_update(
        mid, FieldChange(status="future"), updated_at=ahead, action_id="a", actor=Actor("x")
    )
    stamped = await env.ext.lww_update(
        mid, FieldChange(status="now"), updated_at=None, action_id="b", actor=Actor("y")
    )
    assert stamped.applied and stamped.state.updated_at > ahead
    cas = await env.ext.cas_update(
        mid, FieldChange(status="c"), expected_version=2, action_id="c", actor=Actor("z")
    )
    assert cas.applied and cas.state.updated_at > stamped.state.updated_at
    assert env.ext.hlc.now() > cas.state.updated_at, "the clock stays ahead of stored values"
    with pytest.raises(BadRequest) as info:
        too_far = pack(NOW_MS + 60_001, 0)
        await env.ext.lww_update(
            mid, FieldChange(status="x"), updated_at=too_far, action_id="d", actor=Actor("x")
        )
    assert info.value.field == "updated_at"
    assert physical_ms(cas.state.updated_at) >= NOW_MS + 60_000


async def test_a_repeat_returns_the_original_and_notifies_once(env: Env) -> None:
    (mid,) = await add_messages(env.store, 1)
    change = FieldChange(status="open")
    first = await env.ext.cas_update(
        mid, change, expected_version=0, action_id="act", actor=Actor("u"), important=True
    )
    await env.ext.close()
    again = await env.ext.cas_update(
        mid, FieldChange(status="other"), expected_version=1, action_id="act", actor=Actor("u")
    )
    await env.ext.close()
    assert first.applied and again.applied and again.duplicate and not first.duplicate
    assert again.op == first.op and again.state.version == 1 and again.state.status == "open"
    (cmd,) = env.sent.sent
    assert cmd.persisted and json.loads(cmd.payload)["param"]["extra_version"] == 1
    lost = await env.ext.cas_update(
        mid, change, expected_version=0, action_id="late", actor=Actor("v")
    )
    replay = await env.ext.cas_update(
        mid, change, expected_version=1, action_id="late", actor=Actor("v")
    )
    assert lost.result is Result.CONFLICT and replay.result is Result.CONFLICT
    assert replay.duplicate and replay.op == lost.op
    assert replay.last_applied == first.op
    await env.ext.close()
    assert len(env.sent.sent) == 1, "rejections and repeats send no CMD"


async def test_unknown_messages_are_404(env: Env) -> None:
    with pytest.raises(NotFound):
        await env.ext.revoke(404, revoker="a", action_id="x", actor=Actor("a"), important=False)
    with pytest.raises(BadRequest):
        await env.ext.revoke(404, revoker="a", action_id="", actor=Actor("a"), important=False)


async def test_sync_pages_and_caps_the_limit(env: Env) -> None:
    ids = await add_messages(env.store, 7)
    for k, mid in enumerate(ids):
        await env.ext.cas_update(
            mid, FieldChange(status="s"), expected_version=0, action_id=f"{k}", actor=Actor()
        )
    five = await env.ext.sync("g1", GROUP, 1, 5)
    assert [s.extra_version for s in five.rows] == [2, 3, 4, 5, 6] and five.more
    assert five.epoch == env.store.epoch
    capped = await env.ext.sync("g1", GROUP, 1, 6)  # sync_max_limit is 5: N+1 is capped
    assert capped == five
    tail = await env.ext.sync("g1", GROUP, 6, 5)
    assert [s.extra_version for s in tail.rows] == [7] and not tail.more
    latest = await env.ext.sync("g1", GROUP, 0, 2)
    assert [s.extra_version for s in latest.rows] == [6, 7] and not latest.more
    states = await env.ext.states([ids[0], ids[1], 999])
    assert sorted(states) == ids[:2]

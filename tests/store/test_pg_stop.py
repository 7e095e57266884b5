"""The bound on a PostgreSQL store's calls once its node stops (``magpie.store._pg_stop``),
without a database: calls are unbounded while the node runs; once it stops, a call that gets
no answer, or a probe that gets none for the calls under way, gives the database up — one
WARNING line, the pool dropped once, every later call refused at once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from magpie.errors import StoreUnavailable
from magpie.store._pg_stop import StopGuard


class Db:
    """A database whose answers the test releases (``answer``) or never gives."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()
        self.terminated = 0

    def terminate(self) -> None:
        self.terminated += 1
        self.answer.set()  # a terminated pool ends every waiting call (with an error)

    async def ping(self) -> object:
        await self.answer.wait()
        if self.terminated:
            raise StoreUnavailable("the database is unavailable (ping)")
        return 1

    async def slow(self) -> str:
        await asyncio.sleep(0.3)
        return "late but fine"


async def test_calls_are_not_bounded_while_the_node_runs() -> None:
    db = Db()
    guard = StopGuard(db.terminate, db.ping)
    assert guard.timeout is None
    assert await guard.call("slow", db.slow) == "late but fine"
    assert db.terminated == 0


async def test_a_call_without_an_answer_once_stopping_gives_the_database_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = Db()
    guard = StopGuard(db.terminate, db.slow)  # the probe answers: only the call is silent
    guard.stopping(0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, "magpie.store"), pytest.raises(StoreUnavailable):
        await guard.call("release_node", db.ping)
    assert loop.time() - started < 1.0
    assert guard.gone and db.terminated == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "magpie.store"]
    assert len(lines) == 1 and "unreachable while the node stops (release_node" in lines[0]
    with pytest.raises(StoreUnavailable, match="given up"):  # at once, no second line
        await asyncio.wait_for(guard.call("close", db.ping), 0.05)
    assert db.terminated == 1 and len(caplog.records) == 1


async def test_the_probe_ends_calls_under_way_when_the_database_is_silent() -> None:
    db = Db()
    guard = StopGuard(db.terminate, db.ping)
    under_way = asyncio.ensure_future(guard.call("send", db.ping))  # started unbounded
    await asyncio.sleep(0)
    guard.stopping(0.1)
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(under_way, 1.0)
    assert guard.gone and db.terminated == 1


async def test_a_database_that_answers_is_kept_and_a_refusal_gives_it_up() -> None:
    db = Db()
    db.answer.set()
    guard = StopGuard(db.terminate, db.ping)
    guard.stopping(0.5)
    assert await guard.call("ping", db.ping) == 1
    assert await guard.call("slow", db.slow) == "late but fine"  # within the bound
    assert not guard.gone

    async def refused() -> None:
        raise StoreUnavailable("the database is unavailable (release_node)")

    with pytest.raises(StoreUnavailable):
        await guard.call("release_node", refused)
    assert guard.gone and db.terminated == 1

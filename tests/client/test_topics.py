"""Listeners: callbacks and async iterators over one topic."""

from __future__ import annotations

import asyncio
import logging

import pytest

from magpie.client.topics import Topic


async def test_callbacks_run_in_order_and_can_be_cancelled() -> None:
    topic: Topic[int] = Topic("t")
    got: list[tuple[str, int]] = []
    sub = topic.on(lambda x: got.append(("a", x)))
    topic.on(lambda x: got.append(("b", x)))
    topic.publish(1)
    sub.cancel()
    sub.cancel()
    topic.publish(2)
    assert got == [("a", 1), ("b", 1), ("b", 2)]


async def test_a_failing_listener_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    topic: Topic[int] = Topic("t")
    got: list[int] = []
    topic.on(lambda x: 1 // 0)
    topic.on(got.append)
    with caplog.at_level(logging.ERROR):
        topic.publish(7)
    assert got == [7] and "listener failed" in caplog.text


async def test_async_callbacks_are_scheduled() -> None:
    topic: Topic[int] = Topic("t")
    done = asyncio.Event()

    async def handler(x: int) -> None:
        assert x == 3
        done.set()

    topic.on(handler)
    topic.publish(3)
    await asyncio.wait_for(done.wait(), 1)


async def test_streams_see_events_after_they_start_and_end_on_close() -> None:
    topic: Topic[int] = Topic("t")
    topic.publish(0)
    stream = topic.stream()
    for i in range(1, 4):
        topic.publish(i)
    assert await stream.get(1) == 1
    topic.close()
    assert [x async for x in stream] == [2, 3]
    with pytest.raises(EOFError):
        await topic.stream().get(1)


async def test_a_slow_stream_drops_the_oldest() -> None:
    topic: Topic[int] = Topic("t", max_queue=3)
    async with topic.stream() as stream:
        for i in range(5):
            topic.publish(i)
        assert stream.pending() == [2, 3, 4] and stream.dropped == 2
    topic.publish(9)
    assert stream.pending() == [], "closed streams get nothing"


async def test_get_times_out() -> None:
    topic: Topic[int] = Topic("t")
    with pytest.raises(TimeoutError):
        await topic.stream().get(0.05)

"""Listeners: every event kind is a :class:`Topic` that takes callbacks and async iterators.

.. code-block:: python

    sub = client.messages.on(lambda m: print(m.text))     # a callback; sub.cancel() stops it
    async with client.ext_changes.stream() as changes:     # an async iterator
        async for change in changes:
            ...

Callbacks run synchronously, in subscription order, when the event happens (so they see
events in order); one returning an awaitable has it scheduled as a task. An exception in a
listener is logged and never reaches the SDK (in SDK 1.0.4 it triggered a reconnect, spec §3).

A :class:`Stream` buffers at most ``max_queue`` events; when a consumer falls behind, the
oldest is dropped and counted in :attr:`Stream.dropped` (the cache still holds every message
and extension, so a UI can re-read). Streams end when the client closes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["Stream", "Subscription", "Topic"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Subscription:
    """A registered callback; :meth:`cancel` removes it."""

    __slots__ = ("_remove",)

    def __init__(self, remove: Callable[[], None]) -> None:
        self._remove = remove

    def cancel(self) -> None:
        """Stop calling the callback (idempotent)."""
        self._remove()
        self._remove = _nothing


def _nothing() -> None:
    return None


class Stream(Generic[T], AsyncIterator[T]):
    """An async iterator over a topic's events from the moment it was made."""

    def __init__(self, topic: Topic[T], max_queue: int) -> None:
        self._topic = topic
        self._items: deque[T] = deque()
        self._max = max_queue
        self._wakeup = asyncio.Event()
        self._ended = False
        #: Events dropped because the consumer fell more than ``max_queue`` behind.
        self.dropped = 0

    def _push(self, item: T) -> None:
        if len(self._items) >= self._max:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._wakeup.set()

    def _end(self) -> None:
        self._ended = True
        self._wakeup.set()

    async def __anext__(self) -> T:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._items.popleft()

    async def get(self, timeout: float | None = None) -> T:
        """The next event; ``TimeoutError`` after ``timeout`` seconds, ``EOFError`` when the
        topic closed."""
        try:
            async with asyncio.timeout(timeout):
                return await self.__anext__()
        except StopAsyncIteration:
            raise EOFError("the topic is closed") from None

    def pending(self) -> list[T]:
        """Take every buffered event without waiting."""
        items = list(self._items)
        self._items.clear()
        return items

    def close(self) -> None:
        """Unsubscribe; iteration ends once the buffer is drained."""
        self._topic._streams.discard(self)
        self._end()

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Topic(Generic[T]):
    """One kind of event, published by the SDK, observed by callbacks and streams."""

    def __init__(self, name: str, max_queue: int = 10_000) -> None:
        self.name = name
        self._max_queue = max_queue
        self._callbacks: dict[int, Callable[[T], Any]] = {}
        self._next = 0
        self._streams: set[Stream[T]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def on(self, callback: Callable[[T], object]) -> Subscription:
        """Call ``callback(event)`` for every event from now on."""
        key = self._next
        self._next += 1
        self._callbacks[key] = callback
        return Subscription(lambda: self._callbacks.pop(key, None) and None)

    def stream(self, max_queue: int | None = None) -> Stream[T]:
        """A new async iterator over events from now on (ended at once if closed)."""
        stream = Stream(self, max_queue or self._max_queue)
        if self._closed:
            stream._end()
        else:
            self._streams.add(stream)
        return stream

    def __aiter__(self) -> Stream[T]:
        return self.stream()

    def publish(self, event: T) -> None:
        """Deliver ``event`` to every callback and stream."""
        for callback in list(self._callbacks.values()):
            self._call(callback, event)
        for stream in self._streams:
            stream._push(event)

    def _call(self, callback: Callable[[T], Any], event: T) -> None:
        try:
            result = callback(event)
            if inspect.isawaitable(result):
                self._schedule(result)
        except Exception:
            log.exception("a %s listener failed", self.name)

    def _schedule(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a %s listener failed", self.name, exc_info=task.exception())

    def close(self) -> None:
        """End every stream and drop every callback (the client closed)."""
        self._closed = True
        for stream in list(self._streams):
            stream.close()
        self._callbacks.clear()

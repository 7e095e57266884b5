"""Bounded history answers: a byte budget per answer, bounded reads, few reads at once.

Reading history is what an API caller can make expensive: ``/channel/messagesync`` allows
10,000 messages of up to ``max_payload_bytes`` each, an extension sync 1,000 rows of up to
``ext_max_extra_bytes``. Three bounds keep a node's memory flat whatever is asked:

* **Per answer** (:class:`AnswerBudget`): items are JSON-encoded one at a time and
  collected until the next would take the answer past ``history_max_bytes``; the answer
  then stops early and says ``more`` (in the body where the shape has it, and in the
  ``X-Magpie-More`` header always). The first item is always sent, so one maximal message
  still gets through. The answer is assembled from the encoded items — no second,
  whole-answer copy is built.
* **Per store read**: message reads carry a payload byte budget (the store stops reading
  once it is reached); extension and operation-log rows are read in pages sized so that a
  page stays within the budget even if every row were as large as the limits allow
  (:func:`page_rows`).
* **At once** (:class:`ReadGate`): at most ``history_max_concurrent`` answers are built in
  the node and at most ``history_max_concurrent_per_user`` for one user; the others wait
  up to ``history_wait_timeout`` for a slot and are then refused with 503 ``busy`` and
  ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.responses import Response

from magpie.api.http import Busy
from magpie.config import Settings
from magpie.core.access import Caller

__all__ = [
    "MORE_HEADER",
    "AnswerBudget",
    "JsonBytes",
    "ReadGate",
    "encode",
    "ext_row_bytes",
    "message_row_bytes",
    "op_row_bytes",
    "page_rows",
    "payload_budget",
    "read_stopped",
    "reader",
    "with_more",
]

#: Response header of every history answer: ``1`` when it stopped early (more to read).
MORE_HEADER = "X-Magpie-More"
#: Room for the fields around a payload, an extension or a patch in one rendered row.
ROW_OVERHEAD = 2048


#: Stateless, so one serves every answer. Measured in ``python -m bench api``: a sync row
#: (an extension with a few ``extra`` keys) takes ≈ 1 µs here against ≈ 9 µs through
#: ``json.dumps``, whose compact, non-ASCII-escaping output it writes byte for byte (only a
#: float with an exponent reads ``1e16``, not ``1e+16`` — the same number).
_ENCODER = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """Compact UTF-8 JSON, as Starlette's ``JSONResponse`` writes it (``msgspec.Raw``
    values are spliced in as they are)."""
    return _ENCODER.encode(value)


class JsonBytes(Response):
    """A JSON answer whose body is already encoded."""

    media_type = "application/json"


@dataclass
class AnswerBudget:
    """The encoded items of one answer, at most ``max_bytes`` of them (the first item is
    always taken). ``full`` turns true when an item was refused."""

    max_bytes: int
    items: list[bytes] = field(default_factory=list)
    size: int = 0
    full: bool = False

    def add(self, item: Any, *, force: bool = False) -> bool:
        """Take ``item`` if it fits (or is the first, or ``force``); false, and ``full``,
        if not."""
        raw = encode(item)
        over = bool(self.items) and self.size + len(raw) + 1 > self.max_bytes
        if (self.full or over) and not force:
            self.full = True
            return False
        self.items.append(raw)
        self.size += len(raw) + 1  # and a comma
        return True

    def remaining(self) -> int:
        """Bytes left in the budget (never below 0)."""
        return max(0, self.max_bytes - self.size)

    def array(self) -> bytes:
        """The items as a JSON array."""
        return b"[" + b",".join(self.items) + b"]"

    def object(self, head: dict[str, Any], key: str) -> bytes:
        """``head`` with the items as the array ``key`` appended (``key`` last)."""
        prefix = encode(head)[:-1]
        joiner = b"," if head else b""
        return prefix + joiner + encode(key) + b":" + self.array() + b"}"


def payload_budget(settings: Settings) -> int:
    """The payload bytes one message read may take: base64 makes 3 bytes 4, so an answer of
    ``history_max_bytes`` cannot carry more."""
    return max(1, settings.history_max_bytes * 3 // 4)


def message_row_bytes(settings: Settings) -> int:
    """The most one rendered message with its extension can take (base64 payload, extra,
    edited content, fields)."""
    payload = 4 * (settings.max_payload_bytes // 3 + 1)
    return payload + ext_row_bytes(settings)


def ext_row_bytes(settings: Settings) -> int:
    """The most one extension row can take (``extra``, an edited content, fields)."""
    return settings.ext_max_extra_bytes + settings.ext_max_patch_bytes + ROW_OVERHEAD


def op_row_bytes(settings: Settings) -> int:
    """The most one operation-log row can take (its patch and fields)."""
    return settings.ext_max_patch_bytes + ROW_OVERHEAD


def page_rows(settings: Settings, row_bytes: int, wanted: int) -> int:
    """Rows to read in one page: at most ``wanted``, and few enough that rows of
    ``row_bytes`` each stay within ``history_max_bytes`` (at least 1)."""
    return max(1, min(wanted, settings.history_max_bytes // max(1, row_bytes)))


def read_stopped(payloads: Iterable[bytes], count: int, limit: int, max_bytes: int) -> bool:
    """Whether a store read asked for ``limit`` rows returned ``count`` because its payload
    byte budget ``max_bytes`` was reached (rather than the rows running out)."""
    return count < limit and sum(len(p) for p in payloads) >= max_bytes


def with_more(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema with the ``more`` flag of a history answer added."""
    more = {"type": "integer", "enum": [0, 1], "description": "1: the answer stopped early"}
    return {**schema, "properties": {**schema["properties"], "more": more}}


def reader(caller: Caller) -> str | None:
    """Whose read slots a history read takes: the user's (the business server: only the
    node's)."""
    return None if caller.business else caller.uid


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    """``items`` in consecutive slices of ``size``."""
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


@dataclass
class _UserSlots:
    """One user's slots and how many of their reads hold or wait for one."""

    slots: asyncio.Semaphore
    users: int = 0


class ReadGate:
    """At most ``total`` history answers built at once, ``per_user`` per user; a read
    waits up to ``timeout`` seconds for its slots, then :class:`~magpie.api.http.Busy`.
    ``on_refused`` is called for each refusal (a metric)."""

    def __init__(
        self,
        total: int,
        per_user: int,
        timeout: float,
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_user = per_user
        self._timeout = timeout
        self._users: dict[str, _UserSlots] = {}
        self._on_refused = on_refused

    @classmethod
    def of(cls, settings: Settings, on_refused: Callable[[], None]) -> ReadGate:
        """The gate ``settings`` describe."""
        return cls(
            settings.history_max_concurrent,
            settings.history_max_concurrent_per_user,
            settings.history_wait_timeout,
            on_refused,
        )

    def waiting_users(self) -> int:
        """Users holding or waiting for a slot (for tests: entries are dropped when idle)."""
        return len(self._users)

    @asynccontextmanager
    async def slot(self, user: str | None) -> AsyncIterator[None]:
        """Hold a node slot (and one of ``user``'s; ``None``: the business server, bound by
        the node's slots only) while the answer is built."""
        mine = self._enter(user)
        wanted = [s for s in (mine, self._total) if s is not None]
        held: list[asyncio.Semaphore] = []
        try:
            if any(s.locked() for s in wanted):
                await self._wait(wanted, held)
            else:  # both free: acquire() returns at once, so no timer (≈ 6 µs a read)
                for semaphore in wanted:
                    await semaphore.acquire()
                    held.append(semaphore)
            yield
        finally:
            for semaphore in reversed(held):
                semaphore.release()
            self._leave(user)

    async def _wait(self, wanted: list[asyncio.Semaphore], held: list[asyncio.Semaphore]) -> None:
        """Acquire ``wanted`` in order into ``held`` within the timeout, else refuse."""
        try:
            async with asyncio.timeout(self._timeout):
                for semaphore in wanted:
                    await semaphore.acquire()
                    held.append(semaphore)
        except TimeoutError:
            self._on_refused()
            raise Busy("too many history reads at once; try again shortly") from None

    def _enter(self, user: str | None) -> asyncio.Semaphore | None:
        if user is None:
            return None
        entry = self._users.get(user)
        if entry is None:
            entry = self._users[user] = _UserSlots(asyncio.Semaphore(self._per_user))
        entry.users += 1
        return entry.slots

    def _leave(self, user: str | None) -> None:
        if user is None:
            return
        entry = self._users[user]
        entry.users -= 1
        if entry.users == 0:
            del self._users[user]

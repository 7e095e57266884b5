"""A real HTTP webhook receiver for tests: records every request and answers as told."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.nodes import time_scale

T = 5 * time_scale()


@dataclass
class Hit:
    """One request the receiver got, and the status it answered."""

    target: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> str:
        return self.target.partition("event=")[2]

    @property
    def event_id(self) -> str:
        return self.headers.get("x-magpie-event-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A minimal HTTP/1.1 server (keep-alive, Content-Length bodies) that records requests.

    It answers 500 to the first ``fail_first`` requests, 503 to every request while ``down``
    is set, and otherwise ``status(hit)`` (default 200). While ``hold`` is set, requests are
    recorded (``held``) but answered only when it is cleared — a receiver that is slow, or
    whose sender dies before the answer."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.down = False
        self.status: Callable[[Hit], int] = lambda hit: 200
        self.calls = 0
        self.hits: asyncio.Queue[Hit] = asyncio.Queue()
        self.log: list[Hit] = []
        self.held: list[Hit] = []
        self._release = asyncio.Event()
        self._release.set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def hold(self) -> None:
        """Record but do not answer until :meth:`release`."""
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                target = line.decode().split(" ")[1]
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    key, _, value = h.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.calls += 1
                hit = Hit(target, headers, body, 0)
                if not self._release.is_set():
                    self.held.append(hit)
                    await self._release.wait()
                hit.status = self._answer(hit)
                self.log.append(hit)
                self.hits.put_nowait(hit)
                writer.write(f"HTTP/1.1 {hit.status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _answer(self, hit: Hit) -> int:
        if self.calls <= self.fail_first:
            return 500
        return 503 if self.down else self.status(hit)

    async def next_event(self, event: str) -> Hit:
        """The next successfully answered request of ``event``."""
        while True:
            hit = await asyncio.wait_for(self.hits.get(), T)
            if hit.event == event and hit.status == 200:
                return hit

    def delivered(self, event: str) -> list[Hit]:
        """Every request of ``event`` answered 200 so far."""
        return [h for h in self.log if h.event == event and h.status == 200]

    def notified_ids(self) -> list[int]:
        """The message ids of every delivered ``msg.notify`` entry, in arrival order."""
        return [m["message_id"] for h in self.delivered("msg.notify") for m in h.json()]

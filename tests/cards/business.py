"""A business server for callback tests: a real HTTP/1.1 server on loopback whose answers
the test decides (``decide``: an async function of the request, so it may be slow)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Call:
    """One callback request as received."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


#: (call) -> (HTTP status, JSON answer or raw bytes)
Decide = Callable[[Call], Awaitable[tuple[int, Any]]]


async def accept(_: Call) -> tuple[int, Any]:
    return 200, {}


class Business:
    """Records every callback and answers with ``decide`` (keep-alive, Content-Length)."""

    def __init__(self, decide: Decide = accept) -> None:
        self.decide = decide
        self.calls: list[Call] = []
        self.answered = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Business:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cards"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while line := await reader.readline():
                assert line.startswith(b"POST ")
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    key, _, value = h.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                call = Call(headers, body)
                self.calls.append(call)
                status, answer = await self.decide(call)
                raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                writer.write(f"{head}Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
                await writer.drain()
                self.answered += 1
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

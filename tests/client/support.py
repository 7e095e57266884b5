"""Helpers for the SDK's integration tests: clients of a real node, extension changes through
the business API, and a TCP proxy that can lose, hold and cut traffic."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

from magpie.app import Node
from magpie.client import Client, ClientOptions
from tests.support.nodes import api, time_scale

#: One timeout unit of these tests.
T = 5 * time_scale()

#: Client options for tests: quick reconnects, everything else default.
FAST = ClientOptions(backoff_initial=0.05, backoff_max=0.3, gap_fill_delay=0.1)


def client_of(
    node: Node,
    uid: str,
    token: str,
    cache: Path | None,
    *,
    url: str | None = None,
    options: ClientOptions = FAST,
) -> Client:
    """A client of ``node`` (or of ``url``, e.g. a proxy in front of it)."""
    return Client(
        url or f"ws://127.0.0.1:{node.ws_port}",
        uid,
        token,
        cache_path=cache,
        api_url=f"http://127.0.0.1:{node.api_port}",
        options=options,
    )


async def ext_update(node: Node, message_id: int, **body: Any) -> dict[str, Any]:
    """Change a message's extension as the business server does (LWW unless told)."""
    body = {"mode": "lww", "action_id": uuid.uuid4().hex, "message_id": message_id, **body}
    async with api(node) as http:
        r = await http.post("/message/extra/update", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def server_rows(node: Node, uid: str, channel_id: str, kind: int) -> dict[int, Any]:
    """The server's extension rows of a (small) channel, as ``uid`` sees them, by message."""
    body = {"login_uid": uid, "channel_id": channel_id, "channel_type": kind, "limit": 1000}
    async with api(node) as http:
        r = await http.post("/message/extra/sync", json=body)
    rows = r.json()
    assert r.status_code == 200 and len(rows) < 1000, r.text
    return {int(row["message_id_str"]): row for row in rows}


class _Pair:
    """One proxied connection."""

    def __init__(self, down: asyncio.StreamWriter, up: asyncio.StreamWriter) -> None:
        self.down, self.up = down, up
        self.held = False

    def abort(self) -> None:
        for writer in (self.down, self.up):
            with contextlib.suppress(Exception):
                writer.transport.abort()


class Proxy:
    """A TCP proxy on a free loopback port in front of ``upstream`` (changeable).

    :meth:`hold` keeps the open connections' server-to-client bytes back (a stalled,
    half-open link: no SENDACK, no PONG); ``refuse`` closes new connections at once (the
    server looks down); :meth:`cut` drops every open connection."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._server: asyncio.Server | None = None
        self._pairs: list[_Pair] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.refuse = False
        self.connections = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def hold(self) -> None:
        """Stop forwarding server-to-client bytes on the open connections."""
        for pair in self._pairs:
            pair.held = True

    def cut(self) -> None:
        """Drop every open connection (both sides see a reset)."""
        for pair in self._pairs:
            pair.abort()
        self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = _Pair(writer, up_writer)
        self._pairs.append(pair)
        for task in (self._pump(reader, pair, False), self._pump(up_reader, pair, True)):
            t = asyncio.ensure_future(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, pair: _Pair, downstream: bool) -> None:
        writer = pair.down if downstream else pair.up
        try:
            while data := await reader.read(65536):
                if downstream and pair.held:
                    continue  # lost in a stalled network
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            pair.abort()

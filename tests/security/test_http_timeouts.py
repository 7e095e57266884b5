"""Half-open HTTP connections are closed: nothing sent, half a request head, a head dripped
byte by byte, a declared body never sent, an idle keep-alive connection, a response never
read. A normal client on the same node is served meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from magpie.app import Node
from tests.support.nodes import API_KEY, running_node, time_scale

#: The node's deadlines in this module (scaled like every test timeout).
HEAD = 1.0 * time_scale()
BODY = 1.5 * time_scale()
KEEPALIVE = 0.5 * time_scale()
#: Slack for the event loop and a busy machine: a socket must be gone by deadline + SLACK.
SLACK = 1.5 * time_scale()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(
        tmp_path,
        http_header_timeout=HEAD,
        http_body_timeout=BODY,
        http_keepalive_timeout=KEEPALIVE,
    ) as n:
        yield n


async def _closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent before."""
    started = time.monotonic()
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), limit):
            received += chunk
    except ConnectionResetError:
        pass
    return time.monotonic() - started, received


async def _open(node: Node) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", node.api_port)


def _timeouts(node: Node, phase: str) -> float:
    value = node.metrics.registry.get_sample_value("magpie_http_timeouts_total", {"phase": phase})
    return value or 0.0


async def _served(node: Node) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.api_port}") as http:
        r = await http.get("/health")
        assert r.status_code == 200


async def test_a_socket_that_sends_nothing_is_closed(node: Node) -> None:
    reader, writer = await _open(node)
    await _served(node)  # another client is served while the silent one waits
    elapsed, got = await _closed_after(reader, HEAD + SLACK)
    assert got == b"" and elapsed < HEAD + SLACK
    assert _timeouts(node, "head") == 1
    writer.close()


async def test_half_a_request_head_is_closed(node: Node) -> None:
    reader, writer = await _open(node)
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await writer.drain()
    elapsed, got = await _closed_after(reader, HEAD + SLACK)
    assert got == b"" and elapsed < HEAD + SLACK
    writer.close()


async def test_a_dripped_head_does_not_extend_the_deadline(node: Node) -> None:
    reader, writer = await _open(node)
    started = time.monotonic()
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: y\r\n" * 50

    async def drip() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    try:
        _, got = await _closed_after(reader, HEAD + SLACK)
        assert got == b"" and time.monotonic() - started < HEAD + SLACK
    finally:
        dripping.cancel()
        writer.close()


async def test_a_declared_body_never_sent_is_closed(node: Node) -> None:
    reader, writer = await _open(node)
    writer.write(
        b"POST /user/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    elapsed, got = await _closed_after(reader, BODY + SLACK)
    assert got == b"" and elapsed < BODY + SLACK
    assert _timeouts(node, "body") == 1 and _timeouts(node, "head") == 0
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(node: Node) -> None:
    reader, writer = await _open(node)
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5 * time_scale())
    assert head.startswith(b"HTTP/1.1 200")
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))[15:]
    )
    await reader.readexactly(length)
    elapsed, got = await _closed_after(reader, KEEPALIVE + SLACK)
    assert got == b"" and elapsed < KEEPALIVE + SLACK
    writer.close()


async def test_keep_alive_requests_in_time_are_all_served(node: Node) -> None:
    """The head deadline is per request: a client that keeps sending requests in time keeps
    its connection for longer than one deadline."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}",
        limits=httpx.Limits(max_connections=1),
    ) as http:
        started = time.monotonic()
        while time.monotonic() - started < HEAD * 2:
            assert (await http.get("/health")).status_code == 200
            await asyncio.sleep(KEEPALIVE / 4)
    assert _timeouts(node, "head") == 0


async def test_a_slow_but_timely_body_is_accepted(node: Node) -> None:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as http:

        async def body() -> AsyncIterator[bytes]:
            for part in (b'{"uid": "slow", ', b'"token": "t", ', b'"device_flag": 1}'):
                yield part
                await asyncio.sleep(BODY / 6)

        r = await http.post(
            "/user/token", content=body(), headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 200, r.text


def _refused(node: Node, rule: str) -> float:
    value = node.metrics.registry.get_sample_value(
        "magpie_refused_total", {"port": "http", "rule": rule}
    )
    return value or 0.0


async def test_a_request_head_above_the_cap_is_answered_400_and_closed(node: Node) -> None:
    reader, writer = await _open(node)
    writer.write(
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 1000) for i in range(20))
        + b"\r\n"
    )
    await writer.drain()
    _, got = await _closed_after(reader, 5 * time_scale())
    assert got.startswith(b"HTTP/1.1 400"), got[:80]
    assert _refused(node, "head_size") == 1
    writer.close()
    # A head below the cap is served.
    reader, writer = await _open(node)
    writer.write(
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 1000) for i in range(12))
        + b"\r\n"
    )
    await writer.drain()
    _, got = await _closed_after(reader, 5 * time_scale())
    assert got.startswith(b"HTTP/1.1 200"), got[:80]
    writer.close()


async def test_pipelined_requests_are_answered_in_order(node: Node) -> None:
    reader, writer = await _open(node)
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    writer.write(request * 2 + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    _, got = await _closed_after(reader, 5 * time_scale())
    assert got.count(b"HTTP/1.1 200") == 3
    assert _timeouts(node, "head") == 0
    writer.close()


async def test_the_http_port_does_not_upgrade_to_websocket(node: Node) -> None:
    reader, writer = await _open(node)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    await writer.drain()
    _, got = await _closed_after(reader, 5 * time_scale())
    assert got.startswith(b"HTTP/1.1 400") and b"gateway port" in got
    writer.close()

"""The HTTP load generator of ``bench/api.py``: its own process, raw HTTP/1.1 on uvloop.

``python bench/httpload.py HOST PORT N KIND [AUTH]`` opens N keep-alive connections, prints
``ready`` and obeys commands on stdin, one per line: ``run SECONDS`` (each connection keeps one
request outstanding for SECONDS) answers ``{"count", "lat_us", "errors"}`` as JSON; ``quit``
exits. A request is a prebuilt byte string (only a counter changes), a response is read by its
``content-length``: the client costs a few µs per request, so it keeps up with the fastest
server it is pointed at (being a separate process pinned by the caller to another core, its
own cost never shows up in the server's CPU time).

KIND:

* ``noop``: ``POST /noop`` with a small JSON body (the plain Starlette baseline).
* ``send``: ``POST /message/send``, a text message from ``s{i}`` to the person ``peer{i}``
  (a new ``client_msg_no`` each time: every request is stored).
* ``extra``: ``POST /message/extra/update``, last-writer-wins ``status`` of message id
  ``ARG`` (a new ``action_id`` each time: every request is applied).
* ``extrasync``: ``POST /message/extra/sync``, the newest ``ARG`` extension rows of alice's
  person channel with bob, read by alice (the same page every time: a reader catching up).
* ``msgsync``: ``POST /channel/messagesync``, the newest ``ARG`` messages (each with its
  extension) of the same channel, read by alice.
* ``convsync``: ``POST /conversation/sync``, alice's conversations with ``ARG`` recent
  messages each.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import Callable

import uvloop

_TEXT = base64.b64encode(json.dumps({"type": 1, "content": "x" * 170}).encode()).decode()


def _body_maker(kind: str, conn: int, arg: str) -> Callable[[int], bytes]:
    if kind == "noop":
        return lambda n: b'{"uids": ["user0001", "user0002"], "n": %d}' % n
    if kind == "send":
        head = (
            f'{{"header": {{"red_dot": 1}}, "from_uid": "s{conn}", "channel_id": "peer{conn}", '
            f'"channel_type": 1, "payload": "{_TEXT}", "client_msg_no": "'
        ).encode()
        return lambda n: head + b'c%d-%d"}' % (conn, n)
    if kind == "extra":
        head = (f'{{"message_id": {arg}, "mode": "lww", "status": "s", "action_id": "').encode()
        return lambda n: head + b'a%d-%d"}' % (conn, n)
    if kind in _READS:
        body = _READS[kind] % int(arg)
        return lambda n: body
    raise SystemExit(f"unknown kind {kind}")


#: The read kinds' bodies (``%d``: the page size); alice reads her channel with bob.
_READS = {
    "extrasync": b'{"login_uid": "alice", "channel_id": "bob", "channel_type": 1, "limit": %d}',
    "msgsync": b'{"login_uid": "alice", "channel_id": "bob", "channel_type": 1, "limit": %d}',
    "convsync": b'{"uid": "alice", "msg_count": %d}',
}
_PATHS = {
    "noop": "/noop",
    "send": "/message/send",
    "extra": "/message/extra/update",
    "extrasync": "/message/extra/sync",
    "msgsync": "/channel/messagesync",
    "convsync": "/conversation/sync",
}


class _Client(asyncio.Protocol):
    """One keep-alive connection with one request outstanding while running."""

    def __init__(self, host: str, path: str, auth: str, body: Callable[[int], bytes]) -> None:
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            + (f"Authorization: Bearer {auth}\r\n" if auth else "")
            + "Content-Length: "
        ).encode()
        self._body = body
        self._n = 0
        self._buf = b""
        self._t0 = 0
        self.transport: asyncio.Transport | None = None
        self.stop = 0.0
        self.lat_us: list[int] = []
        self.errors = 0
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, stop: float) -> asyncio.Future[None]:
        self.stop = stop
        self.lat_us = []
        self.done = asyncio.get_running_loop().create_future()
        self._request()
        return self.done

    def _request(self) -> None:
        self._n += 1
        body = self._body(self._n)
        assert self.transport is not None
        self._t0 = time.perf_counter_ns()
        self.transport.write(self._head + b"%d\r\n\r\n" % len(body) + body)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self._buf = buf
            return
        head = buf[:end].lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 : head.find(b"\r\n", at) if b"\r\n" in head[at:] else None])
        if len(buf) < end + 4 + length:
            self._buf = buf
            return
        self._buf = buf[end + 4 + length :]
        if not head.startswith(b"http/1.1 200"):
            self.errors += 1
            if self.errors < 3:
                print(buf[: end + 4 + length][:300], file=sys.stderr)
        self.lat_us.append((time.perf_counter_ns() - self._t0) // 1000)
        if time.monotonic() < self.stop:
            self._request()
        elif self.done is not None and not self.done.done():
            self.done.set_result(None)


async def main(host: str, port: int, n: int, kind: str, auth: str, arg: str) -> None:
    loop = asyncio.get_running_loop()
    clients = []
    for i in range(n):
        client = _Client(f"{host}:{port}", _PATHS[kind], auth, _body_maker(kind, i, arg))
        await loop.create_connection(lambda c=client: c, host, port)  # type: ignore[misc]
        clients.append(client)
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "quit":
            break
        seconds = float(line.split()[1])
        stop = time.monotonic() + seconds
        await asyncio.gather(*(c.start(stop) for c in clients))
        lat = [x for c in clients for x in c.lat_us]
        errors = sum(c.errors for c in clients)
        print(json.dumps({"count": len(lat), "lat_us": lat, "errors": errors}), flush=True)


if __name__ == "__main__":
    host, port, n, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    auth = sys.argv[5] if len(sys.argv) > 5 else ""
    arg = sys.argv[6] if len(sys.argv) > 6 else ""
    uvloop.run(main(host, port, n, kind, auth, arg))

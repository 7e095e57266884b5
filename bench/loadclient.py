"""The load generator of the benchmarks: its own process, picows on uvloop, callbacks only.

``python bench/loadclient.py MODE URL N [SIZE]`` opens N connections, prints ``ready`` and then
obeys commands on stdin, one per line. Being a separate process (pinned by the caller to
another core than the server), its own cost never shows up in the server's CPU time; being
callback-driven on picows, it keeps up with the fastest server it is pointed at.

URL ``ws://host:port`` speaks WebSocket; ``tcp://host:port`` speaks WuKongIM over plain TCP
(magpie modes only).

Receiving modes (fan-out, memory), answered by ``report`` with the arrival times
(``time.monotonic_ns``, comparable across processes on Linux) of every frame by sequence
number, as JSON:

* ``plain``: bare WebSocket connections; a frame's first 4 bytes are its sequence number.
* ``plain-ack``: the same, answering every frame with a 14-byte frame (a RECVACK's size).
* ``magpie``: WuKongIM clients ``m0..m{N-1}`` (X25519 handshake, AES keys) answering every
  RECV with its RECVACK, as the official SDK does.

Sending modes (send path), answered by ``run SECONDS`` with ``{"count", "lat_us"}`` (each
connection keeps one request outstanding for SECONDS; ``lat_us`` is every round trip, µs):

* ``echo``: a SIZE-byte frame, waiting for the server to echo it.
* ``magpie-send``: WuKongIM clients ``s0..s{N-1}`` sending a sealed SEND to ``peer{i}`` and
  waiting for its SENDACK.

``quit`` (or end of input) exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, cast

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from magpie.protocol.connection import Connection, Role
from magpie.protocol.crypto import KeyPair, SessionCipher, derive_aes_key, seal_send
from magpie.protocol.packets import (
    Connack,
    Connect,
    Flags,
    ReasonCode,
    Recv,
    Recvack,
    Send,
    Sendack,
    Setting,
)

#: The payload of every SEND (the same bytes the fan-out sender uses).
PAYLOAD = json.dumps({"type": 1, "content": "x" * 170}).encode()
_BINARY = WSMsgType.BINARY
_ACK = b"\x00" * 14

arrivals: dict[int, list[int]] = defaultdict(list)


class _Ctx:
    """Shared state of the sending modes: the deadline and the latencies."""

    def __init__(self) -> None:
        self.stop = 0.0
        self.lat_us: list[int] = []
        self.count = 0
        self.running = 0
        self.done: asyncio.Future[None] | None = None

    def finished_one(self) -> None:
        self.running -= 1
        if self.running == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)


class _Wire:
    """Writes to either a picows transport or a plain TCP transport."""

    def __init__(self) -> None:
        self.write: Callable[[bytes], None] = _unset

    def bind_ws(self, transport: WSTransport) -> None:
        send = transport.send
        self.write = lambda data: send(_BINARY, data)

    def bind_tcp(self, transport: asyncio.Transport) -> None:
        self.write = transport.write


def _unset(data: bytes) -> None:
    raise RuntimeError("not connected")


class PlainListener(WSListener):  # type: ignore[misc]
    """A bare receiving connection; records arrivals, optionally acks each frame."""

    def __init__(self, ack: bool) -> None:
        self.ack = ack

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not _BINARY:
            return
        now = time.monotonic_ns()
        arrivals[int.from_bytes(frame.get_payload_as_memoryview()[:4], "big")].append(now)
        if self.ack:
            transport.send(_BINARY, _ACK)


class EchoListener(WSListener):  # type: ignore[misc]
    """One request outstanding: send SIZE bytes, wait for the echo, repeat until the stop."""

    def __init__(self, ctx: _Ctx, size: int) -> None:
        self.ctx = ctx
        self.frame = b"x" * size
        self.transport: WSTransport | None = None
        self.t0 = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def start(self) -> None:
        assert self.transport is not None
        self.t0 = time.perf_counter_ns()
        self.transport.send(_BINARY, self.frame)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not _BINARY:
            return
        ctx = self.ctx
        now = time.perf_counter_ns()
        ctx.lat_us.append((now - self.t0) // 1000)
        ctx.count += 1
        if time.monotonic() < ctx.stop:
            self.t0 = now
            transport.send(_BINARY, self.frame)
        else:
            ctx.finished_one()


class MagpieClient:
    """A WuKongIM client over callbacks: handshake, then RECV -> RECVACK, or SEND loops."""

    def __init__(self, uid: str, ctx: _Ctx | None, peer: str = "") -> None:
        self.uid = uid
        self.ctx = ctx
        self.peer = peer
        self.conn = Connection(Role.CLIENT)
        self.keys = KeyPair.generate()
        self.cipher: SessionCipher | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.wire = _Wire()
        self.seq = 0
        self.t0 = 0

    def hello(self) -> None:
        connect = Connect(
            version=2,
            device_flag=1,
            device_id=secrets.token_hex(8),
            uid=self.uid,
            token="bench",
            client_timestamp=time.time_ns() // 1_000_000,
            client_key=self.keys.public_b64,
        )
        self.wire.write(self.conn.send(connect))

    def data(self, data: bytes) -> None:
        for packet in self.conn.receive_data(data):
            kind = type(packet)
            if kind is Recv:
                arrivals[packet.message_seq].append(time.monotonic_ns())
                ack = Recvack(packet.message_id, packet.message_seq, flags=packet.flags)
                self.wire.write(self.conn.send(ack))
            elif kind is Sendack:
                self._acked(packet)
            elif kind is Connack:
                self._connacked(packet)

    def _connacked(self, ack: Connack) -> None:
        if ack.reason_code != ReasonCode.SUCCESS:
            self.ready.set_exception(RuntimeError(f"CONNECT refused: {ack.reason_code}"))
            return
        key = derive_aes_key(self.keys, ack.server_key)
        self.cipher = SessionCipher(key, ack.salt[:16].encode())
        self.ready.set_result(None)

    def start(self) -> None:
        self.t0 = time.perf_counter_ns()
        self._send()

    def _send(self) -> None:
        assert self.cipher is not None
        self.seq += 1
        plain = Send(
            Setting.NONE,
            self.seq,
            secrets.token_hex(16),
            self.peer,
            1,
            "",
            PAYLOAD,
            flags=Flags.RED_DOT,
        )
        self.wire.write(self.conn.send(seal_send(self.cipher, plain)))

    def _acked(self, ack: Sendack) -> None:
        ctx = self.ctx
        assert ctx is not None
        if ack.reason_code != ReasonCode.SUCCESS:
            raise RuntimeError(f"SEND refused: {ack.reason_code}")
        now = time.perf_counter_ns()
        ctx.lat_us.append((now - self.t0) // 1000)
        ctx.count += 1
        if time.monotonic() < ctx.stop:
            self.t0 = now
            self._send()
        else:
            ctx.finished_one()


class MagpieWsListener(WSListener):  # type: ignore[misc]
    """Carries a :class:`MagpieClient` over picows."""

    def __init__(self, client: MagpieClient) -> None:
        self.client = client

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.client.wire.bind_ws(transport)
        self.client.hello()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is _BINARY:
            self.client.data(frame.get_payload_as_bytes())


class MagpieTcpProtocol(asyncio.Protocol):
    """Carries a :class:`MagpieClient` over plain TCP (the length prefix frames packets)."""

    def __init__(self, client: MagpieClient) -> None:
        self.client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport; it has write().
        self.client.wire.bind_tcp(cast(asyncio.Transport, transport))
        self.client.hello()

    def data_received(self, data: bytes) -> None:
        self.client.data(data)


async def _open(url: str, make: Callable[[], Any]) -> Any:
    if url.startswith("tcp://"):
        host, port = url[len("tcp://") :].rsplit(":", 1)
        client = make()
        await asyncio.get_running_loop().create_connection(
            lambda: MagpieTcpProtocol(client), host, int(port)
        )
        return client
    _, listener = await ws_connect(
        make, url, websocket_handshake_timeout=60, read_buffer_init_size=4096
    )
    return listener


async def _connect_all(mode: str, url: str, n: int, size: int, ctx: _Ctx) -> list[Any]:
    def factory(i: int) -> Callable[[], Any]:
        if mode in ("plain", "plain-ack"):
            return lambda: PlainListener(mode == "plain-ack")
        if mode == "echo":
            return lambda: EchoListener(ctx, size)
        if mode == "magpie":
            client = MagpieClient(f"m{i}", None)
        else:
            client = MagpieClient(f"s{i}", ctx, f"peer{i}")
        if url.startswith("tcp://"):
            return lambda: client
        return lambda: MagpieWsListener(client)

    conns: list[Any] = []
    for start in range(0, n, 100):
        batch = range(start, min(n, start + 100))
        conns += await asyncio.gather(*(_open(url, factory(i)) for i in batch))
    clients = [c.client if isinstance(c, MagpieWsListener) else c for c in conns]
    magpie = [c for c in clients if isinstance(c, MagpieClient)]
    await asyncio.gather(*(c.ready for c in magpie))
    return clients


async def _run(ctx: _Ctx, clients: list[Any], seconds: float) -> dict[str, Any]:
    ctx.lat_us = []
    ctx.count = 0
    ctx.running = len(clients)
    ctx.done = asyncio.get_running_loop().create_future()
    ctx.stop = time.monotonic() + seconds
    for client in clients:
        client.start()
    await ctx.done
    return {"count": ctx.count, "lat_us": ctx.lat_us}


async def main(mode: str, url: str, n: int, size: int) -> None:
    """Connect, then obey stdin."""
    ctx = _Ctx()
    clients = await _connect_all(mode, url, n, size, ctx)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            break
        if line[0] == "report":
            print(json.dumps({str(k): v for k, v in arrivals.items()}), flush=True)
            arrivals.clear()
        elif line[0] == "run":
            print(json.dumps(await _run(ctx, clients, float(line[1]))), flush=True)
    sys.stdout.flush()
    os._exit(0)  # no closing handshakes for thousands of sockets: the server sees EOFs


if __name__ == "__main__":
    size_arg = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    uvloop.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), size_arg))

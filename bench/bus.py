"""The bus between nodes: Magpie's Redis bus beside raw Redis, raw NATS and plain TCP.

Two parts:

1. **Encoding** of one bus event (a 200-byte payload, ten recipients) in this process:
   ``json`` (payload in base64), ``orjson`` (base64), hand-written ``struct`` packing, and
   the bus codec (msgspec MessagePack) — bytes, encode and decode time (p50 of single calls).
2. **One node process to another**: the publisher (this process) sends Delivery events to a
   receiving node (``bench/_bus_peer.py``, another process) over

   * ``tcp``   — a plain length-prefixed TCP stream between the two processes: the floor,
   * ``redis`` — raw ``PUBLISH``/``SUBSCRIBE`` through the Redis server (redis-py),
   * ``nats``  — raw core NATS publish/subscribe through the NATS server (nats-py),
   * ``bus``   — Magpie's ``RedisBus``: presence lookup and routing in Redis (the ROUTE
     script), the node's pump and reader — the whole path a cross-node delivery takes;
     ``bus x100`` names 100 recipients per event, one of them on the receiving node.

   Each transport carries the same frame bytes (the bus codec's). Latency is publish→receive
   (``time.monotonic_ns``, one clock for both processes) at a paced ~2,000 events/s; then
   the maximum rate: 50,000 events as fast as the transport accepts them, timed from the
   first to the last arrival. Lost events are counted.

Servers: Redis at ``MAGPIE_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), NATS at
``MAGPIE_BENCH_NATS_URL`` (default ``nats://127.0.0.1:4222``); a missing one is reported and
skipped. Everything (publisher, receiver, brokers) shares this machine's cores, so the
figures are indicative; compare rows of the same run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from bench._servers import free_port, percentile
from magpie.bus.codec import decode_frame, encode_body, frame
from magpie.bus.interface import Delivery
from magpie.store.interface import StoredMessage

REDIS_URL = os.environ.get("MAGPIE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("MAGPIE_BENCH_NATS_URL", "nats://127.0.0.1:4222")
RATE = 2_000
PACED_SECONDS = float(os.environ.get("MAGPIE_BENCH_BUS_SECONDS", "5"))
BLAST = int(os.environ.get("MAGPIE_BENCH_BUS_BLAST", "50000"))
SUBJECT = "bench.bus.node2"
PAYLOAD = json.dumps({"type": 1, "content": "x" * 170}).encode()  # ~200 bytes


def message(mid: int, phase: str = "run") -> StoredMessage:
    """A delivery's message; ``timestamp`` carries the send time (monotonic ns)."""
    return StoredMessage(
        mid, mid, f"cmn-{mid}", "alice", phase, 2, time.monotonic_ns(), PAYLOAD, 0, 0, "", 0
    )


# --- part 1: encoding ---------------------------------------------------------------------


def _json_codec() -> tuple[Callable[[Delivery], bytes], Callable[[bytes], object]]:
    def enc(d: Delivery) -> bytes:
        m = d.message
        fields = [m.message_id, m.message_seq, m.client_msg_no, m.from_uid, m.channel_id,
                  m.channel_type, m.timestamp, base64.b64encode(m.payload).decode(), m.flags,
                  m.setting, m.topic, m.expire, list(d.recipients)]  # fmt: skip
        return json.dumps(fields, separators=(",", ":")).encode()

    def dec(b: bytes) -> object:
        a = json.loads(b)
        a[7] = base64.b64decode(a[7])
        return Delivery(StoredMessage(*a[:12]), tuple(a[12]))

    return enc, dec


def _orjson_codec() -> tuple[Callable[[Delivery], bytes], Callable[[bytes], object]]:
    def enc(d: Delivery) -> bytes:
        m = d.message
        return orjson.dumps(
            [m.message_id, m.message_seq, m.client_msg_no, m.from_uid, m.channel_id,
             m.channel_type, m.timestamp, base64.b64encode(m.payload).decode(), m.flags,
             m.setting, m.topic, m.expire, list(d.recipients)]
        )  # fmt: skip

    def dec(b: bytes) -> object:
        a = orjson.loads(b)
        a[7] = base64.b64decode(a[7])
        return Delivery(StoredMessage(*a[:12]), tuple(a[12]))

    return enc, dec


_HEAD = struct.Struct(">qqqBBBIH")


def _struct_codec() -> tuple[Callable[[Delivery], bytes], Callable[[bytes], object]]:
    """Fixed fields packed, then length-prefixed strings: what hand-written packing costs."""

    def enc(d: Delivery) -> bytes:
        m = d.message
        strings = [m.client_msg_no, m.from_uid, m.channel_id, m.topic, *d.recipients]
        parts = [_HEAD.pack(m.message_id, m.message_seq, m.timestamp, m.channel_type, m.flags,
                            m.setting, m.expire, len(strings))]  # fmt: skip
        for text in strings:
            raw = text.encode()
            parts.append(len(raw).to_bytes(2, "big") + raw)
        parts.append(m.payload)
        return b"".join(parts)

    def dec(b: bytes) -> object:
        mid, seq, ts, ctype, flags, setting, expire, n = _HEAD.unpack_from(b)
        pos = _HEAD.size
        strings = []
        for _ in range(n):
            size = int.from_bytes(b[pos : pos + 2], "big")
            strings.append(b[pos + 2 : pos + 2 + size].decode())
            pos += 2 + size
        cmn, from_uid, channel, topic, *recipients = strings
        m = StoredMessage(mid, seq, cmn, from_uid, channel, ctype, ts, b[pos:], flags, setting,
                          topic, expire)  # fmt: skip
        return Delivery(m, tuple(recipients))

    return enc, dec


def _bus_codec() -> tuple[Callable[[Delivery], bytes], Callable[[bytes], object]]:
    def enc(d: Delivery) -> bytes:
        return frame(d.recipients, [], encode_body(d, 1))

    def dec(b: bytes) -> object:
        return decode_frame(b)[1]

    return enc, dec


def _p50_ns(fn: Callable[[], object], n: int = 20_000) -> float:
    for _ in range(n // 10):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        fn()
        samples.append(clock() - start)
    return statistics.median(samples)


def encoding() -> None:
    """Part 1: the table of sizes and times."""
    event = Delivery(message(7_234_567_890_123), tuple(f"user{i:04d}" for i in range(10)))
    rows = []
    codecs = {"json": _json_codec(), "orjson": _orjson_codec(), "struct": _struct_codec(),
              "msgspec (bus codec)": _bus_codec()}  # fmt: skip
    for name, (enc, dec) in codecs.items():
        data = enc(event)
        back = dec(data)
        assert isinstance(back, Delivery) and back.message == event.message, name
        rows.append((name, len(data), _p50_ns(lambda e=enc: e(event)),
                     _p50_ns(lambda d=dec, b=data: d(b))))  # fmt: skip
    best = min(r[2] + r[3] for r in rows)
    print(f"\nEncoding one Delivery (payload {len(PAYLOAD)} B, 10 recipients), p50 of single calls")
    print(f"{'codec':<22}{'bytes':>7}{'encode µs':>11}{'decode µs':>11}{'vs fastest':>12}")
    for name, size, enc_ns, dec_ns in rows:
        ratio = (enc_ns + dec_ns) / best
        print(f"{name:<22}{size:>7}{enc_ns / 1000:>11.2f}{dec_ns / 1000:>11.2f}{ratio:>11.2f}×")


# --- part 2: between processes ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase:
    """What the receiver saw in one phase."""

    count: int
    latencies_us: list[float]
    span_s: float


class Peer:
    """The receiving node process."""

    def __init__(self, transport: str, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench._bus_peer", transport, url],
            stdout=subprocess.PIPE,
            text=True,
        )

    async def line(self, timeout: float = 120.0) -> str:
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        readline = self.proc.stdout.readline
        text = await asyncio.wait_for(loop.run_in_executor(None, readline), timeout)
        if not text:
            raise RuntimeError("the receiving node exited")
        return text

    async def phase(self) -> Phase:
        data = json.loads(await self.line())
        return Phase(data["count"], data["latencies_us"], data["span_s"])

    def stop(self) -> None:
        """Let it finish (it withdraws its registrations), else kill it."""
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


#: Sends one Delivery; ``flush`` waits until what was sent has left this process.
Send = Callable[[Delivery], Awaitable[None]]


@dataclass
class Sender:
    send: Send
    flush: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    #: Awaited between bursts of a blast so the sender's own buffers stay bounded.
    backpressure: Callable[[], Awaitable[None]]


def _frame(d: Delivery) -> bytes:
    return frame(d.recipients[-1:], [], encode_body(d, 1))


async def _tcp_sender(port: int) -> Sender:
    _, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send(d: Delivery) -> None:
        data = _frame(d)
        writer.write(len(data).to_bytes(4, "big") + data)

    async def close() -> None:
        writer.close()

    return Sender(send, writer.drain, close, writer.drain)


async def _redis_sender(url: str) -> Sender:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)

    async def send(d: Delivery) -> None:
        pipe.publish(SUBJECT, _frame(d))

    async def flush() -> None:
        if len(pipe):
            await pipe.execute()

    async def close() -> None:
        await client.aclose()

    return Sender(send, flush, close, flush)


async def _nats_sender(url: str) -> Sender:
    import nats

    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)

    async def send(d: Delivery) -> None:
        await nc.publish(SUBJECT, _frame(d))

    async def close() -> None:
        await nc.drain()

    return Sender(send, nc.flush, close, nc.flush)


async def _bus_sender(cluster: str) -> Sender:
    from magpie.bus.redis import RedisBus, RedisBusConfig
    from magpie.metrics import Metrics

    bus = RedisBus(RedisBusConfig(REDIS_URL, cluster, 1, queue_max=100_000), Metrics())
    await bus.start()

    async def flush() -> None:
        while bus.queued:
            await asyncio.sleep(0.0005)

    async def backpressure() -> None:
        while bus.queued > 5_000:
            await asyncio.sleep(0.0005)

    return Sender(bus.publish, flush, bus.close, backpressure)


async def _paced(sender: Sender, recipients: tuple[str, ...], n: int, start_id: int) -> None:
    """``n`` events at :data:`RATE` per second (each loop turn sends whatever is due)."""
    loop = asyncio.get_running_loop()
    begin = loop.time()
    sent = 0
    while sent < n:
        due = min(n, int((loop.time() - begin) * RATE) + 1)
        while sent < due:
            await sender.send(Delivery(message(start_id + sent), recipients))
            sent += 1
        await sender.flush()
        await asyncio.sleep(max(0.0, begin + sent / RATE - loop.time()))


async def _blast(sender: Sender, recipients: tuple[str, ...], n: int, start_id: int) -> float:
    begin = time.perf_counter()
    for i in range(n):
        await sender.send(Delivery(message(start_id + i), recipients))
        if i % 200 == 199:
            await sender.backpressure()
    await sender.flush()
    return time.perf_counter() - begin


async def _end_phase(sender: Sender, recipients: tuple[str, ...], name: str) -> None:
    await sender.send(Delivery(message(0, name), recipients))
    await sender.flush()


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    p50_us: float
    p99_us: float
    lost_paced: int
    rate: float
    lost_blast: int


async def _measure(name: str, peer: Peer, sender: Sender, recipients: tuple[str, ...]) -> Row:
    await _paced(sender, recipients, 500, 1)  # warm-up
    await _end_phase(sender, recipients, "warm")
    await peer.phase()
    n = int(RATE * PACED_SECONDS)
    await _paced(sender, recipients, n, 1_000)
    await _end_phase(sender, recipients, "paced")
    paced = await peer.phase()
    await _blast(sender, recipients, BLAST, 1_000_000)
    await _end_phase(sender, recipients, "blast")
    blast = await peer.phase()
    await _end_phase(sender, recipients, "end")
    lat = paced.latencies_us
    return Row(
        name,
        percentile(lat, 50),
        percentile(lat, 99),
        n - paced.count,
        blast.count / blast.span_s if blast.span_s else float("nan"),
        BLAST - blast.count,
    )


async def _one(name: str) -> Row | str:
    recipients: tuple[str, ...] = ("bob",)
    if name == "tcp":
        port = free_port()
        peer = Peer("tcp", str(port))
    elif name == "redis":
        peer = Peer("redis", REDIS_URL)
    elif name == "nats":
        peer = Peer("nats", NATS_URL)
    else:
        cluster = f"bench-{uuid.uuid4().hex[:8]}"
        peer = Peer("bus", f"{cluster}|{REDIS_URL}")
        if name == "bus x100":
            recipients = (*(f"offline{i}" for i in range(99)), "bob")
    try:
        if (await peer.line()).strip() != "ready":
            return "the receiving node did not start"
        if name == "tcp":
            sender = await _tcp_sender(port)
        elif name == "redis":
            sender = await _redis_sender(REDIS_URL)
        elif name == "nats":
            sender = await _nats_sender(NATS_URL)
        else:
            sender = await _bus_sender(cluster)
        try:
            return await _measure(name, peer, sender, recipients)
        finally:
            await sender.close()
    except (OSError, RuntimeError, TimeoutError) as exc:
        return f"skipped: {type(exc).__name__}: {exc}"
    finally:
        peer.stop()
        if name.startswith("bus"):
            _delete_cluster(cluster)


def _delete_cluster(cluster: str) -> None:
    """Remove whatever the benchmark's cluster left in Redis (never the whole database)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{cluster}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _print(rows: list[tuple[str, Row | str]]) -> None:
    measured = [r for _, r in rows if isinstance(r, Row)]
    floor = min((r.p50_us for r in measured), default=float("nan"))
    print(f"\nOne node process to another: ~{RATE:,}/s for {PACED_SECONDS:g} s, then {BLAST:,} "
          "as fast as accepted")  # fmt: skip
    print(f"{'transport':<11}{'p50 µs':>9}{'p99 µs':>9}{'p50 vs floor':>14}{'lost':>6}"
          f"{'max events/s':>14}{'lost':>7}")  # fmt: skip
    for name, row in rows:
        if isinstance(row, str):
            print(f"{name:<11}{row}")
            continue
        print(f"{name:<11}{row.p50_us:>9.0f}{row.p99_us:>9.0f}{row.p50_us / floor:>13.1f}×"
              f"{row.lost_paced:>6}{row.rate:>14,.0f}{row.lost_blast:>7}")  # fmt: skip


def run() -> None:
    """Both parts; prints the tables."""
    encoding()
    names = os.environ.get("MAGPIE_BENCH_BUS_TRANSPORTS", "tcp,redis,nats,bus,bus x100")
    rows: list[tuple[str, Row | str]] = []
    for name in names.split(","):
        rows.append((name, asyncio.run(_one(name))))
    _print(rows)


if __name__ == "__main__":
    run()

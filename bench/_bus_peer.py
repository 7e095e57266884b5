"""The receiving node of ``python -m bench bus``: ``python -m bench._bus_peer TRANSPORT URL``.

It subscribes the way TRANSPORT does (``tcp``, ``redis``, ``nats``, or ``bus`` = Magpie's
Redis bus with ``bob`` registered), prints ``ready``, decodes every frame with the bus codec,
and records ``now - sent`` (``time.monotonic_ns``: one clock for every process of the machine,
carried in the message's ``timestamp`` field). A message with ``message_id`` 0 ends a phase:
the peer prints one JSON line (count, latencies in µs, first-to-last receive time) and starts
the next; the phase named ``end`` makes it exit.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable

from magpie.bus.codec import decode_frame
from magpie.bus.interface import BusEvent, Delivery

SUBJECT = "bench.bus.node2"
UID = "bob"


class Recorder:
    """Latencies of the current phase; prints and resets at each phase's end marker."""

    def __init__(self, done: asyncio.Event) -> None:
        self.done = done
        self.reset()

    def reset(self) -> None:
        self.latencies_us: list[float] = []
        self.first = 0
        self.last = 0

    def event(self, event: BusEvent) -> None:
        now = time.monotonic_ns()
        if not isinstance(event, Delivery):
            return
        m = event.message
        if m.message_id == 0:
            self.report(m.channel_id)
            return
        if not self.first:
            self.first = now
        self.last = now
        self.latencies_us.append((now - m.timestamp) / 1000)

    def frame(self, data: bytes) -> None:
        self.event(decode_frame(data)[1])

    def report(self, phase: str) -> None:
        line = {
            "phase": phase,
            "count": len(self.latencies_us),
            "latencies_us": self.latencies_us,
            "span_s": (self.last - self.first) / 1e9,
        }
        print(json.dumps(line), flush=True)
        self.reset()
        if phase == "end":
            self.done.set()


async def _tcp(url: str, rec: Recorder) -> Callable[[], object]:
    async def serve(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        while True:
            try:
                size = int.from_bytes(await reader.readexactly(4), "big")
                rec.frame(await reader.readexactly(size))
            except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
                return  # the sender left, or the benchmark is over

    port = int(url)
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    return server.close


async def _redis(url: str, rec: Recorder) -> Callable[[], object]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(SUBJECT)

    async def read() -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "message":
                rec.frame(message["data"])

    task = asyncio.ensure_future(read())
    return task.cancel


async def _nats(url: str, rec: Recorder) -> Callable[[], object]:
    import nats
    from nats.aio.msg import Msg

    nc = await nats.connect(url)

    async def on(msg: Msg) -> None:
        rec.frame(msg.data)

    await nc.subscribe(SUBJECT, cb=on, pending_msgs_limit=1_000_000, pending_bytes_limit=-1)
    await nc.flush()
    return nc.close


async def _bus(url: str, rec: Recorder) -> Callable[[], object]:
    from magpie.bus.redis import RedisBus, RedisBusConfig
    from magpie.metrics import Metrics

    cluster, redis_url = url.split("|", 1)
    bus = RedisBus(RedisBusConfig(redis_url, cluster, 2, queue_max=100_000), Metrics())
    bus.subscribe(rec.event)
    await bus.start()
    await bus.register(UID)
    return bus.close


TRANSPORTS = {"tcp": _tcp, "redis": _redis, "nats": _nats, "bus": _bus}


async def main(transport: str, url: str) -> None:
    done = asyncio.Event()
    rec = Recorder(done)
    close = await TRANSPORTS[transport](url, rec)
    print("ready", flush=True)
    await done.wait()
    result = close()
    if asyncio.iscoroutine(result):
        await result


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

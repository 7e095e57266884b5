"""Fan-out: one message to a group of N online members, Magpie beside plain broadcasts.

Magpie: real WuKongIM clients (encrypted per connection, RECVACK per RECV) in a load-client
process; a sender sends M messages, one every ``gap`` seconds. Baselines, same run, same
frame size: a plain **picows** broadcast on uvloop (the fastest plain Python stack) and a
plain ``websockets`` broadcast, each bare and with a 14-byte ack per frame (what a RECVACK
costs the server to read). Every server is pinned to one core, the load to the other.

The primary figure is **server CPU per delivery** (µs, read from ``/proc``); beside it p50/p99
of the time until the last member has a message. Targets (issue "per-core speed"): CPU ≤ 2.5×
and p99 ≤ 2× the plain picows broadcast.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass

from websockets.asyncio.client import connect

from bench._servers import (
    LOAD_CPUS,
    CpuMeter,
    load_client,
    magpie_server,
    percentile,
    pinning,
    plain_server,
)
from magpie.client.raw import RawClient

MEMBERS = int(os.environ.get("MAGPIE_BENCH_MEMBERS", "1000"))
MESSAGES = 100
GAP = 0.05
PAYLOAD = json.dumps({"type": 1, "content": "x" * 170}).encode()  # ~200 bytes


@dataclass(frozen=True, slots=True)
class Result:
    """One row: latency to the last member, CPU per delivery, deliveries missing."""

    name: str
    p50_ms: float
    p99_ms: float
    cpu_us: float
    missing: int


def _result(name: str, sent: dict[int, int], arrivals: dict[int, list[int]], cpu: float) -> Result:
    complete = [
        max(arrivals[k]) - t0 for k, t0 in sent.items() if len(arrivals.get(k, ())) >= MEMBERS
    ]
    missing = sum(max(0, MEMBERS - len(arrivals.get(k, ()))) for k in sent)
    delivered = len(sent) * MEMBERS - missing
    return Result(
        name,
        percentile(complete, 50) / 1e6,
        percentile(complete, 99) / 1e6,
        cpu / max(1, delivered) * 1e6,
        missing,
    )


async def _magpie(name: str, transport: str) -> Result:
    with magpie_server(token_auth="false") as server:
        members = [f"m{i}" for i in range(MEMBERS)]
        server.api("/channel", {"channel_id": "fan", "channel_type": 2, "subscribers": ["sender"]})
        for i in range(0, MEMBERS, 500):
            server.api(
                "/channel/subscriber_add",
                {"channel_id": "fan", "channel_type": 2, "subscribers": members[i : i + 500]},
            )
        url = server.tcp_url if transport == "tcp" else server.ws_url
        with load_client("magpie", url, MEMBERS) as load:
            sender = RawClient(server.ws_url, "sender", "bench")
            await sender.connect()
            for _ in range(3):  # warm-up
                await sender.send("fan", 2, PAYLOAD)
            await asyncio.sleep(0.5)
            load.report()
            sent: dict[int, int] = {}
            cpu = CpuMeter(server.pid)
            cpu.start()
            for _ in range(MESSAGES):
                t0 = time.monotonic_ns()
                ack = await sender.send("fan", 2, PAYLOAD)
                sent[ack.message_seq] = t0
                await asyncio.sleep(GAP)
            await asyncio.sleep(1.0)
            cpu.stop()
            result = _result(name, sent, load.report(), cpu.seconds)
            await sender.close()
        return result


async def _plain(name: str, lib: str, mode: str, frame_size: int) -> Result:
    with (
        plain_server(lib, "broadcast") as server,
        load_client(mode, server.ws_url, MEMBERS) as load,
    ):
        async with connect(server.ws_url, compression=None) as sender:
            for seq in range(1000, 1003):  # warm-up
                await sender.send(seq.to_bytes(4, "big") + b"x" * (frame_size - 4))
            await asyncio.sleep(0.5)
            load.report()
            sent: dict[int, int] = {}
            cpu = CpuMeter(server.pid)
            cpu.start()
            for seq in range(1, MESSAGES + 1):
                sent[seq] = time.monotonic_ns()
                await sender.send(seq.to_bytes(4, "big") + b"x" * (frame_size - 4))
                await asyncio.sleep(GAP)
            await asyncio.sleep(1.0)
            cpu.stop()
        return _result(name, sent, load.report(), cpu.seconds)


def _recv_frame_size() -> int:
    from magpie.protocol.codec import encode
    from magpie.protocol.crypto import SessionCipher, seal_recv
    from magpie.protocol.packets import Recv, Setting

    cipher = SessionCipher(b"0123456789abcdef", b"abcdef0123456789")
    recv = Recv(Setting.NONE, "", "sender", "fan", 2, "c" * 33, 1 << 60, 1, 1_700_000_000, PAYLOAD)
    return len(encode(seal_recv(cipher, recv)))


def measure(transports: tuple[str, ...] = ("ws", "tcp")) -> list[Result]:
    """Every baseline, then Magpie over each transport; one server at a time."""
    frame = _recv_frame_size()
    rows = [
        asyncio.run(_plain("plain picows broadcast", "picows", "plain", frame)),
        asyncio.run(_plain("plain picows + 14 B acks", "picows", "plain-ack", frame)),
        asyncio.run(_plain("plain websockets broadcast", "websockets", "plain", frame)),
        asyncio.run(_plain("plain websockets + acks", "websockets", "plain-ack", frame)),
    ]
    for transport in transports:
        label = "WebSocket" if transport == "ws" else "TCP"
        rows.append(asyncio.run(_magpie(f"magpie {label} (AES, RECVACK)", transport)))
    return rows


def _print(rows: list[Result]) -> None:
    base = rows[0]
    print(f"{'':32}{'CPU µs/deliv':>13}{'x picows':>9}{'p50 ms':>9}{'p99 ms':>9}{'missing':>9}")
    for r in rows:
        print(
            f"{r.name:32}{r.cpu_us:>13.2f}{r.cpu_us / base.cpu_us:>8.2f}x"
            f"{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.missing:>9}"
        )
    for r in rows[4:]:
        print(
            f"{r.name}: CPU {r.cpu_us / base.cpu_us:.2f}x the plain picows broadcast "
            f"(target ≤ 2.5x), p99 {r.p99_ms / base.p99_ms:.2f}x (target ≤ 2x); "
            f"{r.cpu_us / rows[2].cpu_us:.2f}x the plain websockets broadcast"
        )


def run() -> None:
    """Run the baselines and Magpie and print the comparison."""
    os.sched_setaffinity(0, LOAD_CPUS)  # the sender too stays off the server's core
    print(f"fan-out: {MEMBERS} members, {MESSAGES} messages every {GAP * 1000:.0f} ms, "
          f"RECV frame {_recv_frame_size()} B; {pinning()}")  # fmt: skip
    transports = tuple(os.environ.get("MAGPIE_BENCH_TRANSPORTS", "ws,tcp").split(","))
    _print(measure(transports))


if __name__ == "__main__":
    run()

"""Fan-out: one message to a group of N online members, Magpie beside a plain broadcast.

Magpie: real WuKongIM clients (encrypted per connection, RECVACK per RECV) in a load-client
process; a sender sends M messages, one every ``gap`` seconds. Baseline: the same WebSocket
library broadcasting frames of the same size to N bare connections. Reported: p50/p99 time
until all N members have a message, and server CPU µs per delivery; targets p99 ≤ 1.5× and
CPU ≤ 2× the baseline.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

from bench._servers import cpu_seconds, magpie_server, percentile, plain_server
from magpie.client.raw import RawClient

MEMBERS = 1000
MESSAGES = 60
GAP = 0.06
PAYLOAD = json.dumps({"type": 1, "content": "x" * 170}).encode()  # ~200 bytes


def _start_load(mode: str, url: str, n: int) -> subprocess.Popen[str]:
    script = Path(__file__).with_name("loadclient.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), mode, url, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"load client failed: {line!r}")
    return proc


def _report(proc: subprocess.Popen[str]) -> dict[int, list[int]]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("report\n")
    proc.stdin.flush()
    return {int(k): v for k, v in json.loads(proc.stdout.readline()).items()}


def _quit(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    proc.wait(timeout=30)


def _summarise(sent: dict[int, int], arrivals: dict[int, list[int]], n: int) -> dict[str, float]:
    complete = [max(arrivals[k]) - t0 for k, t0 in sent.items() if len(arrivals.get(k, [])) >= n]
    missing = sum(n - len(arrivals.get(k, [])) for k in sent)
    return {
        "p50_ms": percentile(complete, 50) / 1e6,
        "p99_ms": percentile(complete, 99) / 1e6,
        "complete": len(complete),
        "missing": missing,
    }


async def _magpie_run() -> tuple[dict[str, float], float, int]:
    with magpie_server(token_auth="false") as server:
        members = [f"m{i}" for i in range(MEMBERS)]
        server.api("/channel", {"channel_id": "fan", "channel_type": 2, "subscribers": ["sender"]})
        for i in range(0, MEMBERS, 500):
            server.api(
                "/channel/subscriber_add",
                {"channel_id": "fan", "channel_type": 2, "subscribers": members[i : i + 500]},
            )
        load = _start_load("magpie", server.ws_url, MEMBERS)
        sender = RawClient(server.ws_url, "sender", "bench")
        await sender.connect()
        for _ in range(3):  # warm-up
            await sender.send("fan", 2, PAYLOAD)
        await asyncio.sleep(0.5)
        _report(load)
        sent: dict[int, int] = {}
        cpu0 = cpu_seconds(server.pid)
        for _ in range(MESSAGES):
            t0 = time.monotonic_ns()
            ack = await sender.send("fan", 2, PAYLOAD)
            sent[ack.message_seq] = t0
            await asyncio.sleep(GAP)
        await asyncio.sleep(1.0)
        cpu = cpu_seconds(server.pid) - cpu0
        summary = _summarise(sent, _report(load), MEMBERS)
        await sender.close()
        _quit(load)
        return summary, cpu, MESSAGES * MEMBERS


async def _plain_run(frame_size: int, mode: str) -> tuple[dict[str, float], float, int]:
    with plain_server("broadcast") as server:
        load = _start_load(mode, server.ws_url, MEMBERS)
        async with connect(server.ws_url, compression=None) as sender:
            for seq in range(1000, 1003):
                await sender.send(seq.to_bytes(4, "big") + b"x" * (frame_size - 4))
            await asyncio.sleep(0.5)
            _report(load)
            sent: dict[int, int] = {}
            cpu0 = cpu_seconds(server.pid)
            for seq in range(1, MESSAGES + 1):
                sent[seq] = time.monotonic_ns()
                await sender.send(seq.to_bytes(4, "big") + b"x" * (frame_size - 4))
                await asyncio.sleep(GAP)
            await asyncio.sleep(1.0)
            cpu = cpu_seconds(server.pid) - cpu0
        summary = _summarise(sent, _report(load), MEMBERS)
        _quit(load)
        return summary, cpu, MESSAGES * MEMBERS


def _recv_frame_size() -> int:
    from magpie.protocol.codec import encode
    from magpie.protocol.crypto import SessionCipher, seal_recv
    from magpie.protocol.packets import Recv, Setting

    cipher = SessionCipher(b"0123456789abcdef", b"abcdef0123456789")
    recv = Recv(Setting.NONE, "", "sender", "fan", 2, "c" * 33, 1 << 60, 1, 1_700_000_000, PAYLOAD)
    return len(encode(seal_recv(cipher, recv)))


def _line(name: str, r: dict[str, float], us: float) -> str:
    return f"{name:30}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{us:>18.2f}{r['missing']:>9.0f}"


def run() -> None:
    """Run the baselines and Magpie and print the comparison."""
    frame = _recv_frame_size()
    plain, plain_cpu, n = asyncio.run(_plain_run(frame, "plain"))
    acked, acked_cpu, _ = asyncio.run(_plain_run(frame, "plain-ack"))
    magpie, magpie_cpu, _ = asyncio.run(_magpie_run())
    plain_us, acked_us, magpie_us = (c / n * 1e6 for c in (plain_cpu, acked_cpu, magpie_cpu))
    print(f"fan-out: {MEMBERS} members, {MESSAGES} messages, RECV frame {frame} B")
    print(f"{'':30}{'p50 ms':>10}{'p99 ms':>10}{'CPU µs/delivery':>18}{'missing':>9}")
    print(_line("plain broadcast (baseline)", plain, plain_us))
    print(_line("plain broadcast + 14 B acks", acked, acked_us))
    print(_line("magpie (AES+msgKey, RECVACK)", magpie, magpie_us))
    print(
        f"magpie/plain: p99 {magpie['p99_ms'] / plain['p99_ms']:.2f}x (target ≤ 1.5x), "
        f"CPU {magpie_us / plain_us:.2f}x (target ≤ 2x); "
        f"vs plain+acks: p99 {magpie['p99_ms'] / acked['p99_ms']:.2f}x, "
        f"CPU {magpie_us / acked_us:.2f}x"
    )


if __name__ == "__main__":
    run()

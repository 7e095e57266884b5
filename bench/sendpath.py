"""Send path: persisted, acknowledged sends per second from C connections, beside the same
WebSocket library's plain echo rate (target ≥ 0.5×).

Each connection sends one message at a time and waits for its SENDACK (Magpie: decrypt,
authorize, dedupe, seq, durable commit with the default ``synchronous=FULL``) or its echo
(baseline). The peers are offline, so the figure is the send path alone.
"""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.client import connect

from bench._servers import magpie_server, percentile, plain_server
from magpie.client.raw import RawClient

CONNECTIONS = 100
SECONDS = 5.0
PAYLOAD = json.dumps({"type": 1, "content": "x" * 170}).encode()


async def _loop_magpie(client: RawClient, peer: str, stop: float, lat: list[float]) -> int:
    n = 0
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        ack = await client.send(peer, 1, PAYLOAD)
        assert ack.reason_code == 1, ack
        lat.append(time.perf_counter() - t0)
        n += 1
    return n


async def _magpie(synchronous: str) -> tuple[float, list[float]]:
    with magpie_server(token_auth="false", sqlite_synchronous=synchronous) as server:
        clients = [RawClient(server.ws_url, f"s{i}", "bench") for i in range(CONNECTIONS)]
        await asyncio.gather(*(c.connect(timeout=60) for c in clients))
        lat: list[float] = []
        stop = time.monotonic() + 0.5  # warm-up
        await asyncio.gather(
            *(_loop_magpie(c, f"peer{i}", stop, []) for i, c in enumerate(clients))
        )
        t0 = time.monotonic()
        counts = await asyncio.gather(
            *(_loop_magpie(c, f"peer{i}", t0 + SECONDS, lat) for i, c in enumerate(clients))
        )
        rate = sum(counts) / (time.monotonic() - t0)
        await asyncio.gather(*(c.close() for c in clients))
        return rate, lat


async def _plain() -> tuple[float, list[float]]:
    with plain_server("echo") as server:
        conns = [await connect(server.ws_url, compression=None) for _ in range(CONNECTIONS)]
        frame = b"x" * 300
        lat: list[float] = []

        async def loop(ws, stop: float) -> int:  # type: ignore[no-untyped-def]
            n = 0
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                await ws.send(frame)
                await ws.recv()
                lat.append(time.perf_counter() - t0)
                n += 1
            return n

        t0 = time.monotonic()
        counts = await asyncio.gather(*(loop(ws, t0 + SECONDS) for ws in conns))
        rate = sum(counts) / (time.monotonic() - t0)
        for ws in conns:
            await ws.close()
        return rate, lat


def _row(name: str, rate: float, lat: list[float], base: float) -> str:
    return (
        f"{name:28}{rate:>10.0f}{percentile(lat, 50) * 1e3:>10.2f}"
        f"{percentile(lat, 99) * 1e3:>10.2f}{rate / base:>9.2f}x"
    )


def run() -> None:
    """Run the baseline and Magpie (FULL and NORMAL durability) and print the comparison."""
    plain_rate, plain_lat = asyncio.run(_plain())
    full_rate, full_lat = asyncio.run(_magpie("FULL"))
    normal_rate, normal_lat = asyncio.run(_magpie("NORMAL"))
    print(f"send path: {CONNECTIONS} connections, {SECONDS:.0f} s each, 1 outstanding per conn")
    print(f"{'':28}{'msgs/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'ratio':>10}")
    print(_row("plain echo (baseline)", plain_rate, plain_lat, plain_rate))
    print(_row("magpie synchronous=FULL", full_rate, full_lat, plain_rate))
    print(_row("magpie synchronous=NORMAL", normal_rate, normal_lat, plain_rate))
    print("target: magpie ≥ 0.5x the plain echo rate")


if __name__ == "__main__":
    run()

"""The load client of the fan-out and memory benchmarks (runs in its own process).

``python bench/loadclient.py MODE URL N [API_URL]`` opens N connections and prints ``ready``.
MODE ``magpie``: real WuKongIM clients (handshake, X25519/AES keys, RECVACK for each RECV).
MODE ``plain``: bare WebSocket connections; ``plain-ack``: the same, answering every frame
with a 14-byte frame (the size of a RECVACK), so the baseline server also reads one ack per
delivery. For every received frame it records the arrival
time (``time.monotonic_ns``, comparable across processes on Linux) under the message's
sequence number; on ``report`` (stdin) it prints them as JSON; on ``quit`` it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import defaultdict

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from magpie.client.raw import RawClient
from magpie.protocol.codec import decode
from magpie.protocol.packets import Recv, Recvack

arrivals: dict[int, list[int]] = defaultdict(list)


def plain_seq(data: bytes) -> int:
    return int.from_bytes(data[:4], "big")


async def plain_conn(url: str, ack: bool) -> ClientConnection:
    ws = await connect(url, compression=None, max_size=None, open_timeout=60)

    async def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            await _read_plain(ws, ack)

    asyncio.get_running_loop().create_task(read())
    return ws


async def _read_plain(ws: ClientConnection, ack: bool) -> None:
    async for data in ws:
        arrivals[plain_seq(bytes(data))].append(time.monotonic_ns())
        if ack:  # the same 14 bytes a RECVACK has
            await ws.send(bytes(data[:14]))


async def magpie_conn(url: str, uid: str) -> RawClient:
    client = RawClient(url, uid, "bench", auto_ack=False)
    await client.connect(timeout=60)
    assert client._ws is not None
    ws = client._ws
    client._reader.cancel()  # type: ignore[union-attr]

    async def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            await _read_magpie(ws, client)

    asyncio.get_running_loop().create_task(read())
    return client


async def _read_magpie(ws: ClientConnection, client: RawClient) -> None:
    async for data in ws:
        now = time.monotonic_ns()
        packet = decode(bytes(data))
        if isinstance(packet, Recv):
            arrivals[packet.message_seq].append(now)
            ack = Recvack(packet.message_id, packet.message_seq, flags=packet.flags)
            await ws.send(client.conn.send(ack))


async def main(mode: str, url: str, n: int) -> None:
    conns = []
    for start in range(0, n, 100):
        batch = range(start, min(n, start + 100))
        if mode in ("plain", "plain-ack"):
            conns += await asyncio.gather(*(plain_conn(url, mode == "plain-ack") for _ in batch))
        else:
            conns += await asyncio.gather(*(magpie_conn(url, f"m{i}") for i in batch))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line == "report":
            print(json.dumps({str(k): v for k, v in arrivals.items()}), flush=True)
            arrivals.clear()
        elif line in ("quit", ""):
            return


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))

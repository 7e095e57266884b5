"""The baseline server: the ``websockets`` library with no IM logic at all.

``broadcast`` mode: a binary message from any connection is written to every other
connection with ``websockets.broadcast`` (the floor for fan-out); frames of at most 16 bytes
are acknowledgements from the load client, read and dropped. ``echo`` mode: each binary
message is sent back to its sender (the floor for the send path).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

_ACK_SIZE = 16


async def main(mode: str, port: int) -> None:
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            async for data in ws:
                if mode == "echo":
                    await ws.send(data)
                elif len(data) > _ACK_SIZE:  # short frames are acks: read and dropped
                    broadcast([c for c in clients if c is not ws], data)
        except ConnectionClosed:
            pass  # the load client exits without a closing handshake
        finally:
            clients.discard(ws)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with serve(
        handler, "127.0.0.1", port, compression=None, ping_interval=None, max_size=None
    ):
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

"""The baseline servers: a WebSocket library with no IM logic at all.

``python bench/plain_server.py LIB MODE PORT`` with LIB ``picows`` (callback API on uvloop,
the fastest plain Python stack measured) or ``websockets`` (its asyncio API on the default
loop), MODE:

* ``broadcast``: a binary message from any connection is written to every other connection
  (picows: ``send`` per connection; websockets: ``broadcast``) — the floor for fan-out. Frames
  of at most 16 bytes are acknowledgements from the load client, read and dropped.
* ``echo``: each binary message is sent back to its sender — the floor for the send path.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

_ACK_SIZE = 16


async def _websockets(mode: str, port: int, stop: asyncio.Event) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed

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

    async with serve(
        handler, "127.0.0.1", port, compression=None, ping_interval=None, max_size=None
    ):
        await stop.wait()


async def _picows(mode: str, port: int, stop: asyncio.Event) -> None:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    binary = WSMsgType.BINARY
    clients: set[WSTransport] = set()

    class Broadcast(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: WSTransport) -> None:
            clients.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            clients.discard(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is not binary or frame.payload_size <= _ACK_SIZE:
                return
            data = frame.get_payload_as_bytes()
            for client in clients:
                if client is not transport:
                    client.send(binary, data)

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is binary:
                transport.send(binary, frame.get_payload_as_memoryview())

    listener = Broadcast if mode == "broadcast" else Echo
    server = await ws_create_server(lambda _request: listener(), "127.0.0.1", port)
    async with server:
        await stop.wait()


async def main(lib: str, mode: str, port: int) -> None:
    """Serve until SIGTERM."""
    # The load client leaves without closing handshakes; writes to its dead sockets are
    # expected and would print one asyncio warning each.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await (_picows if lib == "picows" else _websockets)(mode, port, stop)


if __name__ == "__main__":
    lib_arg, mode_arg, port_arg = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if lib_arg == "picows":
        import uvloop

        uvloop.run(main(lib_arg, mode_arg, port_arg))
    else:
        asyncio.run(main(lib_arg, mode_arg, port_arg))

"""Idle memory per authenticated connection at N connections (target ≤ 20 KB), beside plain
picows and ``websockets`` servers holding N bare connections.

The figure is the server's RSS growth divided by N, read after the connections are open and
idle; the load runs in its own process (``MAGPIE_BENCH_CONNECTIONS`` sets N, default 10,000).
"""

from __future__ import annotations

import os
import time

from bench._servers import LOAD_CPUS, load_client, magpie_server, plain_server, rss_bytes

CONNECTIONS = int(os.environ.get("MAGPIE_BENCH_CONNECTIONS", "10000"))
TARGET_KB = 20


def _measure(server_pid: int, mode: str, url: str) -> float:
    time.sleep(0.5)
    before = rss_bytes(server_pid)
    with load_client(mode, url, CONNECTIONS):
        time.sleep(2.0)
        after = rss_bytes(server_pid)
    return (after - before) / CONNECTIONS


def measure(transports: tuple[str, ...] = ("ws", "tcp")) -> list[tuple[str, float]]:
    """Bytes per connection: the plain servers, then Magpie over each transport."""
    rows = []
    for lib in ("picows", "websockets"):
        with plain_server(lib, "broadcast") as server:
            rows.append((f"plain {lib} connection", _measure(server.pid, "plain", server.ws_url)))
    for transport in transports:
        with magpie_server(token_auth="false") as server:
            url = server.tcp_url if transport == "tcp" else server.ws_url
            label = "WebSocket" if transport == "ws" else "TCP"
            rows.append((f"magpie session, {label}", _measure(server.pid, "magpie", url)))
    return rows


def run() -> None:
    """Measure and print KB per connection."""
    os.sched_setaffinity(0, LOAD_CPUS)
    transports = tuple(os.environ.get("MAGPIE_BENCH_TRANSPORTS", "ws,tcp").split(","))
    rows = measure(transports)
    print(f"idle memory at {CONNECTIONS} connections (server RSS growth / connection):")
    for name, per in rows:
        target = f"   (target ≤ {TARGET_KB} KB)" if name.startswith("magpie") else ""
        print(f"  {name:32}{per / 1024:8.1f} KB{target}")


if __name__ == "__main__":
    run()

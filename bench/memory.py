"""Idle memory per authenticated connection at N connections (target ≤ 50 KB), beside the
same WebSocket library holding N bare connections."""

from __future__ import annotations

import os
import time

from bench._servers import magpie_server, plain_server, rss_bytes
from bench.fanout import _quit, _start_load

CONNECTIONS = int(os.environ.get("MAGPIE_BENCH_CONNECTIONS", "10000"))


def _measure(server_pid: int, mode: str, url: str) -> float:
    before = rss_bytes(server_pid)
    load = _start_load(mode, url, CONNECTIONS)
    time.sleep(2.0)
    after = rss_bytes(server_pid)
    _quit(load)
    return (after - before) / CONNECTIONS


def run() -> None:
    """Measure both and print KB per connection."""
    with plain_server("broadcast") as server:
        plain = _measure(server.pid, "plain", server.ws_url)
    with magpie_server(token_auth="false") as server:
        magpie = _measure(server.pid, "magpie", server.ws_url)
    print(f"idle memory at {CONNECTIONS} connections (server RSS growth / connection):")
    print(f"  plain websockets connection   {plain / 1024:8.1f} KB")
    print(f"  magpie authenticated session  {magpie / 1024:8.1f} KB   (target ≤ 50 KB)")
    print(f"  ratio magpie/plain            {magpie / plain:8.2f}x")


if __name__ == "__main__":
    run()

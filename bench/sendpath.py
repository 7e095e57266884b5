"""Send path: persisted, acknowledged sends from C connections, beside plain echoes.

Each connection keeps one request outstanding: Magpie gets a sealed SEND and answers SENDACK
after decrypting, authorising, deduplicating, numbering and durably committing it (the
default ``synchronous=FULL``; the peers are offline, so this is the send path alone); the
baselines, a plain **picows** echo on uvloop and a plain ``websockets`` echo, send the same
number of bytes back. The load runs in its own process on another core than the server.

The primary figure is **server CPU per acked send** (µs, read from ``/proc``), beside the
rate and p50/p99 round trips. Two more rows run FULL over WebSocket with ``webhook_url`` set
(a receiver in this process answers 200), so every send also commits its ``msg.notify`` and
``msg.offline`` jobs (the peers are offline): ``outbox`` with a batch interval longer than
the run (the send path's own cost: the job rows in its transaction), ``webhooks`` with the
default 0.5 s, the node's dispatcher posting them meanwhile on the same core (its CPU
included). Compare both with ``magpie WebSocket FULL`` (webhooks off).
Targets (issue "per-core speed", FULL durability, 100 connections): CPU ≤ 6× and rate
≥ 0.35× the plain picows echo.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench._servers import (
    LOAD_CPUS,
    CpuMeter,
    load_client,
    magpie_server,
    percentile,
    pinning,
    plain_server,
)

CONNECTIONS = 100
SECONDS = float(os.environ.get("MAGPIE_BENCH_SECONDS", "5"))


@dataclass(frozen=True, slots=True)
class Result:
    """One row: rate, CPU per request, round-trip percentiles."""

    name: str
    rate: float
    cpu_us: float
    p50_ms: float
    p99_ms: float
    #: µs per request: the event loop (the main thread), the other threads (the store's).
    split: tuple[float, float] = (0.0, 0.0)


def _send_frame_size() -> int:
    from bench.loadclient import PAYLOAD
    from magpie.protocol.codec import encode
    from magpie.protocol.crypto import SessionCipher, seal_send
    from magpie.protocol.packets import Send, Setting

    cipher = SessionCipher(b"0123456789abcdef", b"abcdef0123456789")
    send = Send(Setting.NONE, 1, "c" * 32, "peer1", 1, "", PAYLOAD)
    return len(encode(seal_send(cipher, send)))


def _drive(name: str, pid: int, mode: str, url: str, size: int = 300) -> Result:
    with load_client(mode, url, CONNECTIONS, size) as load:
        load.command("run 0.5")  # warm-up
        cpu = CpuMeter(pid)
        cpu.start()
        answer = load.command(f"run {SECONDS}")
        cpu.stop()
    assert isinstance(answer, dict)
    count, lat = int(answer["count"]), [x / 1000 for x in answer["lat_us"]]
    per = 1e6 / max(1, count)
    loop = cpu.threads.get("main", 0.0) * per
    return Result(
        name,
        count / SECONDS,
        cpu.seconds * per,
        percentile(lat, 50),
        percentile(lat, 99),
        (loop, cpu.seconds * per - loop),
    )


def _plain(name: str, lib: str, size: int) -> Result:
    with plain_server(lib, "echo") as server:
        return _drive(name, server.pid, "echo", server.ws_url, size)


class _Hook(BaseHTTPRequestHandler):
    """A webhook receiver that reads the body and answers 200 (keep-alive)."""

    protocol_version = "HTTP/1.1"
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def _receiver() -> Iterator[str]:
    """A webhook receiver on a free port (a thread of this process, on the load cores)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _magpie(name: str, transport: str, synchronous: str, **settings: object) -> Result:
    # The SEND rate limit stays on (its check runs for every SEND: part of the cost measured)
    # with a ceiling no benchmark connection reaches.
    settings = {"send_rate": 1_000_000, "send_burst": 1_000_000, **settings}
    with magpie_server(token_auth="false", sqlite_synchronous=synchronous, **settings) as server:
        url = server.tcp_url if transport == "tcp" else server.ws_url
        return _drive(name, server.pid, "magpie-send", url)


def _with_webhooks(name: str, batch_interval: float) -> Result:
    """FULL over WebSocket with webhooks on (see the module docstring)."""
    with _receiver() as hook:
        before = _Hook.received
        row = _magpie(name, "ws", "FULL", webhook_url=hook, webhook_batch_interval=batch_interval)
        print(f"{name}: the receiver got {_Hook.received - before} webhook requests")
        return row


def measure(transports: tuple[str, ...] = ("ws", "tcp")) -> list[Result]:
    """The baselines, then Magpie (FULL over each transport, NORMAL over WebSocket)."""
    size = _send_frame_size()
    rows = [
        _plain("plain picows echo", "picows", size),
        _plain("plain websockets echo", "websockets", size),
    ]
    for transport in transports:
        label = "WebSocket" if transport == "ws" else "TCP"
        rows.append(_magpie(f"magpie {label} FULL", transport, "FULL"))
    rows.append(_magpie("magpie WebSocket NORMAL", "ws", "NORMAL"))
    rows.append(_with_webhooks("magpie WebSocket FULL outbox", 3600.0))
    rows.append(_with_webhooks("magpie WebSocket FULL webhooks", 0.5))
    return rows


def _print(rows: list[Result]) -> None:
    base = rows[0]
    print(f"{'':32}{'CPU µs/req':>11}{'x picows':>9}{'req/s':>9}{'x picows':>9}"
          f"{'p50 ms':>8}{'p99 ms':>8}")  # fmt: skip
    for r in rows:
        print(
            f"{r.name:32}{r.cpu_us:>11.1f}{r.cpu_us / base.cpu_us:>8.2f}x{r.rate:>9.0f}"
            f"{r.rate / base.rate:>8.2f}x{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}"
        )
    print("where a Magpie send's server CPU goes (µs per acked send, by thread):")
    for r in rows[2:]:
        loop, rest = r.split
        print(f"  {r.name:30} event loop {loop:6.1f}  store threads (SQLite writer, readers) "
              f"{rest:6.1f}")  # fmt: skip
    for r in rows[2:]:
        if "FULL" in r.name:
            print(
                f"{r.name}: CPU per acked send {r.cpu_us / base.cpu_us:.2f}x the plain picows "
                f"echo (target ≤ 6x), rate {r.rate / base.rate:.2f}x (target ≥ 0.35x)"
            )


def run() -> None:
    """Run the baselines and Magpie and print the comparison."""
    os.sched_setaffinity(0, LOAD_CPUS)
    print(f"send path: {CONNECTIONS} connections, 1 outstanding each, {SECONDS:.0f} s, "
          f"SEND frame {_send_frame_size()} B; {pinning()}")  # fmt: skip
    transports = tuple(os.environ.get("MAGPIE_BENCH_TRANSPORTS", "ws,tcp").split(","))
    _print(measure(transports))


if __name__ == "__main__":
    run()

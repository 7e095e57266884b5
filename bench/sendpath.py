"""Send path: persisted, acknowledged sends from C connections, beside plain echoes.

Each connection keeps one request outstanding: Magpie gets a sealed SEND and answers SENDACK
after decrypting, authorising, deduplicating, numbering and durably committing it (the
default ``synchronous=FULL``; the peers are offline, so this is the send path alone); the
baselines, a plain **picows** echo on uvloop and a plain ``websockets`` echo, send the same
number of bytes back. The load runs in its own process on another core than the server.

The primary figure is **server CPU per acked send** (µs, read from ``/proc``), beside the
rate and p50/p99 round trips. Targets (issue "per-core speed", FULL durability, 100
connections): CPU ≤ 6× and rate ≥ 0.35× the plain picows echo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    return Result(
        name,
        count / SECONDS,
        cpu.seconds / max(1, count) * 1e6,
        percentile(lat, 50),
        percentile(lat, 99),
    )


def _plain(name: str, lib: str, size: int) -> Result:
    with plain_server(lib, "echo") as server:
        return _drive(name, server.pid, "echo", server.ws_url, size)


def _magpie(name: str, transport: str, synchronous: str) -> Result:
    with magpie_server(token_auth="false", sqlite_synchronous=synchronous) as server:
        url = server.tcp_url if transport == "tcp" else server.ws_url
        return _drive(name, server.pid, "magpie-send", url)


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
    return rows


def _print(rows: list[Result]) -> None:
    base = rows[0]
    print(f"{'':26}{'CPU µs/req':>11}{'x picows':>9}{'req/s':>9}{'x picows':>9}"
          f"{'p50 ms':>8}{'p99 ms':>8}")  # fmt: skip
    for r in rows:
        print(
            f"{r.name:26}{r.cpu_us:>11.1f}{r.cpu_us / base.cpu_us:>8.2f}x{r.rate:>9.0f}"
            f"{r.rate / base.rate:>8.2f}x{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}"
        )
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

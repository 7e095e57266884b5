"""Run benchmarks: ``python -m bench [name ...]``; every one when no name is given.

``python -m bench --list`` prints the available names. A benchmark is a module of this
package with a ``run() -> None`` function that prints its own table, and an entry in
:data:`BENCHMARKS` (name -> (module, one-line description)); modules are imported only when
run, so one benchmark's dependencies never slow down or break another.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: name -> (module, description). Add new benchmarks here.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "protocol": (
        "bench.protocol",
        "codec + crypto hot path: RECV seal+encode, SEND decode+open, vs bare AES-CBC",
    ),
    "fanout": (
        "bench.fanout",
        "one message to 1,000 online members: server CPU/delivery vs plain picows and websockets",
    ),
    "sendpath": (
        "bench.sendpath",
        "acked sends from 100 connections: server CPU/send vs plain picows and websockets echoes",
    ),
    "memory": (
        "bench.memory",
        "idle memory per authenticated connection at 10,000 connections (≤ 20 KB)",
    ),
    "ext": (
        "bench.ext",
        "extension sync time vs history length (10^3..10^6), CAS updates/s with CMD fan-out",
    ),
    "api": (
        "bench.api",
        "request-body validation vs plain checks (and msgspec); API requests vs Starlette",
    ),
    "sdk": ("bench.sdk", "SDK cold sync of 10,000 messages + extensions; warm reconnect"),
    "cards": (
        "bench.cards",
        "1,000 then 10,000 members vote on one card (1,000 ballots/s); 150 online clients",
    ),
    "convo": (
        "bench.convo",
        "1,000 members react to / read one message in 1 s; 150 online converge; vs CAS updates",
    ),
    "search": (
        "bench.search",
        "search p50/p99 at 10^5 and 10^6 messages: SQLite FTS5, PostgreSQL; index trigger cost",
    ),
    "cardtypes": (
        "bench.cardtypes",
        "registered card type (declared transitions) vs vote@1 actions/s; callback latency",
    ),
    "pgstore": (
        "bench.pgstore",
        "PostgreSQL store: acked appends/s from 100 senders vs raw asyncpg inserts and SQLite",
    ),
    "guards": (
        "bench.guards",
        "cluster guards on the hot path: message ids with the node-id lease check, NUL scan",
    ),
    "cluster": (
        "bench.cluster",
        "cross-node hop p50/p99 at 2,000/s vs local; PostgreSQL acked sends; 1 vs 2 workers",
    ),
    "bus": (
        "bench.bus",
        "bus between node processes: Redis bus vs raw Redis, raw NATS, plain TCP; codecs",
    ),
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="name", help="benchmarks to run (all if none)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser.parse_args(argv)


def _list() -> None:
    width = max(map(len, BENCHMARKS))
    for name, (_, description) in BENCHMARKS.items():
        print(f"{name:<{width}}  {description}")


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks in order; exit status 2 for an unknown name."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.list:
        _list()
        return 0
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available:", file=sys.stderr)
        _list()
        return 2
    for name in args.names or list(BENCHMARKS):
        print(f"== {name}: {BENCHMARKS[name][1]}", flush=True)
        importlib.import_module(BENCHMARKS[name][0]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

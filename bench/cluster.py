"""Cluster: the cross-node hop, and acked sends on PostgreSQL through the real send path.

**Hop.** Two ``magpie serve`` nodes share a PostgreSQL database and a Redis bus, both pinned to
the server core. Senders on node A send at a steady rate (round-robin over 40 sending
connections, in bursts of 10, acks awaited concurrently), every other message to a receiver on
node A (**local**: the publishing node's own delivery) and the others to one on node B
(**remote**: A's bus pump -> Redis ROUTE -> B's reader -> B's orderer and gateway), each in
its sender's person channel (one RECV per message, so the receiving side keeps up). Each
payload carries its send time, so per message the latency is RECV arrival minus send, on one
clock (senders and receivers are this process, on the load core). Both include the same
commit; their difference is the hop. Rates ``MAGPIE_BENCH_RATES`` (500, 1000, 2000 per
second; the achieved rate is printed: past the send path's capacity on the one server core,
latencies grow with the queue). ``MAGPIE_BENCH_HOP_B=load`` pins node B to the load core
instead (the hop without two nodes sharing one core). Target: remote p99 ≤ local p99 + 5 ms
at 2,000 events/s.

**Send path on PostgreSQL.** ``bench/loadclient.py`` (``magpie-send``: 100 connections, one
SEND outstanding each, each to its own offline peer) against one node on a PostgreSQL store,
beside the same against SQLite ``synchronous=FULL`` (the embedded default), and beside raw
asyncpg inserts of the same message rows from 100 tasks (pool of 20; the store's own table):
acked sends/s, server CPU per send, p50/p99. Target: ≥ 0.5× raw asyncpg.

**Workers.** ``magpie serve --workers N`` (N = 1, 2) on PostgreSQL and Redis, *not* pinned
(the workers need both cores; the load generator stays on its core, PostgreSQL and Redis
share them too; ``MAGPIE_BENCH_WORKERS=0`` skips this part): acked sends/s
from 100 connections as above, and fan-out — 200 messages (8 in flight) to a group of 1,000
online members spread over the workers by ``SO_REUSEPORT`` — as deliveries/s until the last
member has the last message. CPU is the whole process tree's. Target: ≥ 1.6× with 2 workers.

Servers: PostgreSQL ``MAGPIE_BENCH_POSTGRES_URL`` (a database of its own, dropped after),
Redis ``MAGPIE_BENCH_REDIS_URL`` (a cluster name of its own, keys deleted after).
``MAGPIE_BENCH_SECONDS`` (5 per measurement).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis
import uvloop

from bench._servers import (
    API_KEY,
    LOAD_CPUS,
    LOAD_GENERATOR,
    SERVER_CPUS,
    CpuMeter,
    Server,
    _stop,
    _wait_port,
    free_port,
    load_client,
    percentile,
    pinned,
    pinning,
)

SECONDS = float(os.environ.get("MAGPIE_BENCH_SECONDS", "5"))
RATES = [float(r) for r in os.environ.get("MAGPIE_BENCH_RATES", "500,1000,2000").split(",")]
PG = os.environ.get("MAGPIE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("MAGPIE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SENDERS = 100
#: SENDs per burst; bursts are ``BURST / rate`` seconds apart.
BURST = 10
#: Sending connections of the hop (a session's SENDs commit one after another, so one
#: connection alone cannot reach the rate); the SENDs go round-robin over them.
HOP_SENDERS = 40


# --- servers ---------------------------------------------------------------------------------


@contextmanager
def _database() -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards); yields its URL."""
    name = f"magpie_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(PG)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def _node(node_id: int, cpus: frozenset[int] = SERVER_CPUS, **settings: object) -> Iterator[Server]:
    """``magpie serve`` pinned to ``cpus`` (the server core), on free ports, with its own
    data dir."""
    ws, api, tcp = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="magpie-bench-") as data_dir:
        env = dict(os.environ)
        env.update(
            MAGPIE_DATA_DIR=data_dir,
            MAGPIE_WS_PORT=str(ws),
            MAGPIE_API_PORT=str(api),
            MAGPIE_TCP_PORT=str(tcp),
            MAGPIE_API_KEY=API_KEY,
            MAGPIE_LOG_LEVEL="WARNING",
            MAGPIE_NODE_ID=str(node_id),
        )
        merged = {**LOAD_GENERATOR, "send_rate": 1_000_000, "send_burst": 1_000_000, **settings}
        env.update({f"MAGPIE_{k.upper()}": str(v) for k, v in merged.items()})
        proc = subprocess.Popen(
            [sys.executable, "-m", "magpie.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            preexec_fn=pinned(cpus),
        )
        try:
            _wait_port(ws, proc, timeout=60)
            _wait_port(api, proc, timeout=60)
            yield Server(proc, f"ws://127.0.0.1:{ws}", f"http://127.0.0.1:{api}")
        finally:
            _stop(proc)


def _post(server: Server, path: str, body: object) -> None:
    request = urllib.request.Request(  # noqa: S310 - loopback URL built here
        server.api_url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310
        pass


# --- the hop ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hop:
    """Latencies (ms) of one run: local and remote receivers of the same messages."""

    rate: float
    local: list[float]
    remote: list[float]
    sent: int


async def _hop_run(a: Server, b: Server, rate: float) -> Hop:
    from magpie.client.raw import RawClient

    tag = uuid.uuid4().hex[:6]
    senders = [f"h{tag}s{i}" for i in range(HOP_SENDERS)]
    uids = [*senders, f"h{tag}l", f"h{tag}r"]
    for uid in uids:
        _post(a, "/user/token", {"uid": uid, "token": "t", "device_flag": 1})
    sending = [RawClient(a.ws_url, uid, "t") for uid in senders]
    local = RawClient(a.ws_url, uids[-2], "t")
    remote = RawClient(b.ws_url, uids[-1], "t")
    for client in (*sending, local, remote):
        await client.connect()
    arrivals: dict[str, list[float]] = {"local": [], "remote": []}

    async def receive(client: RawClient, key: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            message = await client.messages.get()
            now = time.monotonic_ns()
            sent = json.loads(message.payload)["t"]
            if sent > 0:
                arrivals[key].append((now - sent) / 1e6)

    async def send_for(seconds: float, record: bool) -> int:
        interval = BURST / rate
        pending: set[asyncio.Task[object]] = set()
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            for _ in range(BURST):
                t = time.monotonic_ns() if record else 0
                payload = json.dumps({"type": 1, "t": t}).encode()
                sender = sending[(n // 2) % HOP_SENDERS]
                peer = uids[-2 + n % 2]  # every other message to the remote receiver
                task = asyncio.ensure_future(sender.send(peer, 1, payload))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
            next_at = start + (n // BURST) * interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*pending)
        return n

    stop = asyncio.Event()
    readers = [
        asyncio.ensure_future(receive(local, "local", stop)),
        asyncio.ensure_future(receive(remote, "remote", stop)),
    ]
    await send_for(1.0, record=False)  # warm-up (not recorded)
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    sent = await send_for(SECONDS, record=True)
    rate = sent / (time.monotonic() - t0)
    deadline = time.monotonic() + 10
    while (
        min(len(arrivals["local"]), len(arrivals["remote"])) < sent and time.monotonic() < deadline
    ):
        await asyncio.sleep(0.05)
    stop.set()
    for task in readers:
        task.cancel()
    for client in (*sending, local, remote):
        await client.close()
    return Hop(rate, arrivals["local"], arrivals["remote"], sent)


def _hops(database: str) -> list[Hop]:
    cluster = f"bench-{uuid.uuid4().hex[:8]}"
    common = {"store_url": database, "bus_url": REDIS, "cluster_name": cluster}
    try:
        # MAGPIE_BENCH_HOP_B=load: node B on the load core instead (the hop without core sharing)
        b_cpus = LOAD_CPUS if os.environ.get("MAGPIE_BENCH_HOP_B") == "load" else SERVER_CPUS
        with _node(1, **common) as a, _node(2, b_cpus, **common) as b:
            return [uvloop.run(_hop_run(a, b, rate)) for rate in RATES]
    finally:
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{cluster}:*"))
        if keys:
            client.delete(*keys)
        client.close()


# --- the send path on PostgreSQL ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sends:
    name: str
    rate: float
    cpu_us: float
    p50_ms: float
    p99_ms: float


def _sends(name: str, **settings: object) -> Sends:
    with (
        _node(1, token_auth="false", **settings) as server,
        load_client("magpie-send", server.ws_url, SENDERS) as load,
    ):
        load.command("run 0.5")  # warm-up
        cpu = CpuMeter(server.pid)
        cpu.start()
        answer = load.command(f"run {SECONDS}")
        cpu.stop()
    assert isinstance(answer, dict)
    count, lat = int(answer["count"]), [x / 1000 for x in answer["lat_us"]]
    return Sends(
        name,
        count / SECONDS,
        cpu.seconds / max(1, count) * 1e6,
        percentile(lat, 50),
        percentile(lat, 99),
    )


def _raw_inserts(database: str) -> Sends:
    """The raw asyncpg baseline of ``bench/pgstore.py`` (its table, 100 tasks, pool of 20)."""
    from bench import pgstore

    async def main() -> pgstore.Result:
        url = await pgstore._fresh_schema(database)
        return await pgstore._raw(url, group=False)

    result = asyncio.run(main())
    return Sends("raw asyncpg insert (pool 20)", result.rate, 0.0, result.p50_ms, result.p99_ms)


# --- workers ---------------------------------------------------------------------------------

FAN_MEMBERS = int(os.environ.get("MAGPIE_BENCH_MEMBERS", "1000"))
FAN_MESSAGES = 200
FAN_IN_FLIGHT = 8


def _tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (the supervisor and its workers)."""
    from bench._servers import cpu_seconds

    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for child in open(f"/proc/{pid}/task/{pid}/children").read().split():  # noqa: SIM115
            with contextlib.suppress(OSError):
                total += cpu_seconds(int(child))
    return total


@contextmanager
def _workers(n: int, database: str, cluster: str) -> Iterator[Server]:
    """``magpie serve --workers n`` (leased node ids), unpinned, on fixed free ports."""
    ws, api, tcp = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="magpie-bench-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
        settings = {
            **LOAD_GENERATOR,
            "send_rate": 1_000_000,
            "send_burst": 1_000_000,
            "token_auth": "false",
            "store_url": database,
            "bus_url": REDIS,
            "cluster_name": cluster,
            "data_dir": data_dir,
            "ws_port": ws,
            "api_port": api,
            "tcp_port": tcp,
            "api_key": API_KEY,
            "log_level": "WARNING",
        }
        env.update({f"MAGPIE_{k.upper()}": str(v) for k, v in settings.items()})
        proc = subprocess.Popen(
            [sys.executable, "-m", "magpie.cli", "serve", "--workers", str(n)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_port(ws, proc, timeout=90)
            _wait_port(api, proc, timeout=90)
            time.sleep(2.0 if n > 1 else 0.5)  # the other workers start after the first
            yield Server(proc, f"ws://127.0.0.1:{ws}", f"http://127.0.0.1:{api}")
        finally:
            _stop(proc)


@dataclass(frozen=True, slots=True)
class Scale:
    workers: int
    sends: float
    send_cpu_us: float
    deliveries: float
    delivery_cpu_us: float
    missing: int


async def _fan(server: Server) -> tuple[float, float, int]:
    """Deliveries/s, CPU µs per delivery and deliveries missing for one fan-out run."""
    from magpie.client.raw import RawClient

    members = [f"m{i}" for i in range(FAN_MEMBERS)]
    group = f"fan{uuid.uuid4().hex[:6]}"
    _post(server, "/channel", {"channel_id": group, "channel_type": 2, "subscribers": ["snd"]})
    for i in range(0, FAN_MEMBERS, 500):
        _post(
            server,
            "/channel/subscriber_add",
            {"channel_id": group, "channel_type": 2, "subscribers": members[i : i + 500]},
        )
    payload = json.dumps({"type": 1, "content": "x" * 170}).encode()
    with load_client("magpie", server.ws_url, FAN_MEMBERS) as load:
        sender = RawClient(server.ws_url, "snd", "bench")
        await sender.connect()
        for _ in range(3):
            await sender.send(group, 2, payload)
        await asyncio.sleep(1.0)
        load.report()
        gate = asyncio.Semaphore(FAN_IN_FLIGHT)
        seqs: list[int] = []

        async def one() -> None:
            async with gate:
                seqs.append((await sender.send(group, 2, payload)).message_seq)

        t0 = time.monotonic_ns()
        cpu0 = _tree_cpu(server.pid)
        await asyncio.gather(*(one() for _ in range(FAN_MESSAGES)))
        arrivals: dict[int, list[int]] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for seq, times in load.report().items():
                arrivals.setdefault(seq, []).extend(times)
            if all(len(arrivals.get(s, ())) >= FAN_MEMBERS for s in seqs):
                break
            await asyncio.sleep(0.2)
        cpu = _tree_cpu(server.pid) - cpu0
        await sender.close()
    delivered = sum(min(FAN_MEMBERS, len(arrivals.get(s, ()))) for s in seqs)
    last = max((max(arrivals[s]) for s in seqs if arrivals.get(s)), default=t0)
    seconds = max(1e-9, (last - t0) / 1e9)
    return delivered / seconds, cpu / max(1, delivered) * 1e6, len(seqs) * FAN_MEMBERS - delivered


def _scale(n: int, database: str) -> Scale:
    cluster = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        with _workers(n, database, cluster) as server:
            with load_client("magpie-send", server.ws_url, SENDERS) as load:
                load.command("run 0.5")
                cpu0 = _tree_cpu(server.pid)
                answer = load.command(f"run {SECONDS}")
                cpu = _tree_cpu(server.pid) - cpu0
            assert isinstance(answer, dict)
            count = int(answer["count"])
            deliveries, delivery_cpu, missing = uvloop.run(_fan(server))
        return Scale(
            n, count / SECONDS, cpu / max(1, count) * 1e6, deliveries, delivery_cpu, missing
        )
    finally:
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{cluster}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def _print_scale(rows: list[Scale]) -> None:
    base = rows[0]
    print(
        f"-- workers (unpinned, PostgreSQL + Redis): acked sends from {SENDERS} connections; "
        f"fan-out of {FAN_MESSAGES} messages to {FAN_MEMBERS} members"
    )
    print(
        f"{'':12}{'sends/s':>9}{'x 1':>7}{'CPU µs':>8}{'deliv/s':>10}{'x 1':>7}"
        f"{'CPU µs':>8}{'missing':>9}"
    )
    for r in rows:
        print(
            f"{r.workers:>2} worker(s){r.sends:>9.0f}{r.sends / base.sends:>6.2f}x"
            f"{r.send_cpu_us:>8.0f}{r.deliveries:>10.0f}{r.deliveries / base.deliveries:>6.2f}x"
            f"{r.delivery_cpu_us:>8.1f}{r.missing:>9}"
        )


# --- the report ------------------------------------------------------------------------------


def _print_hop(hop: Hop) -> None:
    print(
        f"-- cross-node hop: {hop.sent} messages at {hop.rate:.0f}/s from node A, half to a "
        f"receiver on node A, half to one on node B"
    )
    print(f"{'':28}{'received':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, values in (("local (node A -> A)", hop.local), ("remote (node A -> B)", hop.remote)):
        print(
            f"{name:28}{len(values):>10}{percentile(values, 50):>9.2f}"
            f"{percentile(values, 90):>9.2f}{percentile(values, 99):>9.2f}"
            f"{max(values, default=float('nan')):>9.2f}"
        )
    over = percentile(hop.remote, 99) - percentile(hop.local, 99)
    p50 = percentile(hop.remote, 50) - percentile(hop.local, 50)
    print(f"hop: p50 +{p50:.2f} ms, p99 +{over:.2f} ms over local (target p99 ≤ +5 ms)")


def _print_sends(rows: list[Sends]) -> None:
    raw = next(r for r in rows if r.name.startswith("raw"))
    print(f"-- acked sends, {SENDERS} connections (one SEND outstanding each), {SECONDS:.0f} s")
    print(f"{'':34}{'acked/s':>9}{'vs raw':>8}{'CPU µs':>8}{'p50 ms':>8}{'p99 ms':>8}")
    for r in rows:
        cpu = f"{r.cpu_us:>8.0f}" if r.cpu_us else f"{'-':>8}"
        print(
            f"{r.name:34}{r.rate:>9.0f}{r.rate / raw.rate:>7.2f}x{cpu}"
            f"{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}"
        )


def run() -> None:
    """Run both parts and print the tables (indicative on a shared machine)."""
    os.sched_setaffinity(0, LOAD_CPUS)
    print(f"cluster: {pinning()}; PostgreSQL and Redis unpinned")
    with _database() as database:
        for hop in _hops(database):
            _print_hop(hop)
        rows = [_raw_inserts(database)]
        rows.append(_sends("magpie PostgreSQL (send path)", store_url=database))
        rows.append(_sends("magpie SQLite FULL (send path)", sqlite_synchronous="FULL"))
        _print_sends(rows)
        if os.environ.get("MAGPIE_BENCH_WORKERS", "1") != "0":
            os.sched_setaffinity(0, set(os.sched_getaffinity(0)) | set(SERVER_CPUS))
            _print_scale([_scale(1, database), _scale(2, database)])


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        run()

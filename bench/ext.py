"""Message extensions: incremental sync flat in history length, and CAS updates per second.

1. **Sync vs history.** A channel whose history has N = 10^3, 10^5 and 10^6 messages, each
   with an extension row (the worst case for the sync index), seeded by bulk SQL into a temp
   SQLite DB opened with the store's own connection setup and migrations. K = 10 more changes
   go through :class:`~magpie.ext.service.ExtService`; then an incremental sync from the
   cursor before them is timed. It reads the index ``(channel, extra_version)`` only, so the
   time must not grow with N (target: median at 10^6 / median at 10^3 ≤ 1.5).
2. **CAS updates/s with the CMD fan-out** on the embedded default (``magpie serve``: SQLite
   ``synchronous=FULL``, 50 ms coalescing): W concurrent business-API writers, each doing
   compare-and-set updates of its own message in one group while M members are online with
   raw WuKongIM clients; then W writers on ONE message (contention: the losers get 409).
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench._servers import API_KEY, cpu_seconds, magpie_server, percentile
from magpie.client.raw import RawClient
from magpie.domain.ext import Actor
from magpie.ext.changes import FieldChange
from magpie.ext.notify import Cmd, Notifier
from magpie.ext.patch import PatchLimits
from magpie.ext.service import ExtService
from magpie.store._sqlite_setup import connect, ensure_epoch, load_migrations, migrate
from magpie.store._sqlite_setup import run_transaction as transaction
from magpie.store.sqlite import SqliteStore

HISTORIES = (1_000, 100_000, 1_000_000)
K = 10
SYNCS = 400
CHANNEL = "bench"
GROUP = 2
MEMBERS = 5
WRITERS = 20
SECONDS = 4.0
_BATCH = 50_000


# --- 1. sync vs history ---------------------------------------------------------------------


def _messages(start: int, stop: int) -> list[tuple[object, ...]]:
    payload = b'{"type":1,"content":"history"}'
    return [
        (i, i, f"c{i}", "alice", CHANNEL, GROUP, 1_700_000_000 + i, payload)
        for i in range(start, stop)
    ]


def _exts(start: int, stop: int) -> list[tuple[object, ...]]:
    extra = '{"votes":{"yes":1}}'
    return [
        (i, CHANNEL, GROUP, i, "open", extra, 1, i, i << 16, "alice", "web", 0)
        for i in range(start, stop)
    ]


def _seed(path: Path, n: int) -> None:
    """N messages with one extension each, by bulk SQL through the store's own setup."""
    conn = connect(str(path), synchronous="OFF", busy_timeout_ms=5000, reader=False)
    try:
        migrate(conn, load_migrations())
        transaction(conn, ensure_epoch)
        for start in range(1, n + 1, _BATCH):
            stop = min(n + 1, start + _BATCH)
            transaction(conn, partial(_insert, start=start, stop=stop))
        counters = (CHANNEL, GROUP, n)
        transaction(conn, lambda c: c.execute("INSERT INTO channel_seq VALUES (?, ?, ?)", counters))
        transaction(
            conn, lambda c: c.execute("INSERT INTO ext_channel_clock VALUES (?, ?, ?)", counters)
        )
    finally:
        conn.close()


def _insert(conn: sqlite3.Connection, start: int, stop: int) -> None:
    conn.executemany(
        "INSERT INTO messages (message_id, message_seq, client_msg_no, from_uid, channel_id,"
        " channel_type, timestamp, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        _messages(start, stop),
    )
    conn.executemany(
        "INSERT INTO message_ext (message_id, channel_id, channel_type, message_seq, status,"
        " extra, version, extra_version, updated_at, updated_uid, updated_device, last_op_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _exts(start, stop),
    )


async def _no_cmd(_: Cmd) -> bool:
    return True


async def _time_syncs(path: Path, n: int) -> list[float]:
    store = SqliteStore(path, synchronous="NORMAL")
    await store.open()
    ext = ExtService(
        store,
        Notifier(_no_cmd, window=0),
        limits=PatchLimits(),
        sync_max_limit=1000,
        max_future_ms=60_000,
        clock_ms=lambda: time.time_ns() // 1_000_000,
    )
    try:
        rng = random.Random(n)
        for k, mid in enumerate(rng.sample(range(1, n + 1), K)):  # old and new messages
            result = await ext.cas_update(
                mid,
                FieldChange(status="done"),
                expected_version=1,
                action_id=f"k{k}",
                actor=Actor(),
            )
            assert result.applied, result
        times = []
        for _ in range(SYNCS):
            t0 = time.perf_counter()
            page = await ext.sync(CHANNEL, GROUP, n, 100)
            times.append(time.perf_counter() - t0)
            assert len(page.rows) == K and not page.more
        return times
    finally:
        await ext.close()
        await store.close()


def _sync_part() -> None:
    print(f"incremental sync of K={K} changed extensions, {SYNCS} syncs per history size")
    print(f"{'history N':>10}{'seed s':>9}{'p50 µs':>10}{'p90 µs':>10}{'p99 µs':>10}")
    medians = {}
    for n in HISTORIES:
        with tempfile.TemporaryDirectory(prefix="magpie-bench-ext-") as tmp:
            path = Path(tmp) / "ext.sqlite3"
            t0 = time.perf_counter()
            _seed(path, n)
            seeded = time.perf_counter() - t0
            times = asyncio.run(_time_syncs(path, n))
        medians[n] = percentile(times, 50)
        p50, p90, p99 = (percentile(times, p) * 1e6 for p in (50, 90, 99))
        print(f"{n:>10,}{seeded:>9.1f}{p50:>10.0f}{p90:>10.0f}{p99:>10.0f}")
    ratio = medians[HISTORIES[-1]] / medians[HISTORIES[0]]
    print(f"ratio p50 N=10^6 / N=10^3: {ratio:.2f} (target ≤ 1.5)")


# --- 2. CAS updates/s with the CMD fan-out --------------------------------------------------


async def _drain(client: RawClient, seen: list[int]) -> None:
    """Record the extra_version of every syncMessageExtra CMD (skipping the cards)."""
    while True:
        content = json.loads((await client.messages.get()).payload)
        if content.get("cmd") == "syncMessageExtra":
            seen.append(content["param"]["extra_version"])


class _Http:
    """A minimal keep-alive HTTP/1.1 JSON client: httpx costs ~1 ms of client CPU per
    request, which would make this benchmark measure the client instead of the server."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self._addr = (host, int(port))
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: object) -> tuple[int, Any]:
        """(status, decoded JSON body)."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(*self._addr)
        reader, writer = self._streams
        data = json.dumps(body).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        return int(head.split(" ")[1]), json.loads(await reader.readexactly(length))

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


async def _writer(url: str, mid: int, stop: float, lat: list[float], tag: str) -> tuple[int, int]:
    """CAS loop on one message over its own connection: (applied, conflicts)."""
    http = _Http(url)
    version, applied, lost, n = 0, 0, 0, 0
    try:
        while time.monotonic() < stop:
            n += 1
            body = {
                "message_id": mid,
                "expected_version": version,
                "extra_patch": {"n": n},
                "action_id": f"{tag}-{n}",
            }
            t0 = time.perf_counter()
            status, out = await http.post("/message/extra/update", body)
            lat.append(time.perf_counter() - t0)
            if status == 200:
                version, applied = out["data"]["version"], applied + 1
            else:
                assert status == 409, out
                version, lost = out["current"]["version"], lost + 1
    finally:
        http.close()
    return applied, lost


async def _run_writers(
    url: str, mids: list[int], tag: str, pid: int
) -> tuple[float, int, list[float], float]:
    """(applied/s, 409s, latencies, server CPU ms per applied update)."""
    lat: list[float] = []
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    stop = t0 + SECONDS
    counts = await asyncio.gather(
        *(_writer(url, mid, stop, lat, f"{tag}{i}") for i, mid in enumerate(mids))
    )
    elapsed, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
    applied = sum(a for a, _ in counts)
    return applied / elapsed, sum(c for _, c in counts), lat, cpu / max(applied, 1) * 1e3


@dataclass
class CasFigures:
    """The "own message each" run: applied/s, server CPU ms per applied update, latency."""

    rate: float
    cpu_ms: float
    p50_ms: float
    p99_ms: float


async def _cas_part() -> CasFigures:
    """The CAS runs (prints their table); returns the own-message run's figures, which
    ``bench convo`` prints its storms beside."""
    with magpie_server(token_auth="false") as server:
        members = [f"m{i}" for i in range(MEMBERS)]
        server.api(
            "/channel", {"channel_id": CHANNEL, "channel_type": GROUP, "subscribers": members}
        )
        clients = [RawClient(server.ws_url, uid, "bench") for uid in members]
        await asyncio.gather(*(c.connect(timeout=30) for c in clients))
        seen: list[list[int]] = [[] for _ in clients]
        drains = [asyncio.create_task(_drain(c, s)) for c, s in zip(clients, seen, strict=True)]
        headers = {"Authorization": f"Bearer {API_KEY}"}
        limits = httpx.Limits(max_connections=WRITERS)
        async with httpx.AsyncClient(
            base_url=server.api_url, headers=headers, limits=limits
        ) as http:
            mids = []
            for _ in range(WRITERS):
                body = {
                    "from_uid": "m0",
                    "channel_id": CHANNEL,
                    "channel_type": GROUP,
                    "payload": "eyJ0eXBlIjoxLCJjb250ZW50IjoiY2FyZCJ9",
                }
                r = await http.post("/message/send", json=body)
                mids.append(r.json()["data"]["message_id"])
            print(
                f"CAS updates over HTTP, synchronous=FULL, {MEMBERS} online members, "
                f"{SECONDS:.0f} s per run"
            )
            print(
                f"{'run':34}{'applied/s':>10}{'409s':>7}{'p50 ms':>9}{'p90 ms':>9}"
                f"{'p99 ms':>9}{'server CPU ms':>14}"
            )
            own = await _run_writers(server.api_url, mids, "own", server.pid)
            _row(f"{WRITERS} writers, own message each", *own)
            one = await _run_writers(server.api_url, [mids[0]] * WRITERS, "one", server.pid)
            _row(f"{WRITERS} writers, one message", *one)
            await asyncio.sleep(0.3)  # the last coalescing window
            r = await http.post(
                "/message/extra/sync",
                json={"channel_id": CHANNEL, "channel_type": GROUP, "login_uid": "m0"},
            )
            last = max(row["extra_version"] for row in r.json())
        for task in drains:
            task.cancel()
        await asyncio.gather(*(c.close() for c in clients))
    cmds = sum(map(len, seen)) / len(seen)
    ok = all(s and s[-1] == last for s in seen)
    print(
        f"CMDs per member: {cmds:.0f} for {last} changes "
        f"({last / max(cmds, 1):.0f} changes per CMD); last extra_version delivered: {ok}"
    )
    rate, _, lat, cpu_ms = own
    return CasFigures(rate, cpu_ms, percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3)


def _row(name: str, rate: float, lost: int, lat: list[float], cpu_ms: float) -> None:
    p50, p90, p99 = (percentile(lat, p) * 1e3 for p in (50, 90, 99))
    print(f"{name:34}{rate:>10.0f}{lost:>7}{p50:>9.2f}{p90:>9.2f}{p99:>9.2f}{cpu_ms:>12.2f}")


def run() -> None:
    """Both parts; prints tables."""
    _sync_part()
    asyncio.run(_cas_part())


if __name__ == "__main__":
    run()

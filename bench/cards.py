"""Cards: a vote at the size of real groups — 1,000 and 10,000 members, every one votes.

Two runs, each on a fresh ``magpie serve`` (embedded default: SQLite ``synchronous=FULL``,
50 ms CMD coalescing): the baseline — a group of 1,000 members voting within one second —
and a group of 10,000 members casting 10,000 ballots within ten seconds (the same rate).
Each run has one ``vote@1`` card (4 options, named, live results). Every member votes once
over ``POST /cards/{id}/actions`` with their own user token, the requests spread evenly
(200 keep-alive connections).
Meanwhile 150 members are connected as real WuKongIM clients (``RawClient``, in a
separate process so their decryption and syncing do not slow the voters down); each reacts
to every ``syncMessageExtra`` CMD like an app does — ``/message/extra/sync`` from its
cursor with its token — and notes when its copy of the card shows the final tally.

Reported: ballots applied (must be 1,000, tallies exact, no 409), action latency p50 / p90
/ p99 / max (from the request's scheduled time), the time from the last ballot's answer
until every online client has the final tally, server CPU per ballot, and CMDs and syncs
per online client, and the **sync bytes per ballot per online member** (the bodies of the
``/message/extra/sync`` answers a client read, divided by the ballots): ballots are records
of their own and the synced state is the small aggregate (tallies, voter count, a bounded
preview of voters), so this figure must not grow with the number of voters — the 10,000 run
prints it beside the 1,000 run's. 150 online clients in both runs (a realistic share of a
1,000-member group; the same count keeps the load of the syncing clients equal); the whole
benchmark takes a few minutes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench._servers import API_KEY, cpu_seconds, magpie_server, percentile

#: (members = voters, members online, seconds over which the ballots are sent)
RUNS = ((1000, 150, 1.0), (10_000, 150, 10.0))
OPTIONS = ["Monday", "Tuesday", "Wednesday", "Thursday"]
CONNECTIONS = 200
CHANNEL = "bench"
GROUP = 2
DONE_TIMEOUT = 120.0


def uid(i: int) -> str:
    return f"m{i:05d}"


def choice(i: int) -> int:
    """Member ``i``'s ballot (uneven on purpose)."""
    return (i * i + i // 7) % len(OPTIONS)


def expected_tallies(members: int) -> list[int]:
    tallies = [0] * len(OPTIONS)
    for i in range(members):
        tallies[choice(i)] += 1
    return tallies


class Http:
    """A minimal keep-alive HTTP/1.1 JSON client: httpx costs about 1 ms of client CPU per
    request, which would make this benchmark measure the client instead of the server."""

    def __init__(self, url: str, token: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self._addr = (host, int(port))
        self._token = token
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        #: Bytes of the answers read (head and body).
        self.received = 0
        #: The last answer's ``Retry-After`` (seconds), if it had one.
        self.retry_after: float | None = None

    async def request(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """(status, decoded JSON body)."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(*self._addr)
        reader, writer = self._streams
        data = b"" if body is None else json.dumps(body).encode()
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {self._token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        self.received += len(head) + length
        _, found, rest = head.partition("retry-after:")
        self.retry_after = float(rest.split("\r\n")[0]) if found else None
        return int(head.split(" ")[1]), json.loads(await reader.readexactly(length))

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


# --- the online members (own process) --------------------------------------------------------


def add_members(server: Any, channel: str, members: Sequence[str], first: Sequence[str]) -> None:
    """Create the group ``channel`` with ``first`` as subscribers, then add ``members`` 1,000
    per request (bodies stay under the request size limit)."""
    server.api("/channel", {"channel_id": channel, "channel_type": GROUP, "subscribers": first})
    for start in range(0, len(members), 1000):
        body = {"channel_id": channel, "channel_type": GROUP, "subscribers": members[start:][:1000]}
        server.api("/channel/subscriber_add", body)


async def issue_tokens(api_url: str, uids: Sequence[str], token: Callable[[str], str]) -> None:
    """``/user/token`` for every uid (web device), 20 keep-alive connections at a time."""
    pool = [Http(api_url, API_KEY) for _ in range(20)]
    try:
        for start in range(0, len(uids), len(pool)):
            await asyncio.gather(
                *(
                    http.request(
                        "POST", "/user/token", {"uid": who, "token": token(who), "device_flag": 1}
                    )
                    for http, who in zip(pool, uids[start:][: len(pool)], strict=False)
                )
            )
    finally:
        for http in pool:
            http.close()


async def _member(
    ws_url: str, api_url: str, me: str, final: list[int], out: dict[str, Any]
) -> None:
    """Connect, then sync on every CMD until the card shows ``final``."""
    from magpie.client.raw import RawClient

    client = RawClient(ws_url, me, f"tok-{me}")
    await client.connect(timeout=60)
    http = Http(api_url, f"tok-{me}")
    out["ready"] += 1
    cursor, cmds, syncs = 0, 0, 0
    try:
        while True:
            content = json.loads((await client.messages.get()).payload)
            if content.get("cmd") != "syncMessageExtra":
                continue
            cmds += 1
            more = True
            while more:
                body = {"channel_id": CHANNEL, "channel_type": GROUP, "extra_version": cursor}
                status, page = await http.request(
                    "POST", "/message/extra/sync", {**body, "envelope": 1}
                )
                syncs += 1
                if status != 200:  # 503 busy (the history gate) or 429: wait as told, again
                    why = f"{status} {page.get('code', '') if isinstance(page, dict) else ''}"
                    out["refused"][why] = out["refused"].get(why, 0) + 1
                    await asyncio.sleep(http.retry_after or 0.2)
                    continue
                more = bool(page["more"])
                for row in page["rows"]:
                    cursor = max(cursor, row["extra_version"])
                    if row["extra"]["card"]["state"]["tallies"] == final:
                        out["done"][me] = (time.monotonic(), cmds, syncs, http.received)
                        return
    finally:
        http.close()
        await client.close()


async def _members_main(ws_url: str, api_url: str, first: int, n: int, voters: int) -> None:
    final = expected_tallies(voters)
    out: dict[str, Any] = {"ready": 0, "done": {}, "refused": {}}
    tasks = [
        asyncio.create_task(_member(ws_url, api_url, uid(i), final, out))
        for i in range(first, first + n)
    ]
    while out["ready"] < n:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.wait(tasks, timeout=DONE_TIMEOUT)
    print(json.dumps(out["done"]), flush=True)
    print(json.dumps(out["refused"]), flush=True)


def _start_members(ws_url: str, api_url: str, online: int, voters: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "bench.cards", "members", ws_url, api_url),
            *("0", str(online), str(voters)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"member clients failed: {line!r}")
    return proc


# --- the voters --------------------------------------------------------------------------------


async def _vote(
    pool: asyncio.Queue[Http], mid: str, i: int, at: float, out: list[tuple[int, float, float]]
) -> None:
    """Member ``i`` votes at ``at``: (status, latency, answered at)."""
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    http = await pool.get()
    try:
        body = {
            "uid": uid(i),
            "action": "vote",
            "params": {"options": [choice(i)]},
            "action_id": f"ballot-{i}",
            "base_version": 1,
        }
        http._token = f"tok-{uid(i)}"  # one connection, many users: each request its token
        status, _ = await http.request("POST", f"/cards/{mid}/actions", body)
    finally:
        pool.put_nowait(http)
    done = time.monotonic()
    out.append((status, done - at, done))


async def _setup(server: Any, n: int) -> str:
    members = [uid(i) for i in range(n)]
    add_members(server, CHANNEL, members, first=[])
    await issue_tokens(server.api_url, members, lambda who: f"tok-{who}")
    return members[0]


async def _create(api_url: str) -> str:
    host = Http(api_url, f"tok-{uid(0)}")
    try:
        card = {"type": "vote@1", "title": "Team day", "options": OPTIONS}
        status, body = await host.request(
            "POST", "/cards", {"channel_id": CHANNEL, "channel_type": GROUP, "card": card}
        )
        assert status == 200, body
        return str(body["message_id_str"])
    finally:
        host.close()


async def _verify(api_url: str, mid: str) -> dict[str, Any]:
    host = Http(api_url, f"tok-{uid(0)}")
    try:
        status, view = await host.request("GET", f"/cards/{mid}")
        assert status == 200, view
        return dict(view)
    finally:
        host.close()


async def _run(n: int, online: int, spread: float) -> dict[str, Any]:
    with magpie_server() as server:
        await _setup(server, n)
        members = _start_members(server.ws_url, server.api_url, online, n)
        try:
            mid = await _create(server.api_url)
            await asyncio.sleep(0.5)  # the card's RECV and first CMD settle
            pool: asyncio.Queue[Http] = asyncio.Queue()
            for _ in range(CONNECTIONS):
                pool.put_nowait(Http(server.api_url, ""))
            results: list[tuple[int, float, float]] = []
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic() + 0.1
            await asyncio.gather(
                *(_vote(pool, mid, i, t0 + i / n * spread, results) for i in range(n))
            )
            last_answer = max(r[2] for r in results)
            assert members.stdout is not None
            done = json.loads(members.stdout.readline())
            refused = json.loads(members.stdout.readline())
            cpu = cpu_seconds(server.pid) - cpu0
            view = await _verify(server.api_url, mid)
            while not pool.empty():
                pool.get_nowait().close()
        finally:
            members.wait(timeout=DONE_TIMEOUT + 10)
    if refused:
        print(f"sync answers other than 200 (retried after their Retry-After): {refused}")
    return _report(n, online, spread, results, t0, last_answer, done, cpu, view)


def _report(
    n: int,
    online: int,
    spread: float,
    results: list[tuple[int, float, float]],
    t0: float,
    last_answer: float,
    done: dict[str, list[float]],
    cpu: float,
    view: dict[str, Any],
) -> dict[str, Any]:
    applied = sum(1 for status, _, _ in results if status == 200)
    lat = [latency for _, latency, _ in results]
    final, state = expected_tallies(n), view["state"]
    exact = state["tallies"] == final and state["voters"] == n
    print(
        f"\n{n} members, one vote@1 card ({len(OPTIONS)} options, named, live results), "
        f"ballots spread over {spread:.0f} s; {online} members online (RawClient)"
    )
    print(
        f"ballots: {applied}/{n} applied (non-200: {n - applied}), all sent and "
        f"answered {last_answer - t0:.2f} s after the first; final tallies {state['tallies']} "
        f"exact: {exact}; card version {view['version']}"
    )
    p50, p90, p99, worst = (percentile(lat, p) * 1e3 for p in (50, 90, 99, 100))
    print(f"action latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {worst:.1f}")
    after = [d[0] - last_answer for d in done.values()]
    converged = len(done) == online
    if not converged:
        print(f"online clients with the final tally: {len(done)}/{online} (timed out)")
    else:
        print(
            f"final tally on every online client: {max(after) * 1e3:.0f} ms after the last "
            f"ballot's answer (p50 {percentile(after, 50) * 1e3:.0f} ms); "
            f"{max(d[0] for d in done.values()) - t0:.2f} s after the first ballot"
        )
    clients = max(len(done), 1)
    cmds = sum(d[1] for d in done.values()) / clients
    syncs = sum(d[2] for d in done.values()) / clients
    synced = sum(d[3] for d in done.values()) / clients
    rate = applied / max(last_answer - t0, 1e-9)
    print(
        f"per online client: {cmds:.1f} CMDs, {syncs:.1f} syncs, {synced / 1024:.0f} KiB synced; "
        f"server CPU {cpu:.2f} s ({cpu / n * 1e3:.2f} ms per ballot, syncs and CMDs included)"
    )
    per_ballot = synced / n
    print(
        f"ballots/s: {rate:.0f}; sync bytes per ballot per online member: {per_ballot:.1f} "
        f"(one sync answer: {synced / max(syncs, 1):.0f} bytes)"
    )
    return {
        "n": n,
        "rate": rate,
        "cpu_ms": cpu / n * 1e3,
        "bytes": per_ballot,
        "exact": exact and applied == n and converged,
    }


def run() -> None:
    """The benchmark; prints its report (each run, then the 10,000 run beside the 1,000)."""
    base, *rest = [asyncio.run(_run(*args)) for args in RUNS]
    print(
        f"\n{'voters':>7} {'exact+converged':>16} {'ballots/s':>10} {'CPU ms/ballot':>14} "
        f"{'sync B/ballot/online':>21}"
    )
    for r in (base, *rest):
        print(
            f"{r['n']:>7} {r['exact']!s:>16} {r['rate']:>10.0f} {r['cpu_ms']:>14.2f} "
            f"{r['bytes']:>21.1f}"
        )
    for r in rest:
        print(
            f"{r['n']} vs {base['n']} voters: CPU per ballot x{r['cpu_ms'] / base['cpu_ms']:.2f}, "
            f"sync bytes per ballot per online member x{r['bytes'] / base['bytes']:.2f}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "members":
        ws, api, first, n, voters = sys.argv[2:7]
        asyncio.run(_members_main(ws, api, int(first), int(n), int(voters)))
    else:
        run()

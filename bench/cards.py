"""Cards: 1,000 members vote on one card within one second.

A real ``magpie serve`` (embedded default: SQLite ``synchronous=FULL``, 50 ms CMD
coalescing) with a group of 1,000 members and one ``vote@1`` card (4 options, named, live
results). Every member votes once over ``POST /cards/{id}/actions`` with their own user
token, the 1,000 requests spread evenly over one second (200 keep-alive connections).
Meanwhile ``ONLINE`` members are connected as real WuKongIM clients (``RawClient``, in a
separate process so their decryption and syncing do not slow the voters down); each reacts
to every ``syncMessageExtra`` CMD like an app does — ``/message/extra/sync`` from its
cursor with its token — and notes when its copy of the card shows the final tally.

Reported: ballots applied (must be 1,000, tallies exact, no 409), action latency p50 / p90
/ p99 / max (from the request's scheduled time), the time from the last ballot's answer
until every online client has the final tally, server CPU per ballot, and CMDs and syncs
per online client. 150 online clients is a realistic share of a 1,000-member group; the
run takes well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

from bench._servers import API_KEY, cpu_seconds, magpie_server, percentile

MEMBERS = 1000
ONLINE = 150
OPTIONS = ["Monday", "Tuesday", "Wednesday", "Thursday"]
SPREAD = 1.0  # seconds over which the ballots are sent
CONNECTIONS = 200
CHANNEL = "bench"
GROUP = 2
DONE_TIMEOUT = 60.0


def uid(i: int) -> str:
    return f"m{i:04d}"


def choice(i: int) -> int:
    """Member ``i``'s ballot (uneven on purpose)."""
    return (i * i + i // 7) % len(OPTIONS)


def expected_tallies() -> list[int]:
    tallies = [0] * len(OPTIONS)
    for i in range(MEMBERS):
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
        return int(head.split(" ")[1]), json.loads(await reader.readexactly(length))

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


# --- the online members (own process) --------------------------------------------------------


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
                _, page = await http.request("POST", "/message/extra/sync", {**body, "envelope": 1})
                syncs += 1
                more = bool(page["more"])
                for row in page["rows"]:
                    cursor = max(cursor, row["extra_version"])
                    if row["extra"]["card"]["state"]["tallies"] == final:
                        out["done"][me] = (time.monotonic(), cmds, syncs)
                        return
    finally:
        http.close()
        await client.close()


async def _members_main(ws_url: str, api_url: str, first: int, n: int) -> None:
    final = expected_tallies()
    out: dict[str, Any] = {"ready": 0, "done": {}}
    tasks = [
        asyncio.create_task(_member(ws_url, api_url, uid(i), final, out))
        for i in range(first, first + n)
    ]
    while out["ready"] < n:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.wait(tasks, timeout=DONE_TIMEOUT)
    print(json.dumps(out["done"]), flush=True)


def _start_members(ws_url: str, api_url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cards", "members", ws_url, api_url, "0", str(ONLINE)],
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
    pool: asyncio.Queue[Http], mid: str, i: int, t0: float, out: list[tuple[int, float, float]]
) -> None:
    """Member ``i`` votes at ``t0 + i/MEMBERS * SPREAD``: (status, latency, answered at)."""
    at = t0 + i / MEMBERS * SPREAD
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


async def _setup(server: Any) -> str:
    members = [uid(i) for i in range(MEMBERS)]
    server.api("/channel", {"channel_id": CHANNEL, "channel_type": GROUP, "subscribers": members})
    tokens = [Http(server.api_url, API_KEY) for _ in range(20)]
    try:
        for start in range(0, MEMBERS, len(tokens)):
            await asyncio.gather(
                *(
                    http.request(
                        "POST",
                        "/user/token",
                        {"uid": uid(i), "token": f"tok-{uid(i)}", "device_flag": 1},
                    )
                    for http, i in zip(tokens, range(start, start + len(tokens)), strict=False)
                )
            )
    finally:
        for http in tokens:
            http.close()
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


async def _run() -> None:
    with magpie_server() as server:
        await _setup(server)
        members = _start_members(server.ws_url, server.api_url)
        try:
            mid = await _create(server.api_url)
            await asyncio.sleep(0.5)  # the card's RECV and first CMD settle
            pool: asyncio.Queue[Http] = asyncio.Queue()
            for _ in range(CONNECTIONS):
                pool.put_nowait(Http(server.api_url, ""))
            results: list[tuple[int, float, float]] = []
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic() + 0.1
            await asyncio.gather(*(_vote(pool, mid, i, t0, results) for i in range(MEMBERS)))
            last_answer = max(r[2] for r in results)
            assert members.stdout is not None
            done = json.loads(members.stdout.readline())
            cpu = cpu_seconds(server.pid) - cpu0
            view = await _verify(server.api_url, mid)
            while not pool.empty():
                pool.get_nowait().close()
        finally:
            members.wait(timeout=DONE_TIMEOUT + 10)
    _report(results, t0, last_answer, done, cpu, view)


def _report(
    results: list[tuple[int, float, float]],
    t0: float,
    last_answer: float,
    done: dict[str, list[float]],
    cpu: float,
    view: dict[str, Any],
) -> None:
    applied = sum(1 for status, _, _ in results if status == 200)
    lat = [latency for _, latency, _ in results]
    final, state = expected_tallies(), view["state"]
    exact = state["tallies"] == final and state["voters"] == MEMBERS
    print(
        f"{MEMBERS} members, one vote@1 card ({len(OPTIONS)} options, named, live results), "
        f"ballots spread over {SPREAD:.0f} s; {ONLINE} members online (RawClient)"
    )
    print(
        f"ballots: {applied}/{MEMBERS} applied (non-200: {MEMBERS - applied}), all sent and "
        f"answered {last_answer - t0:.2f} s after the first; final tallies {state['tallies']} "
        f"exact: {exact}; card version {view['version']}"
    )
    p50, p90, p99, worst = (percentile(lat, p) * 1e3 for p in (50, 90, 99, 100))
    print(f"action latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {worst:.1f}")
    after = [t - last_answer for t, _, _ in done.values()]
    if len(done) < ONLINE:
        print(f"online clients with the final tally: {len(done)}/{ONLINE} (timed out)")
    else:
        print(
            f"final tally on every online client: {max(after) * 1e3:.0f} ms after the last "
            f"ballot's answer (p50 {percentile(after, 50) * 1e3:.0f} ms); "
            f"{max(t for t, _, _ in done.values()) - t0:.2f} s after the first ballot"
        )
    cmds = sum(c for _, c, _ in done.values()) / max(len(done), 1)
    syncs = sum(s for _, _, s in done.values()) / max(len(done), 1)
    print(
        f"per online client: {cmds:.1f} CMDs, {syncs:.1f} syncs; server CPU "
        f"{cpu:.2f} s ({cpu / MEMBERS * 1e3:.2f} ms per ballot, syncs and CMDs included)"
    )


def run() -> None:
    """The benchmark; prints its report."""
    asyncio.run(_run())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "members":
        ws, api, first, n = sys.argv[2:6]
        asyncio.run(_members_main(ws, api, int(first), int(n)))
    else:
        run()

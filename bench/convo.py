"""Conversation storms: 1,000 members of one group react to, then read, one message in a second.

One fresh ``magpie serve`` (embedded default: SQLite ``synchronous=FULL``, 50 ms CMD
coalescing, pinned to one core) holds a group of 1,001 members: ``host``, who sends the
messages with the business API, and the 1,000 members ``m00000``…``m00999``.

1. **Reaction storm.** Every member adds one emoji (one of four, uneven on purpose) to one
   plain message over ``POST /reactions`` with their own user token; the requests are
   scheduled evenly over one second on 200 keep-alive connections. Every tenth member sends
   the same request again right after the answer (it must change nothing: ``changed:
   false``).
2. **Read-receipt storm.** Every member reports one message sent with the receipt setting
   (``0x80``) read over ``POST /message/readed`` (user token, same schedule, the same tenth
   repeats it: ``skipped``).

Meanwhile 150 members are online as real WuKongIM clients (``RawClient``, in a separate
process, so their decryption and syncing do not slow the load down) and react to every CMD
like an app does: ``syncMessageReaction`` → ``/reaction/sync`` from their cursor,
``syncMessageExtra`` → ``/message/extra/sync`` from theirs; each notes when its copy holds
the final state (every member's emoji, exactly once / ``readed_count`` 1,000).

Checked (``exact``): every first request applied and every repeat changed nothing; the final
state read back from the server is exactly the expected one (1,000 reaction rows, one per
member with that member's emoji, per-emoji counts and reaction seq 1,000; ``readed_count``
1,000, ``unread_count`` 0, the "read by" list the 1,000 members); every online member
converged. Reported: changes/s, request latency p50 / p99 (from the request's scheduled
time), server CPU per change (from the first request until every online member has the final
state: the CMDs and the online members' syncs included), the time from the last answer until
every online member converged, CMDs and syncs per online member.

Then, in the same run, ``bench ext``'s CAS update benchmark (20 business-API writers doing
compare-and-set updates of their own message, 5 members online) on its own fresh server, and
the storms' figures as ratios to it. The two load shapes differ: the storms offer 1,000
changes in one second (open loop, user tokens, 150 online members syncing), the CAS writers
run closed loop as fast as the server answers (business key, 5 online members) — so the CPU
per change is the comparable figure; changes/s of a storm is bounded by the offered rate.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench._servers import (
    API_KEY,
    LOAD_CPUS,
    CpuMeter,
    Server,
    magpie_server,
    percentile,
    pinned,
    pinning,
)
from bench.cards import Http, add_members, issue_tokens

MEMBERS = 1000
ONLINE = 150
SPREAD = 1.0
CONNECTIONS = 200
REPEAT_EVERY = 10
CHANNEL = "convo"
GROUP = 2
HOST = "host"
RECEIPT = 0x80
EMOJI = ("👍", "🎉", "😂", "🔥")
DONE_TIMEOUT = 120.0
PLAIN = "eyJ0eXBlIjoxLCJjb250ZW50IjoiaGVsbG8gYWxsIn0="  # {"type":1,"content":"hello all"}


def uid(i: int) -> str:
    return f"m{i:05d}"


def token(member: str) -> str:
    return f"tok-{member}"


def emoji_of(i: int) -> str:
    """Member ``i``'s emoji (uneven on purpose)."""
    return EMOJI[(i * i + i // 7) % len(EMOJI)]


def expected_counts(n: int) -> dict[str, int]:
    counts = dict.fromkeys(EMOJI, 0)
    for i in range(n):
        counts[emoji_of(i)] += 1
    return counts


# --- the online members (own process) --------------------------------------------------------


async def _sync_reactions(http: Http, cursor: int, held: dict[str, set[str]]) -> tuple[int, int]:
    """Pages of ``/reaction/sync`` from ``cursor`` into ``held`` (uid -> emoji):
    (new cursor, requests)."""
    requests = 0
    while True:
        body = {"channel_id": CHANNEL, "channel_type": GROUP, "seq": cursor, "limit": 1000}
        status, rows = await http.request("POST", "/reaction/sync", body)
        requests += 1
        if status != 200:  # e.g. 429 under the per-token rate: wait, then again
            await asyncio.sleep(0.2)
            continue
        for row in rows:
            cursor = max(cursor, row["seq"])
            mine = held.setdefault(row["uid"], set())
            if row["is_deleted"]:
                mine.discard(row["emoji"])
            else:
                mine.add(row["emoji"])
        if len(rows) < 1000:
            return cursor, requests


async def _sync_extra(http: Http, cursor: int, mid: str) -> tuple[int, int, int]:
    """Pages of ``/message/extra/sync`` from ``cursor``: (new cursor, requests, the
    message's ``readed_count`` seen, -1 if not in these pages)."""
    requests, readed = 0, -1
    while True:
        body = {"channel_id": CHANNEL, "channel_type": GROUP, "extra_version": cursor}
        status, page = await http.request("POST", "/message/extra/sync", {**body, "envelope": 1})
        requests += 1
        if status != 200:
            await asyncio.sleep(0.2)
            continue
        for row in page["rows"]:
            cursor = max(cursor, row["extra_version"])
            if row["message_id_str"] == mid:
                readed = row["readed_count"]
        if not page["more"]:
            return cursor, requests, readed


def _reactions_final(held: dict[str, set[str]], n: int) -> bool:
    return len(held) == n and all(held.get(uid(i)) == {emoji_of(i)} for i in range(n))


async def _member(
    mode: str, ws_url: str, api_url: str, me: str, mid: str, n: int, out: dict[str, Any]
) -> None:
    """Connect, then sync on every CMD of ``mode`` until the final state is held."""
    from magpie.client.raw import RawClient

    client = RawClient(ws_url, me, token(me))
    await client.connect(timeout=60)
    http = Http(api_url, token(me))
    out["ready"] += 1
    cursor, cmds, syncs = 0, 0, 0
    held: dict[str, set[str]] = {}
    want = "syncMessageReaction" if mode == "reactions" else "syncMessageExtra"
    try:
        while True:
            content = json.loads((await client.messages.get()).payload)
            if content.get("cmd") != want:
                continue
            cmds += 1
            if mode == "reactions":
                cursor, requests = await _sync_reactions(http, cursor, held)
                final = _reactions_final(held, n)
            else:
                cursor, requests, readed = await _sync_extra(http, cursor, mid)
                final = readed == n
            syncs += requests
            if final:
                out["done"][me] = (time.monotonic(), cmds, syncs, http.received)
                return
    finally:
        http.close()
        await client.close()


async def _members_main(
    mode: str, ws_url: str, api_url: str, online: int, mid: str, n: int
) -> None:
    out: dict[str, Any] = {"ready": 0, "done": {}}
    tasks = [
        asyncio.create_task(_member(mode, ws_url, api_url, uid(i), mid, n, out))
        for i in range(online)
    ]
    while out["ready"] < online:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.wait(tasks, timeout=DONE_TIMEOUT)
    print(json.dumps(out["done"]), flush=True)


def _start_members(
    mode: str, server: Server, online: int, mid: str, n: int
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "bench.convo", "members", mode),
            *(server.ws_url, server.api_url, str(online), mid, str(n)),
        ],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pinned(LOAD_CPUS),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"member clients failed: {line!r}")
    return proc


# --- the storm ---------------------------------------------------------------------------------


@dataclass
class Storm:
    """One storm's figures."""

    name: str
    n: int
    applied: int
    repeats_ok: bool
    exact: bool
    converged: int
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    converge_ms: float
    cmds: float
    syncs: float

    @property
    def ok(self) -> bool:
        return self.exact and self.repeats_ok and self.applied == self.n


def _request(mode: str, mid: str, i: int) -> tuple[str, dict[str, Any]]:
    if mode == "reactions":
        body: dict[str, Any] = {"message_id": mid, "emoji": emoji_of(i), "action": "add"}
        path = "/reactions"
    else:
        body, path = {"message_ids": [mid]}, "/message/readed"
    return path, {"channel_id": CHANNEL, "channel_type": GROUP, **body}


def _changed(mode: str, status: int, answer: Any, mid: str) -> bool | None:
    """Whether the answer says the request changed the state (None: an error)."""
    if status != 200:
        return None
    if mode == "reactions":
        return bool(answer["data"]["changed"])
    return mid in answer["data"]["applied"]


async def _one(
    pool: asyncio.Queue[Http], mode: str, mid: str, i: int, at: float, out: list[Any]
) -> None:
    """Member ``i``'s request at ``at`` (and again for every tenth): appends
    (changed, repeat changed or None, latency, answered at)."""
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    http = await pool.get()
    try:
        http._token = token(uid(i))  # one connection, many users: each request its token
        path, body = _request(mode, mid, i)
        status, answer = await http.request("POST", path, body)
        done = time.monotonic()
        repeat: bool | None = False
        if i % REPEAT_EVERY == 0:
            again = await http.request("POST", path, body)
            repeat = _changed(mode, *again, mid)
    finally:
        pool.put_nowait(http)
    out.append((_changed(mode, status, answer, mid), repeat, done - at, done))


async def _setup(server: Server, n: int) -> None:
    members = [uid(i) for i in range(n)]
    add_members(server, CHANNEL, members, first=[HOST])
    await issue_tokens(server.api_url, members, token)


def _send(server: Server, setting: int) -> str:
    body = {
        "from_uid": HOST,
        "channel_id": CHANNEL,
        "channel_type": GROUP,
        "payload": PLAIN,
        "setting": setting,
    }
    answer = server.api("/message/send", body)
    assert isinstance(answer, dict), answer
    return str(answer["data"]["message_id"])


async def _final_reactions(server: Server, mid: str, n: int) -> bool:
    """The server's state after the reaction storm is exactly the expected one."""
    http = Http(server.api_url, token(uid(0)))
    try:
        rows: list[dict[str, Any]] = []
        while True:
            body = {"channel_id": CHANNEL, "channel_type": GROUP, "seq": 0, "limit": 1000}
            body["seq"] = rows[-1]["seq"] if rows else 0
            status, page = await http.request("POST", "/reaction/sync", body)
            assert status == 200, page
            rows += page
            if len(page) < 1000:
                break
        once = len(rows) == n and len({r["uid"] for r in rows}) == n
        right = all(
            r["message_id_str"] == mid
            and not r["is_deleted"]
            and r["emoji"] == emoji_of(int(r["uid"][1:]))
            for r in rows
        )
        seqs = sorted(r["seq"] for r in rows) == list(range(1, n + 1))
        body = {"login_uid": uid(0), "channel_id": CHANNEL, "channel_type": GROUP, "limit": 10}
        status, answer = await http.request("POST", "/channel/messagesync", body)
        assert status == 200, answer
        messages = answer["messages"]
        summary = next(m for m in messages if str(m["message_id"]) == mid)["reactions"]
        counts = {s["emoji"]: s["count"] for s in summary}
        expected = {e: c for e, c in expected_counts(n).items() if c}
        return once and right and seqs and counts == expected
    finally:
        http.close()


async def _final_receipts(server: Server, mid: str, n: int) -> bool:
    """``readed_count`` n, ``unread_count`` 0, the read-by list exactly the members."""
    http = Http(server.api_url, token(uid(0)))
    try:
        body = {"channel_id": CHANNEL, "channel_type": GROUP, "extra_version": 0, "envelope": 1}
        status, page = await http.request("POST", "/message/extra/sync", body)
        assert status == 200, page
        row = next(r for r in page["rows"] if r["message_id_str"] == mid)
        http._token = API_KEY  # the sender's view, through the business key
        readers: list[str] = []
        after = ""
        while True:
            path = f"/messages/{mid}/receipt?limit=1000&after={after}&login_uid={HOST}"
            status, answer = await http.request("GET", path)
            assert status == 200, answer
            readers += [r["uid"] for r in answer["data"]]
            if not answer["more"]:
                break
            after = readers[-1]
        counts = (row["readed_count"], row["unread_count"]) == (n, 0)
        return counts and sorted(readers) == [uid(i) for i in range(n)]
    finally:
        http.close()


async def _storm(server: Server, mode: str, mid: str, n: int, online: int) -> Storm:
    members = _start_members(mode, server, online, mid, n)
    try:
        await asyncio.sleep(0.5)  # the message's RECV settles
        pool: asyncio.Queue[Http] = asyncio.Queue()
        for _ in range(CONNECTIONS):
            pool.put_nowait(Http(server.api_url, ""))
        results: list[Any] = []
        meter = CpuMeter(server.pid)  # MAGPIE_BENCH_PROFILE=DIR: py-spy samples the storm
        meter.start()
        t0 = time.monotonic() + 0.1
        await asyncio.gather(
            *(_one(pool, mode, mid, i, t0 + i / n * SPREAD, results) for i in range(n))
        )
        last_answer = max(r[3] for r in results)
        assert members.stdout is not None
        done = json.loads(members.stdout.readline())
        cpu = meter.stop()
        while not pool.empty():
            pool.get_nowait().close()
    finally:
        members.wait(timeout=DONE_TIMEOUT + 10)
    check = _final_reactions if mode == "reactions" else _final_receipts
    exact = await check(server, mid, n)
    lat = [r[2] for r in results]
    clients = max(len(done), 1)
    after = [d[0] - last_answer for d in done.values()]
    return Storm(
        name=mode,
        n=n,
        applied=sum(1 for r in results if r[0] is True),
        repeats_ok=all(r[1] is False for r in results),
        exact=exact,
        converged=len(done),
        rate=n / max(last_answer - t0, 1e-9),
        p50_ms=percentile(lat, 50) * 1e3,
        p99_ms=percentile(lat, 99) * 1e3,
        cpu_ms=cpu / n * 1e3,
        converge_ms=max(after, default=float("nan")) * 1e3,
        cmds=sum(d[1] for d in done.values()) / clients,
        syncs=sum(d[2] for d in done.values()) / clients,
    )


async def _storms(n: int, online: int) -> list[Storm]:
    with magpie_server() as server:
        await _setup(server, n)
        plain, receipted = _send(server, 0), _send(server, RECEIPT)
        return [
            await _storm(server, "reactions", plain, n, online),
            await _storm(server, "receipts", receipted, n, online),
        ]


def _print(storms: list[Storm], online: int) -> None:
    print(
        f"\n{storms[0].n} members of one group (+ the sender), one request each within "
        f"{SPREAD:.0f} s on {CONNECTIONS} connections (user tokens; every {REPEAT_EVERY}th "
        f"repeated), {online} members online (RawClient, syncing on each CMD)"
    )
    print(
        f"{'storm':10}{'applied':>9}{'exact':>7}{'online ok':>11}{'changes/s':>10}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/chg':>11}{'conv ms':>9}{'CMDs':>6}{'syncs':>6}"
    )
    for s in storms:
        print(
            f"{s.name:10}{s.applied:>9}{s.ok!s:>7}{f'{s.converged}/{online}':>11}{s.rate:>10.0f}"
            f"{s.p50_ms:>8.1f}{s.p99_ms:>8.1f}{s.cpu_ms:>11.2f}{s.converge_ms:>9.0f}"
            f"{s.cmds:>6.1f}{s.syncs:>6.1f}"
        )
    print(
        "(CPU ms/chg: server CPU from the first request until every online member converged, "
        "per change; conv ms: from the last answer until the last online member converged; "
        "CMDs, syncs: per online member)"
    )


def run() -> None:
    """Both storms, then ``bench ext``'s CAS updates; prints the storms beside it."""
    from bench import ext

    # The load (this process and the online members') stays off the server's core.
    os.sched_setaffinity(0, LOAD_CPUS)
    print(pinning())
    storms = asyncio.run(_storms(MEMBERS, ONLINE))
    _print(storms, ONLINE)
    print("\nthe CAS update benchmark (bench ext), same run:")
    cas = asyncio.run(ext._cas_part())
    print(
        f"\n{'':22}{'changes/s':>10}{'CPU ms/change':>15}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'CPU vs CAS':>11}"
    )
    print(
        f"{'CAS, own message':22}{cas.rate:>10.0f}{cas.cpu_ms:>15.2f}{cas.p50_ms:>8.2f}"
        f"{cas.p99_ms:>8.2f}{1:>10.2f}x"
    )
    for s in storms:
        print(
            f"{s.name + ' storm':22}{s.rate:>10.0f}{s.cpu_ms:>15.2f}{s.p50_ms:>8.2f}"
            f"{s.p99_ms:>8.2f}{s.cpu_ms / cas.cpu_ms:>10.2f}x"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "members":
        mode, ws, api, online, mid, n = sys.argv[2:8]
        asyncio.run(_members_main(mode, ws, api, int(online), mid, int(n)))
    else:
        run()

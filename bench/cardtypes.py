"""Registered card types: actions/s beside the built-in vote, and the added latency of a
business callback on loopback.

A real ``magpie serve`` (pinned, embedded SQLite ``synchronous=FULL``) with a group of
1,000 members. Everything here talks to it over HTTP with each member's own user token.

1. **Declared transitions vs the built-in vote.** One ``vote@1`` card (4 options, named,
   live results) and one card of a registered type ``ballot@1`` whose ``vote`` action is a
   declared transition with the ``each_user_once`` guard (a per-user record and a count, the
   same shape of work as a ballot). Each of the 1,000 members acts once on each card, from
   50 keep-alive connections in a closed loop; the two kinds alternate over two rounds (a
   fresh card each round), and the report gives actions/s and server CPU per action of each
   and their ratio (target: registered ≥ 0.8 × vote).
2. **Callback latency.** 300 members click one after another (one connection, each click
   on the card's current version): on a declared-transition card, then on a card whose
   action is decided by the business server's callback — a separate process on loopback
   that checks the signature and answers a state patch. The report gives p50 / p99 of both
   and the difference: what the callback adds (the signed POST, the business server, the
   compare-and-set).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
from typing import Any

from bench._servers import API_KEY, cpu_seconds, free_port, magpie_server, percentile
from bench.cards import Http, issue_tokens

MEMBERS = 1000
CONNECTIONS = 50
ROUNDS = 2
SEQUENTIAL = 300
CHANNEL = "bench"
GROUP = 2
OPTIONS = ["Monday", "Tuesday", "Wednesday", "Thursday"]


def uid(i: int) -> str:
    return f"m{i:04d}"


def _type(name: str, handler: str, callback_url: str = "") -> dict[str, Any]:
    action: dict[str, Any] = {"name": "vote", "label": "Vote", "who": {"members": True}}
    body: dict[str, Any] = {
        "name": name,
        "version": 1,
        "initial_status": "open",
        "terminal": ["closed"],
        "state_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "initial_state": {"n": 0},
        "actions": [action],
        "transitions": [],
    }
    if handler == "callback":
        action["handler"] = "callback"
        body["callback_url"] = callback_url
    else:
        body["transitions"] = [
            {"from": "open", "action": "vote", "to": "open", "guard": "each_user_once"}
        ]
    return body


# --- the business server (own process) ---------------------------------------------------------


async def _business_main(port: int) -> None:
    """Answers every callback with ``{"state": {"n": <version>}}`` after checking the
    signature, as a business server would."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                del line
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    key, _, value = h.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers["content-length"]))
                stamp = headers["x-magpie-timestamp"]
                mac = hmac.new(API_KEY.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
                ok = hmac.compare_digest("sha256=" + mac.hexdigest(), headers["x-magpie-signature"])
                event = json.loads(body)
                answer = json.dumps({"state": {"n": event["card"]["version"]}}).encode()
                status = "200 OK" if ok else "401 No"
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def _start_business(port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cardtypes", "business", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("the business server did not start")
    return proc


# --- setup -------------------------------------------------------------------------------------


async def _setup(server: Any, callback_url: str) -> None:
    members = [uid(i) for i in range(MEMBERS)]
    server.api("/channel", {"channel_id": CHANNEL, "channel_type": GROUP, "subscribers": members})
    await issue_tokens(server.api_url, members, lambda who: f"tok-{who}")
    http = Http(server.api_url, API_KEY)
    try:
        for body in (
            _type("ballot", "transitions"),
            _type("asked", "callback", callback_url),
        ):
            status, answer = await http.request("POST", "/card-types", body)
            assert status == 200, answer
    finally:
        http.close()


async def _create(api_url: str, card: dict[str, Any]) -> tuple[str, int]:
    host = Http(api_url, f"tok-{uid(0)}")
    try:
        status, body = await host.request(
            "POST", "/cards", {"channel_id": CHANNEL, "channel_type": GROUP, "card": card}
        )
        assert status == 200, body
        return str(body["message_id_str"]), int(body["version"])
    finally:
        host.close()


def _params(kind: str, i: int) -> dict[str, Any]:
    return {"options": [(i * i + i // 7) % len(OPTIONS)]} if kind == "vote" else {}


# --- 1. throughput -----------------------------------------------------------------------------


async def _throughput(server: Any, kind: str) -> tuple[float, float, int]:
    """(actions/s, server CPU ms per action, applied) of 1,000 members acting once."""
    card: dict[str, Any] = {"type": "vote@1", "title": "Team day", "options": OPTIONS}
    if kind == "ballot":
        card = {"type": "ballot@1", "title": "Team day"}
    mid, version = await _create(server.api_url, card)
    await asyncio.sleep(0.3)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(MEMBERS):
        queue.put_nowait(i)
    statuses: list[int] = []

    async def worker() -> None:
        http = Http(server.api_url, "")
        try:
            while not queue.empty():
                i = queue.get_nowait()
                http._token = f"tok-{uid(i)}"
                body = {
                    "action": "vote",
                    "params": _params(kind, i),
                    "action_id": f"{kind}-{i}",
                    "base_version": version,
                }
                status, _ = await http.request("POST", f"/cards/{mid}/actions", body)
                statuses.append(status)
        finally:
            http.close()

    cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    wall, cpu = time.monotonic() - t0, cpu_seconds(server.pid) - cpu0
    return MEMBERS / wall, cpu / MEMBERS * 1e3, statuses.count(200)


# --- 2. callback latency -----------------------------------------------------------------------


async def _sequential(server: Any, tag: str, offset: int) -> tuple[list[float], float, int]:
    """Latencies (s) of SEQUENTIAL clicks one after another, server CPU ms per click, and
    how many were applied."""
    mid, version = await _create(server.api_url, {"type": tag, "title": "Ask"})
    http = Http(server.api_url, "")
    lat: list[float] = []
    applied = 0
    cpu0 = cpu_seconds(server.pid)
    try:
        for n in range(SEQUENTIAL):
            i = offset + n
            http._token = f"tok-{uid(i)}"
            body = {"action": "vote", "params": {}, "action_id": f"s-{i}", "base_version": version}
            t0 = time.monotonic()
            status, answer = await http.request("POST", f"/cards/{mid}/actions", body)
            lat.append(time.monotonic() - t0)
            if status == 200:
                applied += 1
                version = int(answer["version"])
    finally:
        http.close()
    return lat, (cpu_seconds(server.pid) - cpu0) / SEQUENTIAL * 1e3, applied


def _ms(values: list[float], p: float) -> float:
    return percentile(values, p) * 1e3


async def _run() -> None:
    port = free_port()
    business = _start_business(port)
    try:
        with magpie_server() as server:
            await _setup(server, f"http://127.0.0.1:{port}/cards")
            rates: dict[str, list[tuple[float, float, int]]] = {"vote": [], "ballot": []}
            for _ in range(ROUNDS):
                for kind in ("vote", "ballot"):
                    rates[kind].append(await _throughput(server, kind))
            declared = await _sequential(server, "ballot@1", 0)
            callback = await _sequential(server, "asked@1", SEQUENTIAL)
    finally:
        business.terminate()
        business.wait(timeout=10)
    _report(rates, declared, callback)


def _report(
    rates: dict[str, list[tuple[float, float, int]]],
    declared: tuple[list[float], float, int],
    callback: tuple[list[float], float, int],
) -> None:
    print(
        f"{MEMBERS} members act once each on one card, {CONNECTIONS} connections in a closed "
        f"loop, {ROUNDS} rounds alternating"
    )
    best: dict[str, float] = {}
    for kind, label in (("vote", "built-in vote@1 (ballot)"), ("ballot", "registered, declared")):
        runs = rates[kind]
        best[kind] = max(r for r, _, _ in runs)
        each = ", ".join(f"{r:.0f}/s ({c:.2f} ms CPU, {ok} ok)" for r, c, ok in runs)
        print(f"  {label:28s} {each}")
    ratio = best["ballot"] / best["vote"]
    cpu_vote = min(c for _, c, _ in rates["vote"])
    cpu_ballot = min(c for _, c, _ in rates["ballot"])
    print(
        f"  registered / vote: {ratio:.2f}x actions/s (best rounds; target >= 0.8), "
        f"server CPU per action {cpu_ballot:.2f} vs {cpu_vote:.2f} ms"
    )
    print(f"{SEQUENTIAL} clicks one after another (one connection, each on the current version)")
    rows = (("declared transition", declared), ("callback (loopback)", callback))
    for label, (lat, cpu, ok) in rows:
        print(
            f"  {label:22s} p50 {_ms(lat, 50):6.2f} ms  p99 {_ms(lat, 99):6.2f} ms  "
            f"max {_ms(lat, 100):6.2f} ms  server CPU {cpu:.2f} ms/click  applied {ok}"
        )
    print(
        f"  added by the callback: p50 {_ms(callback[0], 50) - _ms(declared[0], 50):+.2f} ms, "
        f"p99 {_ms(callback[0], 99) - _ms(declared[0], 99):+.2f} ms"
    )


def run() -> None:
    """The benchmark; prints its report."""
    asyncio.run(_run())


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "business":
        asyncio.run(_business_main(int(sys.argv[2])))
    else:
        run()

"""HTTP API request path: request-body validation alone, and whole requests.

1. **Validation**, in this process, no I/O: a ``/message/send`` body (JSON bytes in, typed
   request out) through Magpie's declared schema (``json.loads`` + ``Object.of(SendReq)``),
   through the plainest hand-written checks of the same rules (the baseline: what no schema
   layer can beat in Python), and — when ``msgspec`` is installed (the bus codec's
   library) — through ``msgspec.json.decode`` into a Struct with comparable constraints (its
   error codes and messages are not Magpie's: that is the price of adopting it).
2. **Whole requests**: ``POST /user/onlinestatus`` with 100 uids (validation of every uid and
   an in-memory look-up, nothing stored) answered by ``magpie serve``, beside a plain Starlette
   app under the same uvicorn that only decodes the JSON body (``bench/plain_http.py``); both
   pinned to one core, the load from this process on the others.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench._servers import (
    API_KEY,
    SERVER_CPUS,
    _stop,
    _wait_port,
    free_port,
    magpie_server,
    percentile,
    pinned,
    pinning,
)
from magpie.api.routes.messages import SendReq
from magpie.api.schema import Object
from magpie.config import load_settings
from magpie.domain.channels import CHANNEL_ID_PATTERN, UID_PATTERN

ROUNDS = 5
PARSES = 20_000
CONNECTIONS = 32
SECONDS = 5.0
UIDS = [f"user{i:04d}" for i in range(100)]
_TEXT = json.dumps({"type": 1, "content": "x" * 170}).encode()
BODY = json.dumps(
    {
        "header": {"red_dot": 1},
        "from_uid": "alice",
        "channel_id": "team-42",
        "channel_type": 2,
        "payload": base64.b64encode(
            json.dumps({"type": 1, "content": "x" * 170}).encode()
        ).decode(),
        "client_msg_no": "c0ffee" * 5,
    }
).encode()


# --- 1. validation ------------------------------------------------------------------------

_UID = re.compile(UID_PATTERN)
_CHANNEL_ID = re.compile(CHANNEL_ID_PATTERN)


def _plain(raw: bytes, max_payload: int) -> dict[str, Any]:
    """The same rules as ``SendReq``, checked by hand (no field paths, no error objects)."""
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("body")
    header = body.get("header") or {}
    flags = [header.get(k) or 0 for k in ("no_persist", "red_dot", "sync_once")]
    if not isinstance(header, dict) or any(f not in (0, 1) for f in flags):
        raise ValueError("header")
    sender = body.get("from_uid") or ""
    if not isinstance(sender, str) or (sender and not _UID.match(sender)):
        raise ValueError("from_uid")
    channel_id = body.get("channel_id")
    if not isinstance(channel_id, str) or not _CHANNEL_ID.match(channel_id):
        raise ValueError("channel_id")
    kind = body.get("channel_type")
    if isinstance(kind, bool) or not isinstance(kind, int) or not 1 <= kind <= 12:
        raise ValueError("channel_type")
    payload = base64.b64decode(body["payload"], validate=True)
    if len(payload) > max_payload:
        raise ValueError("payload")
    msg_no = body.get("client_msg_no") or ""
    if not isinstance(msg_no, str) or len(msg_no) > 128:
        raise ValueError("client_msg_no")
    return {**body, "payload": payload, "flags": flags}


def _msgspec_decoder(max_payload: int) -> Callable[[bytes], Any] | None:
    """``msgspec.json.decode`` into a Struct with constraints like ``SendReq``'s."""
    try:
        from bench._msgspec_send import send_decoder
    except ImportError:
        return None
    decode: Callable[[bytes], Any] = send_decoder(max_payload).decode
    return decode


def _best_us(fn: Callable[[bytes], Any]) -> float:
    """Best of :data:`ROUNDS` rounds of :data:`PARSES` calls, in µs per call."""
    fn(BODY)  # warm up, and prove the body is valid for this parser
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(PARSES):
            fn(BODY)
        best = min(best, (time.perf_counter() - t0) / PARSES)
    return best * 1e6


def _validation() -> None:
    settings = load_settings(environ={})
    limit = settings.max_payload_bytes
    spec = Object.of(SendReq, settings)
    rows: list[tuple[str, float | None]] = [
        ("plain hand-written checks (baseline)", _best_us(lambda raw: _plain(raw, limit))),
        (
            "magpie schema (json.loads + Object.parse)",
            _best_us(lambda r: spec.parse(json.loads(r), "")),
        ),
    ]
    decode = _msgspec_decoder(limit)
    rows.append(("msgspec Struct decode", None if decode is None else _best_us(decode)))
    base = rows[0][1] or 1.0
    print(f"  /message/send body, {len(BODY)} bytes; best of {ROUNDS} x {PARSES:,} calls")
    for name, us in rows:
        if us is None:
            print(f"  {name:<44} not installed (pip install msgspec to compare)")
        else:
            print(f"  {name:<44} {us:7.2f} µs/body  {us / base:5.2f}x baseline")


# --- 2. whole requests --------------------------------------------------------------------


async def _load(url: str, headers: dict[str, str]) -> tuple[float, list[float]]:
    body = json.dumps(UIDS).encode()
    lat: list[float] = []
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as http:

        async def worker(stop: float, record: bool) -> int:
            n = 0
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                r = await http.post(url, content=body)
                assert r.status_code == 200, r.text
                if record:
                    lat.append(time.perf_counter() - t0)
                n += 1
            return n

        await asyncio.gather(*(worker(time.monotonic() + 0.5, False) for _ in range(CONNECTIONS)))
        t0 = time.monotonic()
        counts = await asyncio.gather(*(worker(t0 + SECONDS, True) for _ in range(CONNECTIONS)))
        return sum(counts) / (time.monotonic() - t0), lat


def _plain_http() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    script = Path(__file__).with_name("plain_http.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)], preexec_fn=pinned(SERVER_CPUS)
    )
    _wait_port(port, proc)
    return proc, f"http://127.0.0.1:{port}/user/onlinestatus"


def _requests() -> None:
    proc, url = _plain_http()
    try:
        plain = asyncio.run(_load(url, {"Content-Type": "application/json"}))
    finally:
        _stop(proc)
    with magpie_server(token_auth="false") as server:
        auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        magpie = asyncio.run(_load(server.api_url + "/user/onlinestatus", auth))
    print(f"  POST /user/onlinestatus, {len(UIDS)} uids, {CONNECTIONS} connections, {pinning()}")
    for name, (rate, lat) in (("plain Starlette (baseline)", plain), ("magpie", magpie)):
        p50, p99 = percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3
        ratio = rate / plain[0]
        print(
            f"  {name:<28} {rate:8.0f} req/s  {ratio:5.2f}x  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
        )


def run() -> None:
    """Print both tables."""
    print("validation:")
    _validation()
    print("whole requests:")
    _requests()


if __name__ == "__main__":
    run()

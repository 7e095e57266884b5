"""HTTP API request path: request-body validation alone, and whole requests.

1. **Validation**, in this process, no I/O: a ``/message/send`` body (JSON bytes in, typed
   request out) through Magpie's declared schema (``json.loads`` + ``Object.of(SendReq)``),
   through the plainest hand-written checks of the same rules (the baseline: what no schema
   layer can beat in Python), and — when ``msgspec`` is installed (the bus codec's
   library) — through ``msgspec.json.decode`` into a Struct with comparable constraints (its
   error codes and messages are not Magpie's: that is the price of adopting it).
2. **Whole requests**: ``POST /message/send`` (a text message, stored with FULL durability)
   and ``POST /message/extra/update`` (last-writer-wins status, stored) answered by ``magpie
   serve``, beside a plain Starlette endpoint under the same uvicorn (uvloop, httptools) that
   reads the body and answers a constant (``bench/plain_http.py``), same run; every server
   pinned to one core, the load in its own process (``bench/httpload.py``) on the others.
   Primary figure: requests/s (target: ``/message/send`` ≥ 0.3× the no-op endpoint), with
   server CPU per request beside it.
3. **Reads** (same server, same run): ``POST /message/extra/sync`` (the newest
   :data:`PAGE` extension rows of a person channel), ``POST /channel/messagesync`` (the
   newest :data:`PAGE` messages of it, each with its extension and reactions) and ``POST
   /conversation/sync`` (the reader's conversations with :data:`PAGE` recent messages), read
   by a user through the business key, over a channel of :data:`PAGE` messages each with a
   changed extension (status, ``extra`` of a few keys, a read count).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._servers import (
    API_KEY,
    LOAD_CPUS,
    SERVER_CPUS,
    CpuMeter,
    LoadClient,
    Server,
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
#: Messages (each with an extension) in the channel the read rows page through.
PAGE = 20
SECONDS = float(os.environ.get("MAGPIE_BENCH_SECONDS", "5"))
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


@dataclass(frozen=True, slots=True)
class Row:
    """One whole-request row: rate, server CPU per request, latency percentiles."""

    name: str
    rate: float
    cpu_us: float
    p50_ms: float
    p99_ms: float


@contextmanager
def _http_load(port: int, kind: str, auth: str = "", arg: str = "") -> Iterator[LoadClient]:
    """``bench/httpload.py`` with :data:`CONNECTIONS` connections, pinned to the load cores."""
    script = Path(__file__).with_name("httpload.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "127.0.0.1", str(port), str(CONNECTIONS), kind, auth, arg],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pinned(LOAD_CPUS),
    )
    client = LoadClient(proc)
    try:
        if (line := client.readline()) != "ready":
            raise RuntimeError(f"HTTP load client failed: {line!r}")
        yield client
    finally:
        client.quit()


def _drive(name: str, pid: int, port: int, kind: str, auth: str = "", arg: str = "") -> Row:
    with _http_load(port, kind, auth, arg) as load:
        load.command("run 0.5")  # warm-up
        cpu = CpuMeter(pid)
        cpu.start()
        answer = load.command(f"run {SECONDS}")
        cpu.stop()
    assert isinstance(answer, dict)
    if answer["errors"]:
        raise RuntimeError(f"{name}: {answer['errors']} requests not answered 200")
    count, lat = int(answer["count"]), [x / 1000 for x in answer["lat_us"]]
    return Row(
        name,
        count / SECONDS,
        cpu.seconds / max(1, count) * 1e6,
        percentile(lat, 50),
        percentile(lat, 99),
    )


def _plain_row() -> Row:
    port = free_port()
    script = Path(__file__).with_name("plain_http.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)], preexec_fn=pinned(SERVER_CPUS)
    )
    try:
        _wait_port(port, proc)
        return _drive("plain Starlette no-op", proc.pid, port, "noop")
    finally:
        _stop(proc)


def _magpie_rows() -> list[Row]:
    # The per-token rate and in-flight caps stay on (the business key is not capped by them).
    with magpie_server(token_auth="false") as server:
        port = int(server.api_url.rsplit(":", 1)[1])
        send = _drive("magpie /message/send", server.pid, port, "send", API_KEY)
        ids = _channel_with_extensions(server)
        extra = _drive("magpie /message/extra/update", server.pid, port, "extra", API_KEY, ids[0])
        page = str(PAGE)
        return [
            send,
            extra,
            _drive("magpie /message/extra/sync", server.pid, port, "extrasync", API_KEY, page),
            _drive("magpie /channel/messagesync", server.pid, port, "msgsync", API_KEY, page),
            _drive("magpie /conversation/sync", server.pid, port, "convsync", API_KEY, page),
        ]


def _channel_with_extensions(server: Server) -> list[str]:
    """:data:`PAGE` messages from alice to bob, each with a changed extension (a status, an
    ``extra`` of a few keys, a read count); their ids."""
    ids = []
    for i in range(PAGE):
        text = json.dumps({"type": 1, "content": f"message {i} " + "x" * 120}).encode()
        answer = server.api(
            "/message/send",
            {"from_uid": "alice", "channel_id": "bob", "channel_type": 1,
             "payload": base64.b64encode(text).decode(), "client_msg_no": f"bench-page-{i}"},
        )  # fmt: skip
        assert isinstance(answer, dict)
        message_id = str(answer["data"]["message_id"])
        patch = {"likes": i, "tags": ["todo", "bench"], "note": "n" * 60, "done": i % 2 == 0}
        answer = server.api(
            "/message/extra/update",
            {"message_id": message_id, "mode": "lww", "status": "open", "extra_patch": patch,
             "readed_count": i, "action_id": f"bench-page-{i}"},
        )  # fmt: skip
        assert isinstance(answer, dict), answer
        ids.append(message_id)
    rows = server.api(
        "/message/extra/sync",
        {"login_uid": "alice", "channel_id": "bob", "channel_type": 1, "limit": PAGE},
    )
    assert isinstance(rows, list) and len(rows) == PAGE, rows  # what the reads will page
    return ids


def measure(rounds: int = 1) -> list[Row]:
    """The plain no-op endpoint, then Magpie's, ``rounds`` times (baseline first each time)."""
    rows: list[Row] = []
    for _ in range(rounds):
        rows.append(_plain_row())
        rows.extend(_magpie_rows())
    return rows


def _requests() -> None:
    print(f"  {CONNECTIONS} keep-alive connections, 1 request outstanding each, {SECONDS:.0f} s; "
          f"load in its own process; {pinning()}")  # fmt: skip
    rows = measure(int(os.environ.get("MAGPIE_BENCH_ROUNDS", "1")))
    print(f"  {'':32}{'CPU µs/req':>11}{'x no-op':>9}{'req/s':>9}{'x no-op':>9}"
          f"{'p50 ms':>8}{'p99 ms':>8}")  # fmt: skip
    base = rows[0]
    for r in rows:
        if r.name.startswith("plain"):
            base = r
        print(
            f"  {r.name:32}{r.cpu_us:>11.1f}{r.cpu_us / base.cpu_us:>8.2f}x{r.rate:>9.0f}"
            f"{r.rate / base.rate:>8.2f}x{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}"
        )
        if r.name == "magpie /message/send":
            print(f"  /message/send: {r.rate / base.rate:.2f}x the no-op Starlette rate "
                  f"(target ≥ 0.3x)")  # fmt: skip


def run() -> None:
    """Print both tables."""
    os.sched_setaffinity(0, LOAD_CPUS)
    print("validation:")
    _validation()
    print("whole requests:")
    _requests()


if __name__ == "__main__":
    run()

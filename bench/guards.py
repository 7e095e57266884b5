"""What the cluster guards add to the hot path, beside the same work without them.

* A message id (``Snowflake.next_id``) with the node-id lease check (one call of
  ``NodeLease.valid``: a monotonic clock read and a compare) vs the generator without one.
* A JSON request body read as the API reads it (``json.loads``), with the U+0000 check
  (a byte search for the escape; the decoded value is walked only when it is found) vs
  ``json.loads`` alone, for a send body of 1 KiB and an extension update of 15 KB (no
  backslash: one ``memchr``), the update with a backslash but no NUL (``\\n`` in a value:
  the six-byte search too), and with U+0000 (the walk: the cost of a refusal).

Figures: mean ns per call over batches (``perf_counter_ns``), best of five batches, garbage
collector off — the baseline in the same run, then the ratio.
"""

from __future__ import annotations

import base64
import gc
import json
import time
from collections.abc import Callable

from magpie.api.http import may_hold_nul, nul_path
from magpie.core.ids import Snowflake
from magpie.core.nodes import NodeLease

BATCH = 200_000
ROUNDS = 5


def _ns_per_call(fn: Callable[[], object], n: int = BATCH) -> float:
    best = float("inf")
    gc.disable()
    try:
        for _ in range(ROUNDS):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter_ns() - t0) / n)
    finally:
        gc.enable()
    return best


class _Store:
    """Nothing is called on it: the lease is only checked, not renewed."""


def _lease() -> NodeLease:
    lease = NodeLease(_Store(), instance="bench", lease=3600.0)  # type: ignore[arg-type]
    lease._id = 7
    lease._valid_until = time.monotonic() + 3600
    return lease


def _plain(raw: bytes) -> object:
    return json.loads(raw)


def _read(raw: bytes) -> object:
    decoded = json.loads(raw)
    if may_hold_nul(raw):
        nul_path(decoded)
    return decoded


def _bodies() -> dict[str, bytes]:
    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
    content = json.dumps({"type": 1, "content": text * 12}).encode()
    send = {
        "from_uid": "alice",
        "channel_id": "group-1",
        "channel_type": 2,
        "payload": base64.b64encode(content).decode(),
    }
    patch = {f"key{i}": {"value": (text * 4)[:200], "n": i} for i in range(64)}
    update = {"message_id": 1, "action_id": "a", "mode": "lww", "extra_patch": patch}
    escaped = {**update, "extra_patch": {**patch, "z": "line\nbreak"}}
    nul = {**update, "extra_patch": {**patch, "z": "a\x00"}}
    return {
        f"send body ({len(json.dumps(send))} B)": json.dumps(send).encode(),
        f"update body ({len(json.dumps(update))} B)": json.dumps(update).encode(),
        "the same with a \\n": json.dumps(escaped).encode(),
        "the same with U+0000 (refused)": json.dumps(nul).encode(),
    }


def run() -> None:
    """Print the table."""
    plain = Snowflake(7)
    guarded = Snowflake(None)
    guarded.assign(7, _lease().valid)
    rows = [("message id", _ns_per_call(plain.next_id), _ns_per_call(guarded.next_id))]
    for name, raw in _bodies().items():
        base = _ns_per_call(lambda raw=raw: _plain(raw), 20_000)  # type: ignore[misc]
        rows.append((name, base, _ns_per_call(lambda raw=raw: _read(raw), 20_000)))  # type: ignore[misc]
    print("cluster guards on the hot path (ns per call, best of 5 batches)")
    print(f"{'':36} {'baseline':>10} {'guarded':>10} {'ratio':>7} {'added':>8}")
    for name, base, with_guard in rows:
        print(
            f"{name:36} {base:10.0f} {with_guard:10.0f} {with_guard / base:7.2f} "
            f"{with_guard - base:8.0f}"
        )

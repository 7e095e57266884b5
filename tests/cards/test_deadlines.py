"""Card deadlines: the server's own transitions, pushed like any change, durable across a
restart; and the scheduler alone."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from magpie.app import Node
from magpie.cards.scheduler import CardDb, Scheduler
from tests.cards.support import act, add_tokens, create, now_ms, sync_rows, user
from tests.support.nodes import api, make_group, running_node, time_scale

T = 5 * time_scale()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = T) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def status_of(node: Node, mid: int) -> str:
    async with api(node) as http:
        status: str = (await http.get(f"/cards/{mid}")).json()["status"]
        return status


async def test_an_offline_client_sees_the_expiry_after_it_syncs(node: Node) -> None:
    async with user(node, "a") as a:
        soon = now_ms() + int(600 * time_scale())
        card = await create(a, type="approval@1", title="Soon", approvers=["b"], expires_at=soon)
    mid = card["message_id"]
    async with user(node, "b") as b:
        (row,) = await sync_rows(b)
        cursor = row["extra_version"]
        assert row["extra"]["card"]["can_act"] is True
    # b is offline now; the deadline passes and the server expires the card by itself.
    await eventually(lambda: _is(node, mid, "expired"))
    async with user(node, "b") as b:
        (row,) = await sync_rows(b, after=cursor)
        view = row["extra"]["card"]
        assert (row["status"], view["status"], view["can_act"]) == ("expired", "expired", False)
        assert view["outcome"] == "Expired" and view["unavailable_reason"] == "the card is expired"
        assert row["updated_by"]["uid"] == "system"
        late = await act(b, mid, "approve", base=row["version"])
        assert (late.status_code, late.json()["reason"]) == (409, "closed")
        ops = (await b.get(f"/cards/{mid}/ops")).json()["data"]
    assert [(o["action"], o["actor_uid"], o["status_after"]) for o in ops[1:2]] == [
        ("expire", "system", "expired")
    ]
    # The change was important: a persisted CMD (after the coalescing window) waits for b.
    await eventually(lambda: _queued_cmd(node, "b", row["extra_version"]))
    assert node.cards.scheduler.pending() == {}


async def test_a_decision_before_the_deadline_cancels_it(node: Node) -> None:
    async with user(node, "a") as a, user(node, "b") as b:
        card = await create(
            a, type="approval@1", title="x", approvers=["b"], expires_at=now_ms() + 60_000
        )
        assert node.cards.scheduler.pending() == {
            (card["message_id"], "expire"): card["deadline"]["at"]
        }
        assert (await act(b, card["message_id"], "approve", base=1)).status_code == 200
    assert node.cards.scheduler.pending() == {}
    assert _rows(node) == []


async def test_deadlines_survive_a_restart(tmp_path: Path) -> None:
    t0 = now_ms()
    async with running_node(tmp_path) as node:
        await add_tokens(node, ["a", "b"])
        await make_group(node, "g1", ["a", "b"])
        async with user(node, "a") as a:
            closes = t0 + int(1000 * time_scale())
            vote = await create(a, type="vote@1", title="v", options=["x", "y"], closes_at=closes)
            due = t0 + int(2500 * time_scale())
            task = await create(a, type="task@1", title="t", assignees=["b"], due=due)
    assert len(_rows_at(tmp_path)) == 2  # persisted while the node is down
    await asyncio.sleep(max(0.0, (closes + 100 - now_ms()) / 1000))
    async with running_node(tmp_path) as node:
        await eventually(lambda: _is(node, vote["message_id"], "closed"))
        if now_ms() < due - 300:  # still in the future: armed, not fired
            assert list(node.cards.scheduler.pending()) == [(task["message_id"], "due")]
            assert not await _overdue(node, task["message_id"])
        await eventually(lambda: _overdue(node, task["message_id"]))
        async with user(node, "b") as b:
            ops = (await b.get(f"/cards/{vote['message_id']}/ops")).json()["data"]
    assert (ops[-1]["action"], ops[-1]["actor_uid"]) == ("close", "system")
    assert _rows_at(tmp_path) == []


async def test_the_scheduler_fires_in_order_retries_failures_and_rearms(tmp_path: Path) -> None:
    db = CardDb(tmp_path / "cards.db")
    await db.open()
    fired: list[tuple[int, str]] = []
    failures = {2: 1}

    async def fire(message_id: int, action: str) -> bool:
        if failures.get(message_id, 0) > 0:
            failures[message_id] -= 1
            raise RuntimeError("store down")
        fired.append((message_id, action))
        return True

    sched = Scheduler(db, fire, clock_ms=now_ms, retry_seconds=0.05)
    await sched.start()
    t = now_ms()
    await sched.add(3, "close", t + 120)
    await sched.add(2, "expire", t + 60)
    await sched.add(1, "close", t + 30)
    await sched.add(4, "close", t + 90)
    await sched.cancel(4)
    await sched.add(5, "due", t + 60_000)
    await eventually(lambda: _done(fired, 3))
    assert fired == [(1, "close"), (2, "expire"), (3, "close")]
    await sched.stop()
    again = Scheduler(db, fire, clock_ms=now_ms)
    await again.start()
    assert again.pending() == {(5, "due"): t + 60_000}
    await again.stop()
    await db.close()


async def _done(fired: list[Any], n: int) -> bool:
    return len(fired) >= n


async def _is(node: Node, mid: int, status: str) -> bool:
    return await status_of(node, mid) == status


async def _overdue(node: Node, mid: int) -> bool:
    async with api(node) as http:
        return bool((await http.get(f"/cards/{mid}")).json()["state"]["overdue"])


async def _queued_cmd(node: Node, uid: str, extra_version: int) -> bool:
    """Whether ``uid``'s offline queue holds a syncMessageExtra CMD up to ``extra_version``."""
    async with api(node) as http:
        queued = (await http.post("/message/sync", json={"uid": uid})).json()
    params = [_cmd(m)["param"] for m in queued if _cmd(m).get("cmd") == "syncMessageExtra"]
    return any(p["extra_version"] == extra_version for p in params)


def _cmd(message: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(base64.b64decode(message["payload"]))
    return content


def _rows_at(data_dir: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(data_dir / "cards.db")
    try:
        return conn.execute("SELECT message_id, action FROM deadlines").fetchall()
    finally:
        conn.close()


def _rows(node: Node) -> list[tuple[Any, ...]]:
    return _rows_at(Path(node.settings.data_dir))

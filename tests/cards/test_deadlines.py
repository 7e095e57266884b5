"""Card deadlines: the server's own transitions, pushed like any change, durable across a
restart, fired once by one of several nodes; the shared secret; the one-time import of an
older version's ``cards.db``; and the deadline timer alone."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from magpie.app import Node
from magpie.cards import Deadline
from magpie.cards_adapter import DEADLINE_KIND, deadline_job, deadline_worker
from magpie.core.jobs import WorkerConfig
from magpie.errors import StartupError
from magpie.store.sqlite import SqliteStore
from tests.cards.support import act, add_tokens, create, now_ms, sync_rows, user
from tests.support.nodes import api, make_group, running_node, time_scale
from tests.support.postgres import new_schema

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
    assert await node.cards.deadlines() == {}


async def test_a_decision_before_the_deadline_cancels_it(node: Node) -> None:
    async with user(node, "a") as a, user(node, "b") as b:
        card = await create(
            a, type="approval@1", title="x", approvers=["b"], expires_at=now_ms() + 60_000
        )
        assert await node.cards.deadlines() == {
            (card["message_id"], "expire"): card["deadline"]["at"]
        }
        assert (await act(b, card["message_id"], "approve", base=1)).status_code == 200
    assert await node.cards.deadlines() == {}
    assert _stored_deadlines(Path(node.settings.data_dir)) == []


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
    assert len(_stored_deadlines(tmp_path)) == 2  # in the store while the node is down
    await asyncio.sleep(max(0.0, (closes + 100 - now_ms()) / 1000))
    async with running_node(tmp_path) as node:
        await eventually(lambda: _is(node, vote["message_id"], "closed"))
        if now_ms() < due - 300:  # still in the future: pending, not fired
            assert list(await node.cards.deadlines()) == [(task["message_id"], "due")]
            assert not await _overdue(node, task["message_id"])
        await eventually(lambda: _overdue(node, task["message_id"]))
        async with user(node, "b") as b:
            ops = (await b.get(f"/cards/{vote['message_id']}/ops")).json()["data"]
    assert (ops[-1]["action"], ops[-1]["actor_uid"]) == ("close", "system")
    assert _stored_deadlines(tmp_path) == []


# --- several nodes on one PostgreSQL database -------------------------------------------------


@asynccontextmanager
async def cluster(tmp_path: Path, url: str, n: int, **kw: Any) -> AsyncIterator[list[Node]]:
    """``n`` nodes (node ids 1..n) sharing the store at ``url``."""
    async with AsyncExitStack() as stack:
        nodes = []
        for i in range(1, n + 1):
            node = await stack.enter_async_context(
                running_node(tmp_path / f"n{i}", store_url=url, store_pool_size=3, node_id=i, **kw)
            )
            nodes.append(node)
        yield nodes


def done_deadlines(node: Node) -> float:
    labels = {"kind": DEADLINE_KIND, "result": "done"}
    return node.metrics.registry.get_sample_value("magpie_jobs_total", labels) or 0.0


async def test_with_two_nodes_a_deadline_fires_once(tmp_path: Path, pg_database: str) -> None:
    url = new_schema(pg_database, "cards")
    async with cluster(tmp_path, url, 2, job_poll=0.05) as (one, two):
        await add_tokens(one, ["a", "b"])
        await make_group(one, "g1", ["a", "b"])
        async with user(one, "a") as a:
            soon = now_ms() + int(2000 * time_scale())
            cards = await asyncio.gather(
                *(
                    create(a, type="vote@1", title=f"v{i}", options=["x", "y"], closes_at=soon)
                    for i in range(6)
                )
            )
        for card in cards:
            await eventually(lambda mid=card["message_id"]: _is(two, mid, "closed"))
        async with user(two, "b") as b:
            for card in cards:
                ops = (await b.get(f"/cards/{card['message_id']}/ops")).json()["data"]
                assert [o["action"] for o in ops] == ["create", "close"]
        await asyncio.sleep(0.3)  # time for a second firing, if there were one
        assert done_deadlines(one) + done_deadlines(two) == len(cards), "each fired by one node"
        assert await one.cards.deadlines() == {}


async def test_the_card_secret_is_shared_by_every_node(tmp_path: Path, pg_database: str) -> None:
    url = new_schema(pg_database, "cards")
    async with cluster(tmp_path, url, 2) as (one, two):
        await add_tokens(one, ["a", "b"])
        await make_group(one, "g1", ["a", "b"])
        async with user(one, "a") as a:
            card = await create(a, type="vote@1", title="v", options=["x", "y"], anonymous=True)
        mid = card["message_id"]
        async with user(one, "b") as b1, user(two, "b") as b2:
            first = await act(b1, mid, "vote", {"options": [0]}, base=1, action_id="b-once")
            again = await act(b2, mid, "vote", {"options": [0]}, base=1, action_id="b-once")
            assert first.status_code == again.status_code == 200, again.text
            assert again.json()["duplicate"] is True, "one action-id namespace on every node"
            view1 = (await b1.get(f"/cards/{mid}")).json()
            view2 = (await b2.get(f"/cards/{mid}")).json()
    assert view1 == view2, "the same ballot pseudonym on every node"


# --- the old cards.db ---------------------------------------------------------------------------


def _legacy_file(path: Path, secret: bytes, deadlines: list[tuple[int, str, int]]) -> None:
    """A ``cards.db`` as older versions wrote it."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
        CREATE TABLE deadlines (message_id INTEGER NOT NULL, action TEXT NOT NULL,
            at_ms INTEGER NOT NULL, PRIMARY KEY (message_id, action));
        """
    )
    conn.execute("INSERT INTO meta VALUES ('secret', ?)", (secret,))
    conn.executemany("INSERT INTO deadlines VALUES (?, ?, ?)", deadlines)
    conn.commit()
    conn.close()


async def test_an_old_cards_db_is_imported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = bytes(range(32))
    later = now_ms() + 3_600_000
    _legacy_file(tmp_path / "cards.db", secret, [(42, "expire", later), (43, "close", later + 1)])
    with caplog.at_level(logging.INFO, logger="magpie.cards.legacy"):
        async with running_node(tmp_path) as node:
            assert await node.store.kv_setdefault("secret:cards", b"other") == secret
            assert await node.cards.deadlines() == {(42, "expire"): later, (43, "close"): later + 1}
    assert not (tmp_path / "cards.db").exists() and (tmp_path / "cards.db.imported").exists()
    (line,) = [r.getMessage() for r in caplog.records if "imported" in r.getMessage()]
    assert "2 pending card deadline(s)" in line and "no longer used" in line
    caplog.clear()
    async with running_node(tmp_path) as node:
        assert len(await node.cards.deadlines()) == 2, "not imported twice"
    assert not [r for r in caplog.records if "imported" in r.getMessage()]


async def test_a_secret_already_in_the_store_wins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_node(tmp_path) as node:
        first = await node.store.kv_setdefault("secret:cards", b"never used")
    _legacy_file(tmp_path / "cards.db", b"\x01" * 32, [])
    with caplog.at_level(logging.WARNING, logger="magpie.cards.legacy"):
        async with running_node(tmp_path) as node:
            assert await node.store.kv_setdefault("secret:cards", b"x") == first
    assert any("another card secret" in r.getMessage() for r in caplog.records)


async def test_an_unreadable_cards_db_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "cards.db").write_bytes(b"not a database" * 100)
    with pytest.raises(StartupError, match=r"cards\.db") as info:
        async with running_node(tmp_path):
            pass
    assert "backup" in info.value.fix
    assert (tmp_path / "cards.db").exists(), "left in place for the operator"


async def test_a_custom_cards_db_file_is_deprecated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _legacy_file(tmp_path / "old-cards.sqlite", b"\x02" * 32, [(7, "due", now_ms() + 60_000)])
    with caplog.at_level(logging.WARNING, logger="magpie.app"):
        async with running_node(tmp_path, cards_db_file="old-cards.sqlite") as node:
            assert list(await node.cards.deadlines()) == [(7, "due")]
    assert any("cards_db_file is deprecated" in r.getMessage() for r in caplog.records)


# --- the deadline timer alone (a real store, a recording fire) ------------------------------------


async def test_the_timer_fires_in_order_retries_failures_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db", synchronous="NORMAL")
    await store.open()
    fired: list[tuple[int, str]] = []
    failures = {2: 1}

    async def fire(message_id: int, action: str) -> bool:
        if failures.get(message_id, 0) > 0:
            failures[message_id] -= 1
            raise RuntimeError("store down")
        fired.append((message_id, action))
        return True

    config = WorkerConfig(kind=DEADLINE_KIND, owner="t", backoff=0.05, max_backoff=0.05, poll=0.05)
    timer = deadline_worker(store, config, fire, clock_ms=now_ms)
    t = now_ms()
    deadlines = [(3, "close", t + 500), (2, "expire", t + 60), (1, "close", t + 30)]
    deadlines += [(4, "close", t + 90), (5, "due", t + 60_000)]
    await store.enqueue_jobs([deadline_job(Deadline(*d)) for d in deadlines])
    await store.cancel_jobs(DEADLINE_KIND, ["4:close"])
    timer.start()
    try:
        await eventually(lambda: _fired(fired, 3))
    finally:
        await timer.stop()
    assert fired == [(1, "close"), (2, "expire"), (3, "close")]
    left = await store.list_jobs(DEADLINE_KIND, dead=False)
    assert [(j.key, j.due_at_ms) for j in left] == [("5:due", t + 60_000)]
    await store.close()


async def _fired(fired: list[Any], n: int) -> bool:
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


def _stored_deadlines(data_dir: Path) -> list[tuple[Any, ...]]:
    """The card deadline jobs in the node's SQLite store, read by another connection."""
    conn = sqlite3.connect(data_dir / "magpie.db")
    try:
        sql = "SELECT job_key FROM jobs WHERE kind = ? AND dead = 0"
        return conn.execute(sql, (DEADLINE_KIND,)).fetchall()
    finally:
        conn.close()

"""``magpie backup`` / ``magpie restore`` as real processes: a backup taken while clients send
holds every message acknowledged before it started; the restored store has a fresh epoch;
and the refusals (PostgreSQL, data in the way, a running node, not a backup) are one line."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from magpie.client.raw import RawClient
from tests.support.nodes import add_user, api, connect, make_group, running_node, time_scale

T = 60 * time_scale()


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(MAGPIE_DATA_DIR=str(data_dir), MAGPIE_API_PORT="0", MAGPIE_WS_PORT="0")
    env.update(extra)
    return env


def _magpie(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magpie.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=T,
    )


def _one_line_failure(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("magpie: ")
    return proc.stderr


def _epoch(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT epoch FROM meta").fetchone()[0])


async def _sender(client: RawClient, n: int, stop: asyncio.Event, acked: dict[int, float]) -> None:
    i = 0
    while not stop.is_set():
        body = json.dumps({"type": 1, "content": f"load {n}-{i}"}).encode()
        ack = await client.send("g", 2, body)
        assert ack.reason_code == 1
        acked[ack.message_id] = time.monotonic()
        i += 1


async def test_a_backup_under_load_restores_every_acked_message(tmp_path: Path) -> None:
    data, dest, restored = tmp_path / "node", tmp_path / "backup", tmp_path / "restored"
    acked: dict[int, float] = {}
    stop = asyncio.Event()
    # The four senders go as fast as their acks come back: the per-user send limit (50/s,
    # burst 200) would refuse them (SENDACK 22) within a second. This test is about backup.
    async with running_node(data, send_rate=0) as node:
        uids = [f"s{n}" for n in range(4)]
        tokens = {u: await add_user(node, u) for u in uids}
        await make_group(node, "g", uids)
        async with api(node) as http:  # a card: its deadline is a durable job in the store
            card = {"type": "vote@1", "title": "t", "options": ["a", "b"]}
            r = await http.post(
                "/cards", json={"uid": "s0", "channel_id": "g", "channel_type": 2, "card": card}
            )
            assert r.status_code == 200, r.text
            card_id = int(r.json()["message_id_str"])
        clients = [await connect(node, u, tokens[u]) for u in uids]
        load = [asyncio.create_task(_sender(c, n, stop, acked)) for n, c in enumerate(clients)]
        await asyncio.sleep(0.5 * time_scale())
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "magpie.cli", "backup", str(dest),
            env=_env(data), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), T)
        finished = time.monotonic()
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*load)
        for client in clients:
            await client.close()
        original_epoch = node.store.epoch
    assert proc.returncode == 0, err.decode()
    assert f"backup of store epoch {original_epoch}" in out.decode()
    before = {mid for mid, at in acked.items() if at < started}
    during = {mid for mid, at in acked.items() if started <= at <= finished}
    assert len(before) > 20 and during, "the backup ran while clients were sending"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["epoch"] == original_epoch and manifest["files"] == ["magpie.db"]

    proc2 = _magpie(_env(restored), "restore", str(dest))
    assert proc2.returncode == 0, proc2.stderr
    assert "restored magpie.db" in proc2.stdout
    async with running_node(restored) as again:
        assert again.store.epoch not in ("", original_epoch), "a restore gets a fresh epoch"
        found = await again.store.get_messages_by_id(sorted(before | during))
        missing = before - set(found)
        assert not missing, f"{len(missing)} messages acked before the backup are missing"
        assert set(found) <= set(acked) | {card_id}, "nothing the clients did not send"


async def test_restore_refuses_to_overwrite_data_or_a_running_node(tmp_path: Path) -> None:
    data, dest = tmp_path / "node", tmp_path / "backup"
    async with running_node(data) as node:
        await add_user(node, "alice")
        assert _magpie(_env(data), "backup", str(dest)).returncode == 0
        running = _magpie(_env(data, MAGPIE_API_PORT=str(node.api_port)), "restore", str(dest))
        line = _one_line_failure(running)
        assert "the node still runs" in line and "stop it" in line
    before = _epoch(data / "magpie.db")
    line = _one_line_failure(_magpie(_env(data), "restore", str(dest)))
    assert "already holds a database; pass --force" in line
    assert _epoch(data / "magpie.db") == before, "nothing was touched"
    forced = _magpie(_env(data), "restore", str(dest), "--force")
    assert forced.returncode == 0, forced.stderr
    assert _epoch(data / "magpie.db") != before


def test_backup_and_restore_refusals(tmp_path: Path) -> None:
    pg = _env(tmp_path, MAGPIE_STORE_URL="postgresql://magpie@127.0.0.1:5432/none")
    line = _one_line_failure(_magpie(pg, "backup", str(tmp_path / "b")))
    assert "the store is PostgreSQL" in line and "pg_dump" in line
    line = _one_line_failure(_magpie(_env(tmp_path / "empty"), "backup", str(tmp_path / "b")))
    assert "there is no store at" in line
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    (tmp_path / "d" / "magpie.db").parent.mkdir()
    sqlite3.connect(tmp_path / "d" / "magpie.db").close()
    line = _one_line_failure(_magpie(_env(tmp_path / "d"), "backup", str(busy)))
    assert f"{busy} is not empty" in line
    line = _one_line_failure(_magpie(_env(tmp_path / "r"), "restore", str(busy)))
    assert "is not a Magpie backup" in line and "magpie backup" in line

"""``magpie serve`` as a real process: start-up messages, bad settings, SIGTERM drain."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx

from magpie.client.raw import RawClient
from tests.support.nodes import time_scale
from tests.support.postgres import new_schema, run_sync


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    # Never the default TCP port 5100 (tests use free ports only).
    env.update(MAGPIE_DATA_DIR=str(tmp_path), MAGPIE_LOG_LEVEL="WARNING", MAGPIE_TCP_PORT="0")
    env.update(extra)
    return env


def test_bad_setting_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "magpie.cli", "serve"],
        env=_env(tmp_path, MAGPIE_WS_PORT="not-a-port"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "MAGPIE_WS_PORT" in proc.stderr and "not-a-port" in proc.stderr


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "magpie.cli", "serve", "--config", str(tmp_path / "nope.toml")],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "nope.toml" in proc.stderr


async def test_serve_prints_where_it_listens_and_drains_on_sigterm(tmp_path: Path) -> None:
    ws_port, api_port = _free_port(), _free_port()
    env = _env(
        tmp_path,
        MAGPIE_WS_PORT=str(ws_port),
        MAGPIE_API_PORT=str(api_port),
        MAGPIE_TOKEN_AUTH="false",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "magpie.cli", "serve", env=env, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        lines = [
            (await asyncio.wait_for(proc.stdout.readline(), 30 * time_scale())).decode()
            for _ in range(4)
        ]
        assert any(f"ws://127.0.0.1:{ws_port}" in line for line in lines)
        assert any(f"http://127.0.0.1:{api_port}" in line for line in lines)
        assert any(str(tmp_path / "api_key") in line for line in lines), lines
        assert (tmp_path / "api_key").stat().st_mode & 0o077 == 0, "the key file is private"
        client = RawClient(f"ws://127.0.0.1:{ws_port}", "alice", "any")
        await client.connect()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20 * time_scale()) == 0
        await asyncio.wait_for(client.closed.wait(), 5 * time_scale())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magpie.cli", "serve"],
        env=_env(tmp_path, MAGPIE_WS_PORT="0", MAGPIE_API_PORT="0", **env),
        capture_output=True,
        text=True,
        timeout=60 * time_scale(),
    )


def test_a_bad_store_url_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    proc = _serve(tmp_path, MAGPIE_STORE_URL="mysql://u:s3cret@h/db")
    assert proc.returncode == 2
    assert "store_url" in proc.stderr and "s3cret" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_an_unreachable_database_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    port = _free_port()
    proc = _serve(tmp_path, MAGPIE_STORE_URL=f"postgresql://u:s3cret@127.0.0.1:{port}/im")
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "s3cret" not in line
    assert f"cannot reach the database at 127.0.0.1:{port}/im" in line and "store_url" in line


def test_a_newer_database_schema_is_refused(tmp_path: Path, pg_database: str) -> None:
    url = new_schema(pg_database, "cli")
    run_sync(lambda: _record_future_version(url))
    proc = _serve(tmp_path, MAGPIE_STORE_URL=url)
    assert proc.returncode == 1
    assert "the database schema is at version 99" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


async def _record_future_version(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at BIGINT NOT NULL);"
            "INSERT INTO schema_migrations VALUES (99, '0099_future.sql', 0)"
        )
    finally:
        await conn.close()


async def test_serve_on_postgresql_end_to_end(tmp_path: Path, pg_database: str) -> None:
    """A node on a PostgreSQL store: send over HTTP, receive over WebSocket, history, and
    the message is in the database."""
    url = new_schema(pg_database, "serve")
    ws_port, api_port = _free_port(), _free_port()
    env = _env(
        tmp_path,
        MAGPIE_WS_PORT=str(ws_port),
        MAGPIE_API_PORT=str(api_port),
        MAGPIE_TOKEN_AUTH="false",
        MAGPIE_API_KEY="k",
        MAGPIE_STORE_URL=url,
        MAGPIE_STORE_POOL_SIZE="3",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "magpie.cli", "serve", env=env, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        lines = [
            (await asyncio.wait_for(proc.stdout.readline(), 30 * time_scale())).decode()
            for _ in range(3)
        ]
        assert any("data in postgresql://127.0.0.1:5432/" in line for line in lines), lines
        bob = RawClient(f"ws://127.0.0.1:{ws_port}", "bob", "any")
        await bob.connect()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": "Bearer k"}
        ) as http:
            body = {
                "from_uid": "alice",
                "channel_id": "bob",
                "channel_type": 1,
                "payload": base64.b64encode(b'{"type":1,"content":"hi"}').decode(),
            }
            sent = await http.post("/message/send", json=body)
            assert sent.status_code == 200, sent.text
            recv = await asyncio.wait_for(bob.messages.get(), 10 * time_scale())
            assert recv.payload == b'{"type":1,"content":"hi"}'
            history = await http.post(
                "/channel/messagesync",
                json={"login_uid": "bob", "channel_id": "alice", "channel_type": 1, "limit": 10},
            )
            assert history.status_code == 200, history.text
            assert [m["message_seq"] for m in history.json()["messages"]] == [1]
        count = run_sync(lambda: _count_messages(url))
        assert count == 1
        await bob.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20 * time_scale()) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _count_messages(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages"))
    finally:
        await conn.close()

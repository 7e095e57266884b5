"""Start-up failures as an operator meets them: one line naming the cause and the fix, a
non-zero exit, no traceback (``--debug`` adds it). Each test runs ``magpie serve`` as a real
process."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from magpie.failures import explain
from tests.support.nodes import time_scale

SRC = Path(__file__).resolve().parents[2] / "src"


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(
        MAGPIE_DATA_DIR=str(data_dir),
        MAGPIE_WS_PORT="0",
        MAGPIE_API_PORT="0",
        MAGPIE_TCP_PORT="0",
        MAGPIE_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magpie.cli", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60 * time_scale(),
    )


def _one_line(proc: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The failure line, after checking the exit status and that nothing else was said."""
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("magpie: "), proc.stderr
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("key", ["api_port", "ws_port"])
def test_a_taken_port_names_the_port_the_setting_and_the_fix(
    tmp_path: Path, taken_port: int, key: str
) -> None:
    env = _env(tmp_path, **{f"MAGPIE_{key.upper()}": str(taken_port)})
    line = _one_line(_serve(env))
    assert f"port {taken_port} ({key}) is already in use" in line
    assert f"MAGPIE_{key.upper()}" in line and "stop the other process" in line


def test_debug_adds_the_traceback(tmp_path: Path, taken_port: int) -> None:
    proc = _serve(_env(tmp_path, MAGPIE_API_PORT=str(taken_port)), "--debug")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "Address already in use" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("magpie: port ")


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("I am a file\n")
    line = _one_line(_serve(_env(not_a_dir)))
    assert f"the data directory {not_a_dir} is not writable (it is not a directory)" in line
    assert "MAGPIE_DATA_DIR" in line
    assert not_a_dir.read_text() == "I am a file\n"


def test_a_data_dir_where_writing_is_not_permitted(tmp_path: Path) -> None:
    """``/sys`` refuses new directories even to root (EPERM), as a read-only or foreign
    directory refuses an ordinary user."""
    target = Path("/sys") / f"magpie-test-{uuid.uuid4().hex[:8]}"
    try:
        target.mkdir()
    except OSError:
        pass
    else:  # pragma: no cover - a /sys that accepts directories: nothing to test here
        target.rmdir()
        pytest.skip("/sys accepted a new directory on this machine")
    line = _one_line(_serve(_env(target)))
    assert f"the data directory {target} is not writable" in line
    assert "writable directory" in line


def test_a_bad_setting_names_the_key_and_the_value(tmp_path: Path) -> None:
    line = _one_line(_serve(_env(tmp_path, MAGPIE_IDLE_TIMEOUT="soon")), status=2)
    assert "MAGPIE_IDLE_TIMEOUT" in line and "'soon'" in line and "correct it" in line


def _create_store(data_dir: Path) -> Path:
    """A real database made by ``magpie serve`` (started, then stopped by SIGTERM)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "magpie.cli", "serve"],
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "HTTP API on" in line:
                break
        proc.terminate()
        assert proc.wait(30 * time_scale()) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return data_dir / "magpie.db"


def test_a_database_newer_than_the_code(tmp_path: Path) -> None:
    db = _create_store(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'x', 0)"
        )
    line = _one_line(_serve(_env(tmp_path)))
    assert "schema is at version 99, newer than this Magpie knows" in line
    assert "upgrade Magpie or use another database" in line


def test_a_package_missing_a_migration(tmp_path: Path) -> None:
    """An installation whose migrations have a gap (a file lost) refuses to touch the data."""
    copy = tmp_path / "src"
    shutil.copytree(SRC / "magpie", copy / "magpie", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "magpie" / "store" / "migrations" / "0001_init.sql").unlink()
    env = _env(tmp_path / "data", PYTHONPATH=str(copy))
    line = _one_line(_serve(env))
    assert "migrations are not numbered" in line
    db = tmp_path / "data" / "magpie.db"
    if db.exists():  # the file may have been created; no schema was applied to it
        with sqlite3.connect(db) as conn:
            tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        assert ("messages",) not in tables


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "magpie.db").write_bytes(b"this is not SQLite" * 100)
    line = _one_line(_serve(_env(tmp_path)))
    assert "cannot open the store" in line and "not a database" in line
    assert "db_file" in line


def test_an_unexpected_error_is_one_line_asking_for_debug() -> None:
    line, status = explain(ZeroDivisionError("division by zero"))
    assert status == 70 and "--debug" in line and "ZeroDivisionError" in line

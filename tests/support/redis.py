"""Redis for tests: the shared server (keys under a random per-run prefix), or a private
``redis-server`` on a free port for outage tests (started and stopped by PID).

The shared server is ``MAGPIE_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). When it
cannot be reached, Redis tests skip — except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

__all__ = [
    "RedisServer",
    "delete_prefix",
    "free_port",
    "require_redis",
    "run_prefix",
    "shared_url",
]

DEFAULT_URL = "redis://127.0.0.1:6379/0"

#: One random prefix per test run; every cluster name of the run starts with it.
_RUN = f"mtest-{uuid.uuid4().hex[:8]}"


def run_prefix() -> str:
    """This run's cluster-name prefix (keys under it are deleted at the end of the run)."""
    return _RUN


def shared_url() -> str:
    """The shared Redis server's URL."""
    return os.environ.get("MAGPIE_TEST_REDIS_URL", DEFAULT_URL)


def _missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"Redis is required under CI=true: {why}")
    pytest.skip(f"Redis not available: {why}")


def require_redis() -> str:
    """The shared Redis URL, after checking it answers (skip, or fail under CI=true)."""
    url = shared_url()
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError) as exc:
        _missing(f"{url}: {exc}")
    return url


def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key starting with ``prefix`` (never FLUSHDB: the server is shared)."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        return len(keys)
    finally:
        client.close()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private ``redis-server`` (no persistence) on ``port``; :meth:`stop` and
    :meth:`start` again simulate an outage and a restart that lost every key."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("redis-server is not installed")
        self.binary = str(binary)
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it answers PING."""
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while True:
                try:
                    client.ping()
                    return
                except (redis.RedisError, OSError):
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise RuntimeError(f"redis-server did not start on {self.port}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Kill it (SIGKILL: no goodbye to clients) and wait for the process to end."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

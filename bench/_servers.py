"""Start the servers a benchmark compares: a real ``magpie serve`` and the plain baseline.

Both run as separate processes so their CPU time can be read from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

API_KEY = "bench-key"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Server:
    """A running server process."""

    proc: subprocess.Popen[bytes]
    ws_url: str
    api_url: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def api(self, path: str, body: object) -> object:
        """POST a JSON body to the business API."""
        req = urllib.request.Request(  # noqa: S310 - loopback URL built here
            self.api_url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return json.loads(resp.read() or b"null")


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening after {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def magpie_server(**settings: object) -> Iterator[Server]:
    """``magpie serve`` on free ports with a throwaway data dir."""
    ws_port, api_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="magpie-bench-") as data_dir:
        env = dict(os.environ)
        env.update(
            MAGPIE_DATA_DIR=data_dir,
            MAGPIE_WS_PORT=str(ws_port),
            MAGPIE_API_PORT=str(api_port),
            MAGPIE_API_KEY=API_KEY,
            MAGPIE_LOG_LEVEL="WARNING",
        )
        env.update({f"MAGPIE_{k.upper()}": str(v) for k, v in settings.items()})
        proc = subprocess.Popen([sys.executable, "-m", "magpie.cli", "serve"], env=env)
        try:
            _wait_port(ws_port, proc)
            _wait_port(api_port, proc)
            yield Server(proc, f"ws://127.0.0.1:{ws_port}", f"http://127.0.0.1:{api_port}")
        finally:
            _stop(proc)


@contextmanager
def plain_server(mode: str) -> Iterator[Server]:
    """The baseline: the same WebSocket library with no IM logic (``broadcast`` or ``echo``)."""
    port = free_port()
    script = Path(__file__).with_name("plain_server.py")
    proc = subprocess.Popen([sys.executable, str(script), mode, str(port)])
    try:
        _wait_port(port, proc)
        yield Server(proc, f"ws://127.0.0.1:{port}")
    finally:
        _stop(proc)


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]

"""Start the servers a benchmark compares: a real ``magpie serve`` and the plain baselines.

Every server runs as a separate process pinned to one core (:data:`SERVER_CPUS`), so its CPU
time can be read from ``/proc/<pid>/stat`` and compared; load generators are pinned to the
other cores (:data:`LOAD_CPUS`), so they never compete with the server they measure. On a
one-core machine both share it (the figures then say so).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

API_KEY = "bench-key"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_CPUS = sorted(os.sched_getaffinity(0))
#: The core every measured server runs on.
SERVER_CPUS = frozenset(_CPUS[:1])
#: The cores load generators run on (the rest; the same core on a one-core machine).
LOAD_CPUS = frozenset(_CPUS[1:] or _CPUS)


def pinned(cpus: frozenset[int]) -> Callable[[], None]:
    """A ``preexec_fn`` that pins the child process to ``cpus`` (what ``taskset`` does)."""

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def pinning() -> str:
    """One line saying where servers and load run."""
    shared = " (shared: one core)" if SERVER_CPUS == LOAD_CPUS else ""
    return f"server pinned to CPU {sorted(SERVER_CPUS)}, load on CPU {sorted(LOAD_CPUS)}{shared}"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time of a process: the sum over its threads of ``/proc/PID/task/TID/schedstat``
    (nanoseconds), else user + system time from ``/proc/PID/stat`` (clock ticks)."""
    try:
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):  # a thread that just ended
                total += int((task / "schedstat").read_text().split()[0])
        if total:
            return total / 1e9
    except (FileNotFoundError, ValueError, IndexError):
        pass
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time of a process's threads by OS thread name (``/proc/PID/task/TID/comm``, summed
    per name; the main thread is ``main``), from each thread's ``schedstat``. Python 3.11
    does not name its threads in the OS: they are all the executable's name."""
    out: dict[str, float] = {}
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                name = "main" if task.name == str(pid) else (task / "comm").read_text().strip()
                ns = int((task / "schedstat").read_text().split()[0])
                out[name] = out.get(name, 0.0) + ns / 1e9
    return out


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
    tcp_url: str = ""

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


#: A benchmark's load generator is thousands of clients on one address: the per-address
#: defences (docs/security.md), meant for the real world, are off for it. Every per-uid,
#: per-token and per-connection defence stays on at its default.
LOAD_GENERATOR = {
    "connect_ip_rate": 0,
    "ws_max_connections_per_ip": 0,
    "http_ip_rate": 0,
    "http_max_connections_per_ip": 0,
}


@contextmanager
def magpie_server(**settings: object) -> Iterator[Server]:
    """``magpie serve`` on free ports with a throwaway data dir (per-address limits off,
    :data:`LOAD_GENERATOR`, unless ``settings`` say otherwise)."""
    settings = {**LOAD_GENERATOR, **settings}
    ws_port, api_port, tcp_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="magpie-bench-") as data_dir:
        env = dict(os.environ)
        env.update(
            MAGPIE_DATA_DIR=data_dir,
            MAGPIE_WS_PORT=str(ws_port),
            MAGPIE_API_PORT=str(api_port),
            MAGPIE_TCP_PORT=str(tcp_port),
            MAGPIE_API_KEY=API_KEY,
            MAGPIE_LOG_LEVEL="WARNING",
        )
        env.update({f"MAGPIE_{k.upper()}": str(v) for k, v in settings.items()})
        proc = subprocess.Popen(
            [sys.executable, "-m", "magpie.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,  # its start-up banner would cut the tables
            preexec_fn=pinned(SERVER_CPUS),
        )
        try:
            _wait_port(ws_port, proc)
            _wait_port(api_port, proc)
            yield Server(
                proc,
                f"ws://127.0.0.1:{ws_port}",
                f"http://127.0.0.1:{api_port}",
                f"tcp://127.0.0.1:{tcp_port}",
            )
        finally:
            _stop(proc)


@contextmanager
def plain_server(lib: str, mode: str) -> Iterator[Server]:
    """A baseline: WebSocket library ``lib`` (``picows`` or ``websockets``) with no IM logic,
    in mode ``broadcast`` or ``echo`` (``bench/plain_server.py``)."""
    port = free_port()
    script = Path(__file__).with_name("plain_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), lib, mode, str(port)], preexec_fn=pinned(SERVER_CPUS)
    )
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


@contextmanager
def load_client(mode: str, url: str, n: int, size: int = 300) -> Iterator[LoadClient]:
    """``bench/loadclient.py`` with ``n`` connections, pinned to :data:`LOAD_CPUS`."""
    script = Path(__file__).with_name("loadclient.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), mode, url, str(n), str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pinned(LOAD_CPUS),
    )
    client = LoadClient(proc)
    try:
        line = client.readline()
        if line != "ready":
            raise RuntimeError(f"load client failed: {line!r}")
        yield client
    finally:
        client.quit()


class LoadClient:
    """Commands to a running load client (see ``bench/loadclient.py``)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def command(self, line: str) -> object:
        """Send one command and parse its one-line JSON answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.readline())

    def report(self) -> dict[int, list[int]]:
        """Arrival times by sequence number since the last report."""
        answer = self.command("report")
        assert isinstance(answer, dict)
        return {int(k): v for k, v in answer.items()}

    def quit(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class CpuMeter:
    """Server CPU seconds between :meth:`start` and :meth:`stop` (``/proc/PID/stat``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._t0 = 0.0
        self.seconds = 0.0

    def start(self) -> None:
        self._profile_start()
        self._threads0 = thread_cpu_seconds(self.pid)
        self._t0 = cpu_seconds(self.pid)

    def stop(self) -> float:
        self.seconds = cpu_seconds(self.pid) - self._t0
        after = thread_cpu_seconds(self.pid)
        #: CPU seconds by thread name over the measured interval (threads that ended
        #: meanwhile are missing).
        self.threads = {k: v - self._threads0.get(k, 0.0) for k, v in after.items()}
        self._profile_stop()
        return self.seconds

    _threads0: dict[str, float] = {}  # noqa: RUF012 - replaced per instance by start()
    threads: dict[str, float] = {}  # noqa: RUF012

    _profiler: subprocess.Popen[bytes] | None = None

    def _profile_start(self) -> None:
        """With ``MAGPIE_BENCH_PROFILE=DIR``, py-spy samples the server while it is measured
        (collapsed stacks in DIR/PID.txt; the CPU figures of such a run are not comparable)."""
        out = os.environ.get("MAGPIE_BENCH_PROFILE")
        if not out:
            return
        Path(out).mkdir(parents=True, exist_ok=True)
        self._profiler = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(self.pid),
             "--format", "raw", "--rate", "500", "--nonblocking", "--threads",
             "-o", f"{out}/{self.pid}-{time.monotonic_ns()}.txt"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pinned(LOAD_CPUS),
        )  # fmt: skip
        time.sleep(0.5)

    def _profile_stop(self) -> None:
        if self._profiler is not None:
            self._profiler.send_signal(2)
            self._profiler.wait(timeout=30)
            self._profiler = None

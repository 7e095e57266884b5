"""``magpie serve --workers N``: N worker processes of one node set behind the same ports.

Each worker is a whole node (``magpie serve`` in a child process) with its own leased node
id, listening with ``SO_REUSEPORT`` on the same WebSocket, TCP and HTTP ports, so the kernel
spreads new connections over them; they are cluster members like nodes on other machines,
so the store and the bus must be shared: PostgreSQL (``store_url``) and Redis (``bus_url``).
:func:`refusal` says why a configuration cannot run workers.

The parent (:class:`Supervisor`) holds no socket and serves nothing:

* it fixes the ports first (a port of 0 becomes one free port, the same for every worker);
* it starts one worker and waits until it is ready (it writes one byte to a pipe after it
  listens), so a bad setting or an unreachable database is reported once, by that worker, in
  its one line — then the parent exits with the worker's status; then it starts the others;
* a worker that exits while running is started again after a second; while it keeps
  exiting within ``restart_window`` of its start the delay doubles, up to ``max_delay``
  (a database that is down at that moment delays it, and never stops the healthy workers);
* SIGTERM or SIGINT: every worker gets SIGTERM (each drains like a single node), the parent
  waits for them (``stop_timeout``, then SIGKILL) and exits 0;
* no orphans: a worker asks the kernel for SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``), so even a killed parent takes its workers along.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from magpie.config import Settings

__all__ = ["Supervisor", "become_worker", "fixed_ports", "refusal"]

#: ``prctl`` option: the signal the calling process gets when its parent exits.
_PR_SET_PDEATHSIG = 1


def refusal(settings: Settings, workers: int) -> str | None:
    """Why ``settings`` cannot run ``workers`` worker processes (``None``: they can)."""
    if workers <= 1:
        return None
    if settings.sqlite_path is not None:
        return (
            f"--workers {workers} needs a shared store: SQLite allows one process per database "
            "file, so the workers could not all write it; set store_url to a PostgreSQL "
            "database and bus_url to Redis, or run one worker"
        )
    if settings.bus_url.startswith("memory:"):
        return (
            f"--workers {workers} needs a shared bus: workers deliver each other's messages "
            "through Redis; set bus_url to redis://host:port/db, or run one worker"
        )
    if settings.node_id is not None:
        return (
            f"--workers {workers} gives every worker its own leased node id; leave node_id "
            f"unset (it is {settings.node_id})"
        )
    return None


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def fixed_ports(settings: Settings) -> dict[str, str]:
    """``MAGPIE_*`` variables that give every worker the same ports (0 = one free port)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "localhost") else settings.host  # noqa: S104
    host = "::1" if host == "::" else host
    env = {}
    for key in ("ws_port", "api_port", "tcp_port"):
        if key == "tcp_port" and not settings.tcp_enabled:
            continue
        port = getattr(settings, key) or _free_port(host)
        env[f"MAGPIE_{key.upper()}"] = str(port)
    ops = settings.ops_address
    if ops is not None and ops[1] == 0:
        ops_host = ops[0] if ":" not in ops[0] else f"[{ops[0]}]"
        env["MAGPIE_OPS_LISTEN"] = f"{ops_host}:{_free_port(ops[0])}"
    return env


def become_worker(parent: int) -> None:
    """In a worker: die with the parent (``PR_SET_PDEATHSIG``), and at once if it is gone."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is not None:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


@dataclass(slots=True)
class _Worker:
    number: int
    proc: subprocess.Popen[bytes]
    ready_fd: int
    started: float = field(default_factory=time.monotonic)
    ready: bool = False


@dataclass
class Supervisor:
    """Runs ``workers`` copies of ``command`` (a ``magpie serve`` command line, to which
    ``--worker-ready-fd FD --worker-of PID`` is appended) with ``env``; :meth:`run`."""

    command: Sequence[str]
    workers: int
    env: Mapping[str, str]
    restart_delay: float = 1.0
    max_delay: float = 30.0
    restart_window: float = 60.0
    stop_timeout: float = 30.0
    start_timeout: float = 120.0
    _running: dict[int, _Worker] = field(default_factory=dict)
    _stop: int = 0

    def run(self) -> int:
        """Start the workers, supervise them until a signal; the exit status."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        try:
            status = self._start_all()
            if status is not None:
                return status
            pids = ", ".join(str(w.proc.pid) for w in self._running.values())
            _say(f"{self.workers} workers running (pids {pids}); SIGTERM stops them all")
            return self._supervise()
        finally:
            self._stop_all()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop = signum

    def _spawn(self, number: int) -> _Worker:
        read_fd, write_fd = os.pipe()
        os.set_inheritable(write_fd, True)
        args = [*self.command, "--worker-ready-fd", str(write_fd), "--worker-of", str(os.getpid())]
        try:
            proc = subprocess.Popen(args, env=dict(self.env), pass_fds=(write_fd,))  # noqa: S603
        finally:
            os.close(write_fd)
        worker = _Worker(number, proc, read_fd)
        self._running[number] = worker
        return worker

    def _start_all(self) -> int | None:
        """The first worker, then the others; a status when one could not start."""
        for batch in ([1], list(range(2, self.workers + 1))):
            started = [self._spawn(n) for n in batch]
            status = self._wait_ready(started)
            if status is not None:
                return status
        return None

    def _wait_ready(self, workers: list[_Worker]) -> int | None:
        deadline = time.monotonic() + self.start_timeout
        waiting = {w.ready_fd: w for w in workers}
        while waiting:
            if self._stop:
                return 0
            left = deadline - time.monotonic()
            if left <= 0:
                _say(f"a worker did not start within {self.start_timeout:.0f} s; stopping")
                return 1
            readable, _, _ = select.select(list(waiting), [], [], min(left, 0.2))
            for fd in readable:
                worker = waiting.pop(fd)
                worker.ready = os.read(fd, 1) == b"1"
                _close_ready(worker)
                if not worker.ready:
                    return _status(worker.proc.wait())
            for worker in list(waiting.values()):
                code = worker.proc.poll()
                if code is not None:
                    return _status(code)
        return None

    def _supervise(self) -> int:
        """Until a signal: start again every worker that exited, after a delay that doubles
        (up to ``max_delay``) while it keeps exiting within ``restart_window`` of its start."""
        due: dict[int, float] = {}
        failures: dict[int, int] = {}
        while not self._stop:
            time.sleep(0.2)
            self._note_ready()
            now = time.monotonic()
            for number in range(1, self.workers + 1):
                if self._stop:
                    break
                worker = self._running.get(number)
                if worker is not None:
                    code = worker.proc.poll()
                    if code is None:
                        continue
                    del self._running[number]
                    _close_ready(worker)
                    quick = now - worker.started < self.restart_window
                    failures[number] = failures.get(number, 0) + 1 if quick else 0
                    delay = min(self.restart_delay * 2 ** failures[number], self.max_delay)
                    _say(
                        f"worker {number} (pid {worker.proc.pid}) exited ({_describe(code)}); "
                        f"starting it again in {delay:g} s"
                    )
                    due[number] = now + delay
                elif now >= due.get(number, now):
                    due.pop(number, None)
                    self._spawn(number)
        return 0

    def _note_ready(self) -> None:
        """Say which restarted workers listen again (without waiting for any)."""
        waiting = {w.ready_fd: w for w in self._running.values() if w.ready_fd >= 0}
        if not waiting:
            return
        readable, _, _ = select.select(list(waiting), [], [], 0)
        for fd in readable:
            worker = waiting[fd]
            worker.ready = os.read(fd, 1) == b"1"
            _close_ready(worker)
            if worker.ready:
                _say(f"worker {worker.number} running again (pid {worker.proc.pid})")

    def _stop_all(self) -> None:
        workers = list(self._running.values())
        self._running.clear()
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for worker in workers:
            try:
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            _close_ready(worker)


def _close_ready(worker: _Worker) -> None:
    if worker.ready_fd >= 0:
        os.close(worker.ready_fd)
        worker.ready_fd = -1


def _status(code: int) -> int:
    """A worker's exit status as the parent's (a signal: 1)."""
    return code if code > 0 else 1


def _describe(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"status {code}"


def _say(line: str) -> None:
    print(f"magpie: {line}", file=sys.stderr, flush=True)

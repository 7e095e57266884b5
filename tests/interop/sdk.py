"""Drive official WuKongIM JS SDK clients (``wukongimjssdk@1.0.4``) from asyncio tests.

One :class:`SdkHost` is one Node process (``node dist/host.cjs``) running many clients, each
in its own worker thread (``dist/driver.cjs``): a worker has its own JS realm, module registry
and event loop, so every client has its own SDK singletons and WebSocket while the cost of
starting Node is paid once per test module. Each :class:`SdkClient` is one SDK instance for one
user; the host multiplexes JSON lines: commands go to its stdin addressed to a client, events
come back on its stdout tagged with the client, and each client's SDK log noise goes to its own
log file (``log_path``) for debugging. The protocol is documented in ``tests/interop/README.md``.

The host is read by a thread, so one host serves tests that each run their own event loop:
events reach a client on the loop it was started on.

Timeouts given to this module are in seconds at time scale 1 and are multiplied by
``MAGPIE_TIME_SCALE`` (float, default 1) so slow machines can stretch them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

INTEROP_DIR = Path(__file__).resolve().parent
DIST_DIR = INTEROP_DIR / "dist"
DRIVER_PATH = DIST_DIR / "driver.cjs"
HOST_PATH = DIST_DIR / "host.cjs"

Event = dict[str, Any]
Matcher = str | Mapping[str, Any] | Callable[[Event], bool]
# ``conftest.sdk_factory``: (ws_url, api_url, uid, token, device_flag=1, **start_kwargs) -> client
SdkFactory = Callable[..., Awaitable["SdkClient"]]

_DEFAULT_TIMEOUT = 10.0


def time_scale() -> float:
    """The float in ``MAGPIE_TIME_SCALE`` (default 1); must be > 0."""
    raw = os.environ.get("MAGPIE_TIME_SCALE", "").strip() or "1"
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"MAGPIE_TIME_SCALE must be a float, got {raw!r}") from exc
    if not value > 0:
        raise ValueError(f"MAGPIE_TIME_SCALE must be > 0, got {raw!r}")
    return value


def scaled(seconds: float) -> float:
    """``seconds`` stretched by ``MAGPIE_TIME_SCALE``."""
    return seconds * time_scale()


class DriverError(RuntimeError):
    """The driver failed: its thread or host ended early, or it answered a command with an
    error event."""


def _describe(match: Matcher) -> str:
    if isinstance(match, str):
        return f"event {match!r}"
    if isinstance(match, Mapping):
        return f"event matching {dict(match)!r}"
    return f"event matching {getattr(match, '__name__', repr(match))}"


def _matches(match: Matcher, event: Event) -> bool:
    if isinstance(match, str):
        return event.get("event") == match
    if isinstance(match, Mapping):
        return all(key in event and event[key] == value for key, value in match.items())
    return bool(match(event))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Last-resort cleanup for a host that was never closed (runs at GC or interpreter exit)."""
    with contextlib.suppress(OSError):
        proc.kill()


class SdkHost:
    """One Node process hosting many :class:`SdkClient` worker threads."""

    def __init__(self, node_exe: str | Path, host_path: Path | str = HOST_PATH) -> None:
        self.node_exe = str(node_exe)
        self.host_path = Path(host_path)
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._clients: dict[int, SdkClient] = {}
        self._ids = itertools.count(1)
        self._ready = threading.Event()
        self._hello: Event = {}
        self._errors: list[Event] = []
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], SdkHost] | None = None

    def start(self, timeout: float = _DEFAULT_TIMEOUT) -> Event:
        """Spawn the host and wait (blocking) for its ``host_ready`` line (returned)."""
        if self._proc is not None:
            raise RuntimeError("SdkHost.start() called twice")
        for bundle in (self.host_path, self.host_path.with_name(DRIVER_PATH.name)):
            if not bundle.is_file():
                raise FileNotFoundError(
                    f"{bundle} not found; build it with `make node` "
                    "(or `cd tests/interop && npm ci && npm run build`)"
                )
        self._proc = subprocess.Popen(
            [self.node_exe, str(self.host_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._finalizer = weakref.finalize(self, _kill, self._proc)
        self._reader = threading.Thread(target=self._read, name="sdk-host-reader", daemon=True)
        self._reader.start()
        if not self._ready.wait(scaled(timeout)) or not self._hello:
            self.close()
            raise DriverError(f"the SDK host did not start within {scaled(timeout):.1f}s")
        return self._hello

    @property
    def pid(self) -> int | None:
        """The host process's id."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the host process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def errors(self) -> list[Event]:
        """``host_error`` lines so far (bad input to the host itself)."""
        return list(self._errors)

    def close(self, timeout: float = 5.0) -> None:
        """End the host (it terminates every client thread first); afterwards no process is
        left running. Safe to call more than once."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError), self._write_lock:
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
        try:
            proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(scaled(timeout))
        if self._finalizer is not None:
            self._finalizer.detach()

    def new_id(self, client: SdkClient) -> int:
        """Register ``client`` and return its id on this host."""
        cid = next(self._ids)
        self._clients[cid] = client
        return cid

    def send(self, message: Mapping[str, Any]) -> None:
        """Write one line to the host (raises :class:`DriverError` if it is gone)."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise DriverError("the SDK host is not running")
        line = (json.dumps(dict(message)) + "\n").encode()
        try:
            with self._write_lock:
                proc.stdin.write(line)
                proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise DriverError(f"the SDK host is not running: {exc}") from exc

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            for raw in proc.stdout:
                self._dispatch(raw)
        finally:
            self._ready.set()
            for client in list(self._clients.values()):
                client._deliver_threadsafe({"event": "_host_gone"})

    def _dispatch(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            self._errors.append({"event": "host_error", "error": f"not JSON: {text[:400]}"})
            return
        client = self._clients.get(parsed.pop("client", None))  # type: ignore[arg-type]
        if client is not None:
            client._deliver_threadsafe(parsed)
        elif parsed.get("event") == "host_ready":
            self._hello = parsed
            self._ready.set()
        else:
            self._errors.append(parsed)

    def __enter__(self) -> SdkHost:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class SdkClient:
    """One SDK client in its own worker thread of an :class:`SdkHost`.

    Every event the driver sends is kept in :attr:`events` in arrival order. :meth:`wait_for`
    returns the first event that matches and that no earlier ``wait_for`` has returned (it
    *consumes* it unless ``consume=False``), so two successive ``wait_for("message")`` calls
    return two different messages, and an event that arrived before the call is still found.
    """

    def __init__(
        self,
        host: SdkHost,
        name: str | None = None,
        *,
        log_path: Path | str | None = None,
    ) -> None:
        self.host = host
        self.name = name
        self.log_path: Path | None = Path(log_path) if log_path is not None else None
        self.uid: str | None = None
        self.returncode: int | None = None
        self._cid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._events: list[Event] = []
        self._consumed: set[int] = set()
        self._eof = False
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------------------------
    # Lifecycle

    async def start(
        self,
        ws_url: str,
        api_url: str | None,
        uid: str,
        token: str,
        device_flag: int = 1,
        *,
        heartbeat_interval_ms: int | None = None,
        proto_version: int = 2,
        debug: bool = False,
        extra_config: Mapping[str, Any] | None = None,
        ready_timeout: float = _DEFAULT_TIMEOUT,
    ) -> Event:
        """Start the client's thread and wait for its ``ready`` event (returned). Does not
        connect yet."""
        if self._cid is not None:
            raise RuntimeError("SdkClient.start() called twice")
        self.uid = uid
        if self.name is None:
            self.name = uid
        config: dict[str, Any] = {
            "addr": ws_url,
            "api": api_url or "",
            "uid": uid,
            "token": token,
            "device_flag": device_flag,
            "proto_version": proto_version,
            "debug": debug,
        }
        if heartbeat_interval_ms is not None:
            config["heartbeat_interval"] = heartbeat_interval_ms
        if extra_config:
            config.update(extra_config)

        if self.log_path is None:
            fd, path = tempfile.mkstemp(prefix=f"magpie-sdk-{uid}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._cid = self.host.new_id(self)
        self.host.send(
            {"op": "spawn", "client": self._cid, "config": config, "log": str(self.log_path)}
        )
        try:
            return await self.wait_for("ready", ready_timeout)
        except BaseException:
            await self.close(graceful=False)
            raise

    async def close(self, timeout: float = 5.0, *, graceful: bool = True) -> None:
        """Stop the client; afterwards its thread has ended (:attr:`returncode` is set).

        With ``graceful`` the driver is first asked to ``exit`` (the SDK closes its WebSocket
        with a close frame); if its thread is still alive after ``timeout`` (scaled) the host
        terminates it. Safe to call more than once.
        """
        if self._cid is None or self._eof:
            return
        if graceful:
            with contextlib.suppress(DriverError):
                self.send_cmd({"cmd": "exit"})
                with contextlib.suppress(TimeoutError):
                    await self._wait_eof(min(timeout, 2.0))
        if not self._eof:
            self.host.send({"op": "terminate", "client": self._cid})
            try:
                await self._wait_eof(timeout)
            except TimeoutError:
                raise DriverError(f"driver {self.name}: its thread did not end") from None

    async def _wait_eof(self, timeout: float) -> None:
        async def ended() -> None:
            assert self._changed is not None
            while not self._eof:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(ended(), scaled(timeout))

    async def __aenter__(self) -> SdkClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _deliver_threadsafe(self, event: Event) -> None:
        """Called by the host's reader thread: hand ``event`` to the client's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: Event) -> None:
        name = event.get("event")
        if name == "exit":
            self.returncode = int(event.get("code", -1))
            self._eof = True
        elif name == "_host_gone":
            self._eof = True
        else:
            self._events.append(event)
        if self._changed is not None:
            self._changed.set()

    # ------------------------------------------------------------------------------------------
    # Commands and events

    @property
    def pid(self) -> int | None:
        """The Node process running this client (its host's)."""
        return self.host.pid

    @property
    def running(self) -> bool:
        """Whether the client's thread was started and has not ended."""
        return self._cid is not None and not self._eof

    @property
    def events(self) -> list[Event]:
        """A copy of every event received so far, in order (consumed or not)."""
        return list(self._events)

    @property
    def errors(self) -> list[Event]:
        """All ``error`` events so far (exceptions, unhandled rejections, failed commands)."""
        return [e for e in self._events if e.get("event") == "error"]

    def next_id(self) -> int:
        return next(self._ids)

    def send_cmd(self, cmd: Mapping[str, Any]) -> None:
        """Send one command to the driver (does not wait for its reply)."""
        if self._cid is None:
            raise RuntimeError("SdkClient is not started")
        if self._eof:
            raise DriverError(f"driver {self.name} is not running{self._log_tail()}")
        self.host.send({"op": "cmd", "client": self._cid, "cmd": dict(cmd)})

    def find(self, match: Matcher, *, include_consumed: bool = True) -> list[Event]:
        """Every buffered event that matches (no waiting, nothing consumed)."""
        return [
            e
            for i, e in enumerate(self._events)
            if (include_consumed or i not in self._consumed) and _matches(match, e)
        ]

    async def wait_for(
        self, match: Matcher, timeout: float = _DEFAULT_TIMEOUT, *, consume: bool = True
    ) -> Event:
        """Return the first not-yet-consumed event that matches ``match``.

        ``match`` is an event name (``"message"``), a dict of fields that must all be equal
        (``{"event": "status", "status": 1}``) or a predicate. ``timeout`` is scaled by
        ``MAGPIE_TIME_SCALE``. Raises :class:`TimeoutError` (listing recent events and the
        driver's log tail) or :class:`DriverError` if the driver exits first.
        """
        changed = self._changed
        if changed is None:
            raise RuntimeError("SdkClient is not started")
        loop = asyncio.get_running_loop()
        limit = scaled(timeout)
        deadline = loop.time() + limit
        while True:
            changed.clear()  # before looking: an event delivered after the look sets it again
            for index, event in enumerate(self._events):
                if index not in self._consumed and _matches(match, event):
                    if consume:
                        self._consumed.add(index)
                    return event
            if self._eof:
                raise DriverError(
                    f"driver {self.name} exited (code {self.returncode}) before "
                    f"{_describe(match)}{self._recent()}{self._log_tail()}"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.name}: no {_describe(match)} within {limit:.1f}s"
                    f"{self._recent()}{self._log_tail()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def request(
        self, cmd: Mapping[str, Any], reply: str, timeout: float = _DEFAULT_TIMEOUT
    ) -> Event:
        """Send ``cmd`` with a fresh ``id`` and wait for the ``reply`` event carrying that id.

        An ``error`` event for the same id raises :class:`DriverError`.
        """
        rid = self.next_id()
        self.send_cmd({**cmd, "id": rid})

        def is_reply(event: Event) -> bool:
            return event.get("id") == rid and event.get("event") in (reply, "error")

        event = await self.wait_for(is_reply, timeout)
        if event.get("event") == "error":
            raise DriverError(f"{self.name}: {cmd.get('cmd')} failed: {event.get('error')}")
        return event

    # Convenience wrappers -----------------------------------------------------------------------

    async def connect(self, timeout: float = _DEFAULT_TIMEOUT) -> Event:
        """``connect`` and return the next status event that settles it (1 ok, 3 fail, 4 kick)."""
        await self.request({"cmd": "connect"}, "done", timeout)
        return await self.wait_for(
            lambda e: e.get("event") == "status" and e.get("status") in (1, 3, 4), timeout
        )

    async def disconnect(self, timeout: float = _DEFAULT_TIMEOUT) -> Event:
        return await self.request({"cmd": "disconnect"}, "done", timeout)

    async def send_text(
        self,
        channel_id: str,
        channel_type: int,
        text: str,
        timeout: float = _DEFAULT_TIMEOUT,
    ) -> Event:
        """Send a text message; returns the ``sent`` event (``client_seq``, ``client_msg_no``)."""
        cmd = {"cmd": "send", "channel_id": channel_id, "channel_type": channel_type, "text": text}
        return await self.request(cmd, "sent", timeout)

    async def sync_extras(
        self,
        channel_id: str,
        channel_type: int,
        extra_version: int = 0,
        timeout: float = _DEFAULT_TIMEOUT,
    ) -> Event:
        """``chatManager.syncMessageExtras`` via the driver; returns the ``extras`` event."""
        cmd = {
            "cmd": "sync_extras",
            "channel_id": channel_id,
            "channel_type": channel_type,
            "extra_version": extra_version,
        }
        return await self.request(cmd, "extras", timeout)

    async def kill_socket(
        self, mode: str = "terminate", timeout: float = _DEFAULT_TIMEOUT
    ) -> Event:
        """Drop the SDK's WebSocket under it (``terminate``: no close frame; ``close``: code 1000).

        The SDK notices, reports status 0 and reconnects by itself about 3 s later.
        """
        return await self.request({"cmd": "kill_socket", "mode": mode}, "done", timeout)

    async def state(self, timeout: float = _DEFAULT_TIMEOUT) -> Event:
        return await self.request({"cmd": "state"}, "state", timeout)

    # Diagnostics --------------------------------------------------------------------------------

    def _recent(self, count: int = 15) -> str:
        if not self._events:
            return "\n  (no events received)"
        lines = [json.dumps(e)[:400] for e in self._events[-count:]]
        return "\n  recent events:\n    " + "\n    ".join(lines)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the driver wrote to stderr."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()[-64 * 1024 :].decode("utf-8", "replace")
        return "\n".join(data.splitlines()[-lines:])

    def _log_tail(self) -> str:
        tail = self.log_tail()
        if not tail:
            return ""
        return f"\n  driver log {self.log_path} (tail):\n    " + tail.replace("\n", "\n    ")


async def close_all(clients: Sequence[SdkClient]) -> None:
    """Close several clients concurrently; every one is closed even if another fails."""
    results = await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result

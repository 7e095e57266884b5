"""Drive one official WuKongIM JS SDK client (``wukongimjssdk@1.0.4``) from asyncio tests.

Each :class:`SdkClient` runs ``node dist/driver.cjs '<config JSON>'`` (one SDK instance, one
user, one connection per Node process) and talks JSON lines with it: commands go to the driver's
stdin, events come back on its stdout, and the SDK's own log noise goes to a log file
(``log_path``) for debugging. The driver protocol is documented in ``tests/interop/README.md``.

Timeouts given to this module are in seconds at time scale 1 and are multiplied by
``MAGPIE_TIME_SCALE`` (float, default 1) so slow machines can stretch them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import tempfile
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

INTEROP_DIR = Path(__file__).resolve().parent
DRIVER_PATH = INTEROP_DIR / "dist" / "driver.cjs"

Event = dict[str, Any]
Matcher = str | Mapping[str, Any] | Callable[[Event], bool]
# ``conftest.sdk_factory``: (ws_url, api_url, uid, token, device_flag=1, **start_kwargs) -> client
SdkFactory = Callable[..., Awaitable["SdkClient"]]

_STREAM_LIMIT = 64 * 1024 * 1024
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
    """The driver process failed: it exited early, or answered a command with an error event."""


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


def _kill_pid(pid: int) -> None:
    """Last-resort cleanup for a client that was never closed (runs at GC or interpreter exit)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


class SdkClient:
    """One SDK client in its own Node process.

    Every event the driver writes is kept in :attr:`events` in arrival order. :meth:`wait_for`
    returns the first event that matches and that no earlier ``wait_for`` has returned (it
    *consumes* it unless ``consume=False``), so two successive ``wait_for("message")`` calls
    return two different messages, and an event that arrived before the call is still found.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        log_path: Path | str | None = None,
        driver_path: Path | str = DRIVER_PATH,
    ) -> None:
        self.name = name
        self.driver_path = Path(driver_path)
        self.log_path: Path | None = Path(log_path) if log_path is not None else None
        self.uid: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._events: list[Event] = []
        self._consumed: set[int] = set()
        self._cond: asyncio.Condition | None = None
        self._eof = False
        self._ids = itertools.count(1)
        self._finalizer: weakref.finalize[[int], SdkClient] | None = None

    # ------------------------------------------------------------------------------------------
    # Lifecycle

    async def start(
        self,
        node_exe: str | Path,
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
        """Spawn the driver and wait for its ``ready`` event (returned). Does not connect yet."""
        if self._proc is not None:
            raise RuntimeError("SdkClient.start() called twice")
        if not self.driver_path.is_file():
            raise FileNotFoundError(
                f"{self.driver_path} not found; build it with `make node` "
                "(or `cd tests/interop && npm ci && npm run build`)"
            )
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

        self._cond = asyncio.Condition()
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                str(node_exe),
                str(self.driver_path),
                json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                limit=_STREAM_LIMIT,
            )
        self._finalizer = weakref.finalize(self, _kill_pid, self._proc.pid)
        self._reader = asyncio.create_task(self._read_events(), name=f"sdk-events-{self.name}")
        try:
            return await self.wait_for("ready", ready_timeout)
        except BaseException:
            await self.close(graceful=False)
            raise

    async def close(self, timeout: float = 5.0, *, graceful: bool = True) -> None:
        """Stop the driver; afterwards no process is left running.

        With ``graceful`` the driver is first asked to ``exit`` (the SDK closes its WebSocket
        with a close frame); if it is still alive after ``timeout`` (scaled) it gets SIGTERM,
        and SIGKILL if that does not end it either. Safe to call more than once.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None and graceful and not self._eof:
            with contextlib.suppress(Exception):
                self.send_cmd({"cmd": "exit"})
                await asyncio.wait_for(proc.wait(), scaled(min(timeout, 2.0)))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.returncode is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), scaled(timeout))
        if proc.returncode is None:  # pragma: no cover - SIGKILL did not work?
            await proc.wait()
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, scaled(timeout))
            except (TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader
        if self._finalizer is not None:
            self._finalizer.detach()

    async def __aenter__(self) -> SdkClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _read_events(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and self._cond is not None
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError as exc:  # a line over the stream limit
                    line = json.dumps({"event": "_invalid", "error": str(exc)}).encode()
                if not line:
                    break
                text = line.decode("utf-8", "replace").strip()
                if not text:
                    continue
                try:
                    parsed = json.loads(text)
                except json.JSONDecodeError:
                    parsed = None
                event: Event = (
                    parsed if isinstance(parsed, dict) else {"event": "_invalid", "line": text}
                )
                async with self._cond:
                    self._events.append(event)
                    self._cond.notify_all()
        finally:
            with contextlib.suppress(Exception):
                await proc.wait()
            async with self._cond:
                self._eof = True
                self._cond.notify_all()
            if self._finalizer is not None:
                self._finalizer.detach()

    # ------------------------------------------------------------------------------------------
    # Commands and events

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

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
        """Write one command line to the driver (non-blocking)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError("SdkClient is not started")
        if proc.returncode is not None or self._eof or proc.stdin.is_closing():
            raise DriverError(f"driver {self.name} is not running{self._log_tail()}")
        proc.stdin.write((json.dumps(dict(cmd)) + "\n").encode())

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
        cond = self._cond
        if cond is None:
            raise RuntimeError("SdkClient is not started")
        loop = asyncio.get_running_loop()
        limit = scaled(timeout)
        deadline = loop.time() + limit
        async with cond:
            while True:
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
                    await asyncio.wait_for(cond.wait(), remaining)

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

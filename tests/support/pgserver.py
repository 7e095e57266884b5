"""A private PostgreSQL server for outage tests: ``initdb`` into a fresh directory, started
and stopped with ``pg_ctl`` on a free loopback port (trust authentication, no other client),
so a test can stop it the way an operator restarts a database (``pg_ctl stop -m fast``: the
server closes every session) and start it again with its data.

Needs the PostgreSQL server binaries (``initdb``, ``pg_ctl``: on PATH or under
``/usr/lib/postgresql/*/bin``). Without them the test is skipped — except under ``CI=true``,
where it fails. ``initdb`` refuses to run as root: as root, the server runs as the
``postgres`` user (``runuser``) in a directory it owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.redis import free_port

__all__ = ["PrivatePostgres"]


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"a private PostgreSQL is required under CI=true: {why}")
    pytest.skip(f"no private PostgreSQL: {why}")


class PrivatePostgres:
    """One private server (:meth:`init`, :meth:`start`, :meth:`stop`, :meth:`remove`)."""

    def __init__(self) -> None:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            _missing("initdb and pg_ctl are not installed")
        self.initdb, self.pg_ctl = str(initdb), str(pg_ctl)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="magpie-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                _missing("running as root and there is no postgres user to run the server")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        """The URL of its ``postgres`` database as the ``postgres`` user."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {proc.stdout}\n{proc.stderr}")

    def init(self) -> None:
        """A new cluster in a fresh directory."""
        self._run(
            self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip

    def start(self) -> None:
        """Start it (and wait until it accepts connections)."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        options += " -c fsync=off -c max_connections=40"
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-w", "-t", "60",
                  "-l", str(self.root / "server.log"), "start")  # fmt: skip

    def stop(self) -> None:
        """Stop it as a restart does: every session is closed (``-m fast``)."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop it if it runs (``immediate``) and delete its files."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self._as, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)

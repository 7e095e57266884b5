"""One ``magpie serve`` per SQLite store: an exclusive lock on ``<db file>.lock``.

SQLite's own locks let a second process open the same file, and it would then run with the
same data beside the first (two writers taking turns, two node processes handing out ids,
two webhook dispatchers). ``magpie serve`` therefore takes an ``flock`` on a lock file
beside the database before it opens it, and holds it for as long as it runs; the kernel
drops it when the process ends, however it ends, so a crash never leaves a stale lock. The
file holds the holder's pid, for the message of the process that is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from magpie.errors import StartupError

__all__ = ["DataLock"]


class DataLock:
    """The exclusive lock of one SQLite store (:meth:`acquire`, :meth:`release`)."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or :class:`StartupError` when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            db = self.path.with_name(self.path.name.removesuffix(".lock"))
            raise StartupError(
                f"another Magpie process (pid {holder}) is using the SQLite store {db}",
                "stop it first, or give this one its own data_dir (MAGPIE_DATA_DIR); "
                "several processes on one store need PostgreSQL (store_url)",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (the file stays: removing it could race a new holder)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

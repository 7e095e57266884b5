"""``magpie backup`` and ``magpie restore`` for the embedded SQLite store.

**Backup** copies the node's SQLite store with SQLite's online backup API while the node runs
(WAL: the copy is one consistent snapshot, writers go on) — messages, extensions, tokens,
channels, and the durable jobs and shared values (card deadlines, the card secret, webhook
outbox) — into a new directory with a ``manifest.json``
(Magpie version, time, the store's epoch and schema version). Every message acknowledged
before the backup started is in it (an acknowledgement follows the commit, I1). The copy is
checked with ``PRAGMA quick_check`` and synced to disk. The API key file is not copied.

**Restore** puts a backup in place of the node's files while the node is **stopped**, and
gives the restored store a **fresh epoch** (I7): clients that cached anything of the store
they knew drop it and sync again, instead of mixing two histories.

A PostgreSQL store is backed up with ``pg_dump`` (``docs/operations.md``); these commands
refuse it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from magpie import __version__
from magpie.config import Settings
from magpie.errors import CommandError

__all__ = ["MANIFEST", "Manifest", "Restored", "backup", "refuse_if_running", "restore"]

#: The file describing a backup, beside the database copies.
MANIFEST = "manifest.json"
_STORE = "magpie.db"


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a backup holds."""

    magpie_version: str
    created_at_ms: int
    epoch: str
    schema_version: int
    files: tuple[str, ...]


def _sqlite_path(settings: Settings) -> Path:
    path = settings.sqlite_path
    if path is None:
        raise CommandError(
            f"the store is PostgreSQL ({settings.store_display}); magpie backup and restore "
            "copy the embedded SQLite store",
            "back it up with pg_dump and restore with pg_restore (docs/operations.md, Backup)",
        )
    return path


def _copy(source: Path, target: Path) -> None:
    """An online-backup copy of ``source`` into ``target`` (a new file), synced."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            problem = dst.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise CommandError(f"the copy of {source} is damaged: {problem}")
        finally:
            dst.close()
    finally:
        src.close()
    _fsync(target)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _store_facts(db: Path) -> tuple[str, int]:
    """The epoch and schema version of a Magpie database."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        epoch = conn.execute("SELECT epoch FROM meta WHERE id = 1").fetchone()
        version = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    except sqlite3.Error as exc:
        raise CommandError(f"{db} is not a Magpie database ({exc})") from exc
    finally:
        conn.close()
    if epoch is None:
        raise CommandError(f"{db} is not a Magpie database (no epoch)")
    return str(epoch[0]), int(version[0] or 0)


def backup(settings: Settings, dest: Path) -> Manifest:
    """Copy the node's SQLite files into the new directory ``dest``."""
    source = _sqlite_path(settings)
    if not source.is_file():
        raise CommandError(
            f"there is no store at {source}", "check data_dir/db_file (the node's settings)"
        )
    if dest.exists() and any(dest.iterdir()):
        raise CommandError(f"{dest} is not empty", "name a new or empty directory")
    dest.mkdir(parents=True, exist_ok=True)
    started = time.time_ns() // 1_000_000
    _copy(source, dest / _STORE)
    files = [_STORE]
    epoch, schema = _store_facts(dest / _STORE)
    manifest = Manifest(__version__, started, epoch, schema, tuple(files))
    (dest / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    _fsync(dest / MANIFEST)
    _fsync(dest)
    return manifest


@dataclass(frozen=True, slots=True)
class Restored:
    """What :func:`restore` did."""

    store: Path
    old_epoch: str
    new_epoch: str
    files: tuple[str, ...]


def _read_manifest(source: Path) -> Manifest:
    try:
        raw = json.loads((source / MANIFEST).read_text())
        return Manifest(**{**raw, "files": tuple(raw["files"])})
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CommandError(
            f"{source} is not a Magpie backup ({MANIFEST} missing or unreadable: {exc})",
            "name a directory written by magpie backup",
        ) from exc


def _holds_data(db: Path) -> bool:
    if not db.is_file() or db.stat().st_size == 0:
        return False
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        try:
            return conn.execute("SELECT 1 FROM meta LIMIT 1").fetchone() is not None
        except sqlite3.Error:
            return True  # something else lives there: do not overwrite it silently


def _put_in_place(copy: Path, target: Path) -> None:
    """Replace ``target`` (and its WAL files) by ``copy`` atomically, then sync the folder."""
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{target}{suffix}").unlink()
    os.replace(copy, target)
    _fsync(target.parent)


def _fresh_epoch(db: Path) -> str:
    epoch = uuid.uuid4().hex
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE meta SET epoch = ? WHERE id = 1", (epoch,))
        conn.commit()
    _fsync(db)
    return epoch


def refuse_if_running(settings: Settings) -> None:
    """Refuse while something listens on the node's API port (a running node would keep
    writing to the files being replaced)."""
    if not settings.api_port:
        return
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    try:
        with socket.create_connection((host, settings.api_port), timeout=1.0):
            pass
    except OSError:
        return
    raise CommandError(
        f"something listens on {host}:{settings.api_port} (api_port): the node still runs",
        "stop it (SIGTERM) before restoring, then start it on the restored store",
    )


def restore(settings: Settings, source: Path, *, force: bool = False) -> Restored:
    """Put the backup ``source`` in place of the (stopped) node's files, with a new epoch."""
    target = _sqlite_path(settings)
    manifest = _read_manifest(source)
    if _holds_data(target) and not force:
        raise CommandError(
            f"{target} already holds a database",
            "pass --force to replace it (take a backup of it first)",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(target.name + ".restoring")
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()
    _copy(source / _STORE, staged)
    old_epoch = manifest.epoch
    new_epoch = _fresh_epoch(staged)
    _put_in_place(staged, target)
    return Restored(target, old_epoch, new_epoch, manifest.files)

"""The card service's former SQLite file (``cards.db``), imported once into the IM.

Before the cluster work, the service kept its pending deadlines and its secret in a small
SQLite file of its own in the data directory — one per node, so two nodes had two secrets
and fired deadlines twice. Both now live in the shared store (reached through the
:class:`~magpie.cards.port.ImPort`). When a node starts and finds the old file,
:func:`import_legacy` hands its secret (kept only if the IM has none yet: the first node's
wins) and its pending deadlines to the port, renames the file to ``<name>.imported`` and
says so in the log; from then on it is not read again. A file that cannot be read stops the
start: a new secret would change the pseudonyms of anonymous ballots cast before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from magpie.cards.port import Deadline, ImPort
from magpie.errors import StartupError

__all__ = ["SECRET_NAME", "import_legacy"]

log = logging.getLogger(__name__)

#: The name of the card service's secret in the IM.
SECRET_NAME = "cards"  # noqa: S105 (a name, not a secret)
#: What the imported file is renamed to (its name plus this).
IMPORTED_SUFFIX = ".imported"


@dataclass(frozen=True, slots=True)
class _Legacy:
    secret: bytes | None
    deadlines: list[Deadline]


def _read(path: Path) -> _Legacy:
    """The secret and deadlines of the old file (its WAL is checkpointed on close)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        secret = None
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
            secret = None if row is None else bytes(row[0])
        deadlines = []
        if "deadlines" in tables:
            rows = conn.execute("SELECT message_id, action, at_ms FROM deadlines ORDER BY at_ms")
            deadlines = [Deadline(int(m), str(a), int(t)) for m, a, t in rows]
        return _Legacy(secret, deadlines)
    finally:
        conn.close()


def _set_aside(path: Path) -> Path:
    """Rename the file (and any journal files left beside it) to ``*.imported``."""
    target = path.with_name(path.name + IMPORTED_SUFFIX)
    path.replace(target)
    for extra in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + extra).unlink()
    return target


async def import_legacy(port: ImPort, path: Path) -> bool:
    """Import ``path`` if it exists (see the module docstring); whether it did."""
    if not path.is_file():
        return False
    try:
        legacy = await asyncio.to_thread(_read, path)
    except sqlite3.Error as exc:
        raise StartupError(
            f"cannot import the card service's old file {path}: {exc}",
            "restore it from a backup, or remove it if no card was ever created",
        ) from exc
    if legacy.secret is not None:
        kept = await port.secret(SECRET_NAME, legacy.secret)
        if kept != legacy.secret:
            log.warning(
                "%s holds another card secret than the store (another node imported its own "
                "first); cards created through this node before keep their data, but their "
                "anonymous ballots and action ids are keyed anew",
                path,
            )
    for deadline in legacy.deadlines:
        await port.schedule(deadline)
    target = await asyncio.to_thread(_set_aside, path)
    log.info(
        "imported the card secret and %d pending card deadline(s) from %s into the store; "
        "the file is no longer used (renamed to %s)",
        len(legacy.deadlines),
        path,
        target.name,
    )
    return True

"""Numbered schema migrations shipped as package data, shared by the store backends.

Each backend keeps its own folder of ``NNNN_name.sql`` files (``migrations/`` for SQLite,
``postgres_migrations/`` for PostgreSQL) with the same numbers for the same change; versions
run 1, 2, … without gaps and each applied one is recorded in ``schema_migrations``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from magpie.errors import MigrationError

__all__ = ["Migration", "load_migrations"]

_MIGRATION_FILE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema migration (``NNNN_name.sql``)."""

    version: int
    name: str
    sql: str


def load_migrations(folder: str = "migrations") -> list[Migration]:
    """The migrations packaged in ``magpie.store/<folder>``, ascending; their numbers must run
    1, 2, … without gaps."""
    found = []
    for entry in resources.files("magpie.store").joinpath(folder).iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise MigrationError(f"packaged migrations in {folder} are not numbered 1..n without gaps")
    return found

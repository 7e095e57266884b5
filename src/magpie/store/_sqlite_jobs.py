"""Durable jobs and shared values of :class:`magpie.store.sqlite.SqliteStore`.

A mixin, like the extension methods (:mod:`magpie.store._sqlite_ext`): it needs the store's
``_write`` (one transaction on the single writer thread) and ``_read`` (a pooled read-only
connection). A claim is a read-then-update on the writer thread, so two claims never see the
same due job: the single writer serialises them (the embedded default runs one node per
file). :func:`insert_jobs` is also called by the message appends, inside their transaction
(the transactional outbox).

Tables (``migrations/0003_jobs.sql``): ``jobs`` (``AUTOINCREMENT`` ids, never reused) and
``kv``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from magpie.domain.jobs import Job, JobCount, NewJob
from magpie.store._job_payload import checked_payload

__all__ = ["SqliteJobMethods", "checked_jobs", "insert_jobs"]

T = TypeVar("T")
_Job = Callable[[sqlite3.Connection], T]

_COLUMNS = (
    "job_id, kind, job_key, payload, due_at_ms, attempts, claimed_by, batch, dead, "
    "last_error, created_at_ms"
)
_INSERT = """
    INSERT INTO jobs (kind, job_key, payload, due_at_ms, created_at_ms) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT DO NOTHING"""
_DUE = """
    SELECT job_id FROM jobs WHERE kind = ? AND dead = 0 AND due_at_ms <= ?
    ORDER BY due_at_ms, job_id LIMIT ?"""
_IDS = "(SELECT value FROM json_each(?))"
_CLAIM = f"""
    UPDATE jobs SET claimed_by = ?, due_at_ms = ?,
        batch = CASE WHEN batch = '' THEN ? ELSE batch END
    WHERE job_id IN {_IDS}
    RETURNING {_COLUMNS}"""  # noqa: S608 (constants)
_COMPLETE = f"DELETE FROM jobs WHERE job_id IN {_IDS}"  # noqa: S608
_RETRY = f"""
    UPDATE jobs SET due_at_ms = ?, claimed_by = '', attempts = attempts + ?,
        last_error = CASE WHEN ? THEN ? ELSE last_error END
    WHERE job_id IN {_IDS} AND claimed_by = ? AND dead = 0"""  # noqa: S608
_BURY = f"""
    UPDATE jobs SET dead = 1, claimed_by = '', attempts = attempts + 1, last_error = ?
    WHERE job_id IN {_IDS} AND claimed_by = ? AND dead = 0"""  # noqa: S608
_REVIVE = f"""
    UPDATE jobs SET dead = 0, attempts = 0, due_at_ms = ?, claimed_by = ''
    WHERE job_id IN {_IDS} AND dead = 1"""  # noqa: S608
_CANCEL = f"DELETE FROM jobs WHERE kind = ? AND job_key <> '' AND job_key IN {_IDS}"  # noqa: S608
_LIST = f"""
    SELECT {_COLUMNS} FROM jobs WHERE dead = ? AND job_id > ? AND (? IS NULL OR kind = ?)
    ORDER BY job_id LIMIT ?"""  # noqa: S608
_NEXT_DUE = "SELECT MIN(due_at_ms) FROM jobs WHERE kind = ? AND dead = 0"
_COUNT = "SELECT kind, SUM(dead = 0), SUM(dead = 1) FROM jobs GROUP BY kind ORDER BY kind"
_KV_INSERT = "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
_KV_GET = "SELECT value FROM kv WHERE key = ?"


def _ids(job_ids: Sequence[int]) -> str:
    return json.dumps([int(i) for i in job_ids])


def _job(r: Sequence[Any]) -> Job:
    return Job(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], bool(r[8]), r[9], r[10])


def checked_jobs(jobs: Sequence[NewJob]) -> list[tuple[Any, ...]]:
    """The insert parameters of ``jobs``, or :class:`StoreError` for an invalid one (checked
    before the transaction, so nothing is written)."""
    return [
        (job.kind, job.key, checked_payload(job), job.due_at_ms, job.created_at_ms) for job in jobs
    ]


def insert_jobs(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Transaction body: insert :func:`checked_jobs` rows, skipping taken keys."""
    added = 0
    for row in rows:
        added += conn.execute(_INSERT, row).rowcount
    return added


def _claim(
    conn: sqlite3.Connection, kind: str, owner: str, now_ms: int, lease_ms: int, limit: int
) -> list[Job]:
    due = [r[0] for r in conn.execute(_DUE, (kind, now_ms, limit))]
    if not due:
        return []
    token = uuid.uuid4().hex
    found = conn.execute(_CLAIM, (owner, now_ms + lease_ms, token, _ids(due))).fetchall()
    return sorted((_job(r) for r in found), key=lambda j: j.job_id)


def _kv_setdefault(conn: sqlite3.Connection, key: str, value: bytes) -> bytes:
    conn.execute(_KV_INSERT, (key, value))
    return bytes(conn.execute(_KV_GET, (key,)).fetchone()[0])


class SqliteJobMethods:
    """Job and key-value methods of the SQLite store (see the store interface)."""

    __slots__ = ()

    async def _write(self, what: str, job: _Job[T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _read(self, what: str, job: _Job[T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _change(self, what: str, sql: str, args: tuple[Any, ...]) -> int:
        return await self._write(what, lambda c: c.execute(sql, args).rowcount)

    async def enqueue_jobs(self, jobs: Sequence[NewJob]) -> int:
        """Add jobs, skipping taken ``(kind, key)`` pairs; returns how many were added."""
        rows = checked_jobs(jobs)
        if not rows:
            return 0
        return await self._write("enqueue_jobs", partial(insert_jobs, rows=rows))

    async def claim_jobs(
        self, kind: str, owner: str, *, now_ms: int, lease_ms: int, limit: int
    ) -> list[Job]:
        """Claim due jobs of ``kind`` for ``owner`` (the single writer makes it exclusive)."""
        if limit <= 0:
            return []
        job = partial(_claim, kind=kind, owner=owner, now_ms=now_ms, lease_ms=lease_ms, limit=limit)
        return await self._write("claim_jobs", job)

    async def complete_jobs(self, job_ids: Sequence[int]) -> int:
        """Delete done jobs."""
        if not job_ids:
            return 0
        return await self._change("complete_jobs", _COMPLETE, (_ids(job_ids),))

    async def retry_jobs(
        self,
        job_ids: Sequence[int],
        owner: str,
        *,
        due_at_ms: int,
        error: str = "",
        attempt: bool = True,
    ) -> int:
        """Give ``owner``'s claimed jobs back, due at ``due_at_ms``."""
        if not job_ids:
            return 0
        args = (due_at_ms, int(attempt), int(attempt), error, _ids(job_ids), owner)
        return await self._change("retry_jobs", _RETRY, args)

    async def bury_jobs(self, job_ids: Sequence[int], owner: str, *, error: str) -> int:
        """Make ``owner``'s claimed jobs dead."""
        if not job_ids:
            return 0
        return await self._change("bury_jobs", _BURY, (error, _ids(job_ids), owner))

    async def revive_jobs(self, job_ids: Sequence[int], *, due_at_ms: int) -> int:
        """Dead jobs become pending again."""
        if not job_ids:
            return 0
        return await self._change("revive_jobs", _REVIVE, (due_at_ms, _ids(job_ids)))

    async def cancel_jobs(self, kind: str, keys: Sequence[str]) -> int:
        """Delete the jobs of ``kind`` with these keys."""
        if not keys:
            return 0
        return await self._change("cancel_jobs", _CANCEL, (kind, json.dumps(list(keys))))

    async def list_jobs(
        self, kind: str | None, *, dead: bool, after_job_id: int = 0, limit: int = 100
    ) -> list[Job]:
        """Dead or pending jobs after ``after_job_id``, ascending."""
        if limit <= 0:
            return []
        args = (int(dead), after_job_id, kind, kind, limit)
        found = await self._read("list_jobs", lambda c: c.execute(_LIST, args).fetchall())
        return [_job(r) for r in found]

    async def next_due_ms(self, kind: str) -> int | None:
        """The earliest due time of the pending jobs of ``kind``."""
        row = await self._read("next_due_ms", lambda c: c.execute(_NEXT_DUE, (kind,)).fetchone())
        return None if row is None or row[0] is None else int(row[0])

    async def count_jobs(self) -> list[JobCount]:
        """Pending and dead jobs per kind."""
        found = await self._read("count_jobs", lambda c: c.execute(_COUNT).fetchall())
        return [JobCount(k, int(p), int(d)) for k, p, d in found]

    async def kv_setdefault(self, key: str, value: bytes) -> bytes:
        """The stored value of ``key``, storing ``value`` first when there is none."""
        return await self._write("kv_setdefault", partial(_kv_setdefault, key=key, value=value))

"""Durable jobs and shared values of :class:`magpie.store.postgres.PostgresStore`.

A mixin, like the extension methods (:mod:`magpie.store._pg_ext`). Several nodes claim from
one table at once: a claim picks the earliest due rows with ``FOR UPDATE SKIP LOCKED`` (rows
another claim is locking are skipped, not waited for) and moves their ``due_at_ms`` to the
end of the lease in the same statement. Under READ COMMITTED a row another claim changed
and committed after this statement's snapshot is re-checked against the ``WHERE`` clause
when it is locked, so a job whose due time just moved is not taken twice.

:func:`jobs_args` and :data:`INSERT_JOBS` are shared with the message appends and the
extension change, which enqueue their jobs in their own transaction (the transactional
outbox). Payloads cross as JSON text and are cast to ``jsonb`` in SQL.

Tables (``postgres_migrations/0003_jobs.sql``): ``jobs`` (an identity id, never reused) and
``kv``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from magpie.domain.jobs import Job, JobCount, NewJob
from magpie.errors import StoreError
from magpie.store import _pg_rows as rows
from magpie.store._job_payload import checked_payload
from magpie.store._pg_rows import JOB_COLUMNS

__all__ = ["INSERT_JOBS", "JOBS_CTE", "PgJobMethods", "jobs_args"]

#: The rows of the parameters ``$n .. $n+4`` (see :func:`jobs_args`).
_UNNEST = (
    "unnest(${0}::text[], ${1}::text[], ${2}::text[], ${3}::bigint[], ${4}::bigint[])"
    " AS j(kind, job_key, payload, due_at_ms, created_at_ms)"
)


def _insert(first: int, condition: str = "") -> str:
    """An insert of the jobs in the parameters ``$first .. $first+4``, skipping taken keys
    (``ON CONFLICT DO NOTHING`` covers the partial unique index on ``(kind, job_key)``)."""
    source = _UNNEST.format(*range(first, first + 5))
    return f"""
        INSERT INTO jobs (kind, job_key, payload, due_at_ms, created_at_ms)
        SELECT kind, job_key, payload::jsonb, due_at_ms, created_at_ms FROM {source}
        {condition}
        ON CONFLICT DO NOTHING"""  # noqa: S608 (constants)


#: Enqueue the jobs of ``$1 .. $5``.
INSERT_JOBS = _insert(1)
#: A CTE for the append statements: enqueue the jobs of ``$13 .. $17`` when ``ins`` inserted.
JOBS_CTE = f", jobs AS ({_insert(13, 'WHERE EXISTS (SELECT 1 FROM ins)')})"  # noqa: S608

_CLAIM = f"""
    WITH picked AS (
        SELECT job_id FROM jobs
        WHERE kind = $1 AND NOT dead AND due_at_ms <= $3
        ORDER BY due_at_ms, job_id LIMIT $5
        FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs AS j SET claimed_by = $2, due_at_ms = $3 + $4,
        batch = CASE WHEN j.batch = '' THEN $6 ELSE j.batch END
    FROM picked WHERE j.job_id = picked.job_id
    RETURNING {", ".join("j." + c for c in JOB_COLUMNS.split(", "))}"""  # noqa: S608
_COMPLETE = "DELETE FROM jobs WHERE job_id = ANY($1::bigint[])"
_RETRY = """
    UPDATE jobs SET due_at_ms = $3, claimed_by = '', attempts = attempts + $4,
        last_error = CASE WHEN $4 > 0 THEN $5 ELSE last_error END
    WHERE job_id = ANY($1::bigint[]) AND claimed_by = $2 AND NOT dead"""
_BURY = """
    UPDATE jobs SET dead = true, claimed_by = '', attempts = attempts + 1, last_error = $3
    WHERE job_id = ANY($1::bigint[]) AND claimed_by = $2 AND NOT dead"""
_REVIVE = """
    UPDATE jobs SET dead = false, attempts = 0, due_at_ms = $2, claimed_by = ''
    WHERE job_id = ANY($1::bigint[]) AND dead"""
_CANCEL = "DELETE FROM jobs WHERE kind = $1 AND job_key <> '' AND job_key = ANY($2::text[])"
_LIST = f"""
    SELECT {JOB_COLUMNS} FROM jobs
    WHERE dead = $1 AND job_id > $2 AND ($3::text IS NULL OR kind = $3)
    ORDER BY job_id LIMIT $4"""  # noqa: S608
_NEXT_DUE = "SELECT MIN(due_at_ms) FROM jobs WHERE kind = $1 AND NOT dead"
_COUNT = """
    SELECT kind, count(*) FILTER (WHERE NOT dead), count(*) FILTER (WHERE dead)
    FROM jobs GROUP BY kind ORDER BY kind COLLATE "C" """
# A concurrent insert of the same key makes this statement's INSERT do nothing while its
# SELECT (same snapshot) cannot see the other row yet: no row, and the caller runs it again.
_KV_SETDEFAULT = """
    WITH ins AS (
        INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING
        RETURNING value
    )
    SELECT value FROM ins UNION ALL SELECT value FROM kv WHERE key = $1"""
_KV_RUNS = 3


_JobsArgs = tuple[list[str], list[str], list[str], list[int], list[int]]


def jobs_args(jobs: Sequence[NewJob]) -> _JobsArgs:
    """The five array parameters of an insert of ``jobs``; :class:`StoreError` for an
    invalid job (checked before anything is sent, so nothing is written)."""
    kinds, keys, payloads, due, created = [], [], [], [], []
    for job in jobs:
        payloads.append(checked_payload(job))
        kinds.append(job.kind)
        keys.append(job.key)
        due.append(job.due_at_ms)
        created.append(job.created_at_ms)
    return kinds, keys, payloads, due, created


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


class PgJobMethods:
    """Job and key-value methods of the PostgreSQL store (see the store interface)."""

    __slots__ = ()

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        raise NotImplementedError  # provided by PostgresStore

    async def _fetchrow(self, what: str, sql: str, *args: Any) -> asyncpg.Record | None:
        raise NotImplementedError  # provided by PostgresStore

    async def _execute(self, what: str, sql: str, *args: Any) -> str:
        raise NotImplementedError  # provided by PostgresStore

    async def _change(self, what: str, sql: str, *args: Any) -> int:
        return _count(await self._execute(what, sql, *args))

    async def enqueue_jobs(self, jobs: Sequence[NewJob]) -> int:
        """Add jobs, skipping taken ``(kind, key)`` pairs; returns how many were added."""
        if not jobs:
            return 0
        return await self._change("enqueue_jobs", INSERT_JOBS, *jobs_args(jobs))

    async def claim_jobs(
        self, kind: str, owner: str, *, now_ms: int, lease_ms: int, limit: int
    ) -> list[Job]:
        """Claim due jobs of ``kind`` for ``owner`` (``FOR UPDATE SKIP LOCKED``)."""
        if limit <= 0:
            return []
        token = uuid.uuid4().hex
        args = (kind, owner, now_ms, lease_ms, limit, token)
        found = await self._fetch("claim_jobs", _CLAIM, *args)
        return sorted((rows.job(r) for r in found), key=lambda j: j.job_id)

    async def complete_jobs(self, job_ids: Sequence[int]) -> int:
        """Delete done jobs."""
        if not job_ids:
            return 0
        return await self._change("complete_jobs", _COMPLETE, list(job_ids))

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
        args = (list(job_ids), owner, due_at_ms, int(attempt), error)
        return await self._change("retry_jobs", _RETRY, *args)

    async def bury_jobs(self, job_ids: Sequence[int], owner: str, *, error: str) -> int:
        """Make ``owner``'s claimed jobs dead."""
        if not job_ids:
            return 0
        return await self._change("bury_jobs", _BURY, list(job_ids), owner, error)

    async def revive_jobs(self, job_ids: Sequence[int], *, due_at_ms: int) -> int:
        """Dead jobs become pending again."""
        if not job_ids:
            return 0
        return await self._change("revive_jobs", _REVIVE, list(job_ids), due_at_ms)

    async def cancel_jobs(self, kind: str, keys: Sequence[str]) -> int:
        """Delete the jobs of ``kind`` with these keys."""
        if not keys:
            return 0
        return await self._change("cancel_jobs", _CANCEL, kind, list(keys))

    async def list_jobs(
        self, kind: str | None, *, dead: bool, after_job_id: int = 0, limit: int = 100
    ) -> list[Job]:
        """Dead or pending jobs after ``after_job_id``, ascending."""
        if limit <= 0:
            return []
        found = await self._fetch("list_jobs", _LIST, dead, after_job_id, kind, limit)
        return [rows.job(r) for r in found]

    async def next_due_ms(self, kind: str) -> int | None:
        """The earliest due time of the pending jobs of ``kind``."""
        row = await self._fetchrow("next_due_ms", _NEXT_DUE, kind)
        return None if row is None or row[0] is None else int(row[0])

    async def count_jobs(self) -> list[JobCount]:
        """Pending and dead jobs per kind."""
        found = await self._fetch("count_jobs", _COUNT)
        return [JobCount(r[0], int(r[1]), int(r[2])) for r in found]

    async def kv_setdefault(self, key: str, value: bytes) -> bytes:
        """The stored value of ``key``, storing ``value`` first when there is none."""
        for _ in range(_KV_RUNS):
            row = await self._fetchrow("kv_setdefault", _KV_SETDEFAULT, key, value)
            if row is not None:
                return bytes(row[0])
        raise StoreError("store operation kv_setdefault failed: no value after insert")

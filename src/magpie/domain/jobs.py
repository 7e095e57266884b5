"""Durable jobs: work the store keeps until some node has done it (webhooks, card deadlines).

A job is a row of the store's job table (an *outbox*): a ``kind`` (what handles it), a JSON
``payload``, an optional dedupe ``key`` (unique per kind while the row exists) and the time
it is due. Nodes *claim* due jobs of a kind for a lease; a claimed job is done (deleted),
retried later (``attempts + 1``), given back untried, or — after its last attempt — *dead*:
kept, listable and revivable, never dropped silently. While a job is claimed its
``due_at_ms`` is the end of the lease, so a job whose node died becomes due again by itself
when the lease runs out, and any node takes it over.

Work that must not be lost with the change that causes it (a webhook about a committed
message, a card's deadline) is enqueued in the change's own transaction: the store's write
methods take the :class:`NewJob` values to add (:data:`JobsOf` for an extension change,
whose jobs depend on the change's outcome). So a crash between the commit and an enqueue
cannot happen: there is no "between".

This module states the values only; the store implements them (``magpie.store``) and
``magpie.core.jobs`` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_KIND_LENGTH",
    "Job",
    "JobCount",
    "NewJob",
    "check_new_job",
]

#: Longest job kind (``webhook``, ``card.deadline``, ...).
MAX_KIND_LENGTH = 64
#: Longest dedupe key.
MAX_KEY_LENGTH = 256

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue. ``key`` (``""``: none) makes the enqueue idempotent: while a job of
    the same ``kind`` and ``key`` exists (pending, claimed or dead), another is not added.
    ``due_at_ms`` is when it may run first (unix ms; 0: at once); ``created_at_ms`` is
    recorded for the listings."""

    kind: str
    payload: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    key: str = ""
    due_at_ms: int = 0
    created_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job.

    ``due_at_ms`` is when it is due — while it is claimed, the end of the claim's lease.
    ``attempts`` counts failed tries. ``claimed_by`` names the owner of the current or last
    claim (``""``: never claimed or given back). ``batch`` is the token of the claim that
    first took it: jobs first claimed together keep it, so a handler can send them together
    again after a retry or a takeover (the same request again). ``dead``: the last attempt
    failed; ``last_error`` says why the last try failed."""

    job_id: int
    kind: str
    key: str
    payload: Mapping[str, Any]
    due_at_ms: int
    attempts: int
    claimed_by: str
    batch: str
    dead: bool
    last_error: str
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class JobCount:
    """How many jobs of one kind are pending (due or not, claimed or not) and dead."""

    kind: str
    pending: int
    dead: int


def check_new_job(job: NewJob) -> str:
    """What is wrong with ``job`` (``""``: nothing): the kind must be 1–64 characters, the
    key at most 256, the times not negative and the payload a JSON object (a mapping)."""
    if not 1 <= len(job.kind) <= MAX_KIND_LENGTH:
        return f"a job kind must be 1–{MAX_KIND_LENGTH} characters"
    if len(job.key) > MAX_KEY_LENGTH:
        return f"a job key must be at most {MAX_KEY_LENGTH} characters"
    if job.due_at_ms < 0 or job.created_at_ms < 0:
        return "job times must not be negative"
    if not isinstance(job.payload, Mapping):
        return "a job payload must be a JSON object"
    return ""

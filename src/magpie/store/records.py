"""Checks every store backend applies to message records (``magpie.domain.ext.ExtRecord``):
a key is 1–:data:`~magpie.domain.ext.MAX_RECORD_KEY` characters, an attempt reads at most
:data:`~magpie.domain.ext.MAX_RECORD_READS` keys, and a written value is a JSON object. A
breach is a bug of the caller (the card service builds the keys), so it raises
:class:`~magpie.errors.StoreError` and nothing is written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from magpie.domain.ext import MAX_RECORD_KEY, MAX_RECORD_READS
from magpie.errors import StoreError

__all__ = ["check_reads", "check_record_keys"]


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_RECORD_KEY:
        raise StoreError(f"a record key must be a string of 1–{MAX_RECORD_KEY} characters")


def check_reads(keys: Iterable[str]) -> None:
    """Refuse more than ``MAX_RECORD_READS`` keys, or a malformed one."""
    keys = list(keys)
    if len(keys) > MAX_RECORD_READS:
        raise StoreError(f"an extension change reads at most {MAX_RECORD_READS} records")
    for key in keys:
        _check_key(key)


def check_record_keys(writes: Mapping[str, Mapping[str, Any] | None]) -> None:
    """Refuse a malformed key or a value that is neither an object nor ``None``."""
    for key, value in writes.items():
        _check_key(key)
        if value is not None and not isinstance(value, Mapping):
            raise StoreError(f"record {key!r}: a value must be a JSON object or None")

"""Validation of card definitions and action parameters (untrusted JSON).

Each helper reads one key of a JSON object and returns a typed value or raises
:class:`~magpie.cards.machine.ParamError` naming the key; a definition parser turns that into
a 400 :class:`~magpie.cards.model.CardInvalid`, an action into an *invalid* refusal. Every
limit is a named constant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from magpie.cards.machine import ParamError
from magpie.domain.channels import uid_problem

__all__ = [
    "MAX_ADMINS",
    "MAX_COMMENT",
    "MAX_DESCRIPTION",
    "MAX_TITLE",
    "boolean",
    "choice",
    "deadline",
    "integer",
    "text",
    "uid",
    "uid_list",
]

#: Longest title, description and comment / reason (characters).
MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_COMMENT = 500
#: Most admins of one card.
MAX_ADMINS = 20
#: Deadlines must lie before this (unix ms, year 2286): guards against seconds-vs-ms slips
#: the other way being accepted as "far future" forever.
MAX_DEADLINE_MS = 10**13


def text(raw: Mapping[str, Any], key: str, max_length: int, *, required: bool = False) -> str:
    """A string of at most ``max_length`` characters (``""`` when absent and optional)."""
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise ParamError(f"{key} is required")
        return ""
    if not isinstance(value, str):
        raise ParamError(f"{key} must be a string")
    if len(value) > max_length:
        raise ParamError(f"{key} must be at most {max_length} characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ParamError(f"{key} is not valid Unicode") from None
    return value


def boolean(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    """A JSON boolean (0/1 accepted)."""
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise ParamError(f"{key} must be true or false")


def integer(raw: Mapping[str, Any], key: str, low: int, high: int, default: int) -> int:
    """An integer in ``[low, high]``."""
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParamError(f"{key} must be an integer from {low} to {high}")
    return value


def choice(raw: Mapping[str, Any], key: str, options: Sequence[str], default: str) -> str:
    """One of ``options``."""
    value = raw.get(key)
    if value is None:
        return default
    if value not in options:
        raise ParamError(f"{key} must be one of {', '.join(options)}")
    return str(value)


def uid(value: object, key: str) -> str:
    """A user id by the IM's rule (:func:`magpie.domain.channels.uid_problem`)."""
    problem = uid_problem(value)
    if problem is not None:
        raise ParamError(f"{key} {problem}")
    return str(value)


def uid_list(raw: Mapping[str, Any], key: str, low: int, high: int) -> tuple[str, ...]:
    """``low``–``high`` distinct uids, in the given order."""
    value = raw.get(key)
    if value is None:
        value = []
    if not isinstance(value, list):
        raise ParamError(f"{key} must be an array of uids")
    out = tuple(dict.fromkeys(uid(v, f"{key}[{i}]") for i, v in enumerate(value)))
    if not low <= len(out) <= high:
        raise ParamError(f"{key} must list {low} to {high} distinct users")
    return out


def deadline(raw: Mapping[str, Any], key: str, now: int | None) -> int:
    """A deadline in unix milliseconds (0 = none). With ``now`` (creation) it must lie in
    the future; without (re-reading a stored definition) any stored value is taken."""
    value = integer(raw, key, 0, MAX_DEADLINE_MS, 0)
    if value and now is not None and value <= now:
        raise ParamError(f"{key} must be in the future (unix milliseconds)")
    return value

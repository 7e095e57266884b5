"""A rejected extension change as an API error: the one mapping from
:class:`~magpie.domain.ext.Result` to HTTP statuses, used by ``/message/extra/update`` and its
siblings and by the card service alike.

=========  ==============================  ======
result     error                           status
=========  ==============================  ======
conflict   :class:`~magpie.errors.Conflict`   409
stale      :class:`Stale`                     409
forbidden  :class:`~magpie.errors.Forbidden`  403
invalid    ``too_large`` code: 413, else the caller's *invalid* class (400)
=========  ==============================  ======
"""

from __future__ import annotations

from typing import Any

from magpie.domain.ext import OpRecord, Result
from magpie.errors import ApiError, BadRequest, Conflict, Forbidden, PayloadTooLarge

__all__ = ["Invalid", "Stale", "rejection_error"]


class Stale(Conflict):
    """A last-writer-wins change older than the stored state (recorded, changed nothing)."""

    code = "stale"


class Invalid(BadRequest):
    """A change not valid for the current state (e.g. editing a revoked message)."""

    code = "invalid"


def rejection_error(
    op: OpRecord, /, *, invalid: type[BadRequest] = Invalid, **detail: Any
) -> ApiError:
    """The error answering the rejected attempt ``op`` (its message is the log's detail
    without the code), carrying ``detail``."""
    message = op.message or op.code
    if op.result is Result.CONFLICT:
        return Conflict(message, **detail)
    if op.result is Result.STALE:
        return Stale(message, **detail)
    if op.result is Result.FORBIDDEN:
        return Forbidden(message, **detail)
    if op.code == "too_large":
        return PayloadTooLarge(message, **detail)
    return invalid(message, **detail)

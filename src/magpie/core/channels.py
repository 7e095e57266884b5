"""The id rules of :mod:`magpie.domain.channels` as the server's input checks: each raises
:class:`~magpie.errors.BadRequest` naming the field."""

from __future__ import annotations

from magpie.domain.channels import channel_id_problem, channel_type_problem, uid_problem
from magpie.errors import BadRequest

__all__ = ["validate_channel_id", "validate_channel_type", "validate_uid"]


def validate_uid(uid: object, field: str = "uid") -> str:
    """A uid is 1–128 characters without whitespace, control characters or ``@``."""
    problem = uid_problem(uid)
    if problem is not None:
        raise BadRequest(f"{field} {problem}", field=field)
    return str(uid)


def validate_channel_id(channel_id: object, field: str = "channel_id") -> str:
    """A channel id is 1–128 characters without whitespace or control characters."""
    problem = channel_id_problem(channel_id)
    if problem is not None:
        raise BadRequest(f"{field} {problem}", field=field)
    return str(channel_id)


def validate_channel_type(channel_type: object, field: str = "channel_type") -> int:
    """A channel type is one of the WuKongIM types 1–12."""
    problem = channel_type_problem(channel_type)
    if problem is not None:
        raise BadRequest(f"{field} {problem}", field=field)
    assert isinstance(channel_type, int)  # noqa: S101 - narrowed by the rule above
    return channel_type

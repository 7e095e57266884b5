"""Channel ids and the person-channel rule (spec §4).

A person channel between ``a`` and ``b`` is stored under the *fake channel id* ``"x@y"`` where
the uid with the larger CRC32 comes first (WuKongIM ``GetFakeChannelIDWith``); both parties
share its sequence. On delivery each side sees the *other* uid as ``channel_id``.
"""

from __future__ import annotations

import re
import zlib

from magpie.errors import BadRequest

__all__ = [
    "CHANNEL_PERSON",
    "MAX_ID_LENGTH",
    "fake_channel_id",
    "parties",
    "peer_of",
    "validate_channel_id",
    "validate_channel_type",
    "validate_uid",
]

CHANNEL_PERSON = 1
MAX_ID_LENGTH = 128
_ID_RE = re.compile(r"^[^\s@\x00-\x1f\x7f]+$")
_CHANNEL_RE = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
_KNOWN_TYPES = frozenset(range(1, 13))


def validate_uid(uid: object, field: str = "uid") -> str:
    """A uid is 1–128 characters without whitespace, control characters or ``@``."""
    if not isinstance(uid, str) or not uid:
        raise BadRequest(f"{field} must be a non-empty string", field=field)
    if len(uid) > MAX_ID_LENGTH or not _ID_RE.match(uid):
        raise BadRequest(
            f"{field} must be at most {MAX_ID_LENGTH} characters without spaces or '@'",
            field=field,
        )
    return uid


def validate_channel_id(channel_id: object, field: str = "channel_id") -> str:
    """A channel id is 1–128 characters without whitespace or control characters."""
    if not isinstance(channel_id, str) or not channel_id:
        raise BadRequest(f"{field} must be a non-empty string", field=field)
    if len(channel_id) > MAX_ID_LENGTH or not _CHANNEL_RE.match(channel_id):
        raise BadRequest(
            f"{field} must be at most {MAX_ID_LENGTH} characters without spaces", field=field
        )
    return channel_id


def validate_channel_type(channel_type: object, field: str = "channel_type") -> int:
    """A channel type is one of the WuKongIM types 1–12."""
    if isinstance(channel_type, bool) or not isinstance(channel_type, int):
        raise BadRequest(f"{field} must be an integer", field=field)
    if channel_type not in _KNOWN_TYPES:
        raise BadRequest(f"{field} must be a channel type 1–12", field=field)
    return channel_type


def _crc(uid: str) -> int:
    return zlib.crc32(uid.encode())


def fake_channel_id(a: str, b: str) -> str:
    """The storage id of the person channel between ``a`` and ``b`` (order-independent).

    WuKongIM puts the uid with the larger CRC32 first; on a CRC tie we order by the uid so
    the id stays the same whichever side asks."""
    first, second = (a, b) if (_crc(a), a) > (_crc(b), b) else (b, a)
    return f"{first}@{second}"


def parties(fake_id: str) -> tuple[str, str]:
    """The two uids of the person channel ``fake_id`` (uids never contain ``@``)."""
    first, _, second = fake_id.partition("@")
    return first, second


def peer_of(fake_id: str, uid: str) -> str:
    """The channel id ``uid`` sees for the person channel ``fake_id``: the other party."""
    first, _, second = fake_id.partition("@")
    return second if first == uid else first

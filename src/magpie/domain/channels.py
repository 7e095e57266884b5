"""Channels: types, id rules and person channels (spec §4).

A person channel between ``a`` and ``b`` is stored under the *fake channel id* ``"x@y"``
where the uid with the larger CRC32 comes first (WuKongIM ``GetFakeChannelIDWith``); both
parties share its sequence. Each party sees the *other* uid as the channel id. Uids never
contain ``@``, so a fake id splits unambiguously.

**The id rule.** A uid or a channel id is 1–128 characters of *visible ASCII*: ``!``
(0x21) through ``~`` (0x7E) — letters, digits and punctuation — and a uid has no ``@``.
Nothing else: no space or other whitespace (so no trailing newline), no control character,
no character outside ASCII. Two different ids therefore never look the same on screen
because of an invisible character, a Unicode look-alike (Cyrillic ``а`` for Latin ``a``,
fullwidth letters, combining marks, zero-width or bidirectional controls) or a different
Unicode normalisation of the same text. Ids are compared exactly (case matters). The whole
value must match (:meth:`re.Pattern.fullmatch`: ``$`` would accept a trailing newline).
:data:`UID_PATTERN` and :data:`CHANNEL_ID_PATTERN` state the rule as JSON Schema patterns.

The rules return a problem (``None`` when the value is fine), phrased to follow a field
name: ``f"{field} {problem}"``. Each layer raises it as its own error (the server's
``BadRequest``, the SDK's ``InvalidArgument``, a card's ``ParamError``).
"""

from __future__ import annotations

import re
import zlib

__all__ = [
    "CHANNEL_ID_PATTERN",
    "CHANNEL_TYPES",
    "GROUP",
    "MAX_ID_LENGTH",
    "PERSON",
    "UID_PATTERN",
    "channel_id_problem",
    "channel_type_problem",
    "fake_channel_id",
    "is_fake_id",
    "names_channel",
    "parties",
    "peer_of",
    "uid_problem",
    "visible_channel_id",
]

#: The person (direct chat) channel type.
PERSON = 1
#: The group channel type.
GROUP = 2
#: The WuKongIM channel types (spec §4): 1 person, 2 group, 3 customer service, 4 community,
#: 5 community topic, 6 info, 7 data, 8 temporary, 9 live, 10 visitors, 11 agent, 12 agent
#: group. JS SDK 1.0.4 knows 1, 2 and 7.
CHANNEL_TYPES = range(1, 13)
#: Longest uid or channel id.
MAX_ID_LENGTH = 128

#: The characters of a uid: visible ASCII but ``@`` (``!``–``?``, ``A``–``~``).
_UID_CHARS = "!-?A-~"
#: The characters of a channel id: visible ASCII (``!``–``~``).
_CHANNEL_CHARS = "!-~"
#: The id rule as JSON Schema (ECMA-262) patterns, for the OpenAPI document.
UID_PATTERN = f"^[{_UID_CHARS}]{{1,{MAX_ID_LENGTH}}}$"
CHANNEL_ID_PATTERN = f"^[{_CHANNEL_CHARS}]{{1,{MAX_ID_LENGTH}}}$"

_UID = re.compile(f"[{_UID_CHARS}]{{1,{MAX_ID_LENGTH}}}")
_CHANNEL_ID = re.compile(f"[{_CHANNEL_CHARS}]{{1,{MAX_ID_LENGTH}}}")


def uid_problem(uid: object) -> str | None:
    """A uid is 1–128 visible ASCII characters (``!``–``~``) other than ``@``."""
    if not isinstance(uid, str) or not uid:
        return "must be a non-empty string"
    if not _UID.fullmatch(uid):
        return (
            f"must be 1–{MAX_ID_LENGTH} visible ASCII characters (no space, control "
            "character, '@' or non-ASCII character)"
        )
    return None


def channel_id_problem(channel_id: object) -> str | None:
    """A channel id is 1–128 visible ASCII characters (``!``–``~``)."""
    if not isinstance(channel_id, str) or not channel_id:
        return "must be a non-empty string"
    if not _CHANNEL_ID.fullmatch(channel_id):
        return (
            f"must be 1–{MAX_ID_LENGTH} visible ASCII characters (no space, control "
            "character or non-ASCII character)"
        )
    return None


def channel_type_problem(channel_type: object) -> str | None:
    """A channel type is one of the WuKongIM types 1–12 (an ``int``, not a ``bool``)."""
    if isinstance(channel_type, bool) or not isinstance(channel_type, int):
        return "must be an integer"
    if channel_type not in CHANNEL_TYPES:
        return "must be a channel type 1–12"
    return None


def _crc(uid: str) -> int:
    return zlib.crc32(uid.encode())


def fake_channel_id(a: str, b: str) -> str:
    """The storage id of the person channel between ``a`` and ``b`` (order-independent).

    WuKongIM puts the uid with the larger CRC32 first; on a CRC tie we order by the uid so
    the id stays the same whichever side asks."""
    first, second = (a, b) if (_crc(a), a) > (_crc(b), b) else (b, a)
    return f"{first}@{second}"


def is_fake_id(channel_id: str, channel_type: int) -> bool:
    """Whether ``channel_id`` is the storage id of a person channel."""
    return channel_type == PERSON and "@" in channel_id


def parties(fake_id: str) -> tuple[str, str]:
    """The two uids of the person channel ``fake_id``."""
    first, _, second = fake_id.partition("@")
    return first, second


def peer_of(fake_id: str, uid: str) -> str:
    """The channel id ``uid`` sees for the person channel ``fake_id``: the other party."""
    first, second = parties(fake_id)
    return second if first == uid else first


def visible_channel_id(channel_id: str, channel_type: int, viewer: str) -> str:
    """The storage id ``channel_id`` as ``viewer`` sees it: the peer for person channels."""
    if is_fake_id(channel_id, channel_type):
        return peer_of(channel_id, viewer)
    return channel_id


def names_channel(stored_id: str, stored_type: int, channel_id: str, channel_type: int) -> bool:
    """Whether a caller's ``channel_id``/``channel_type`` (empty/0 = unspecified) name the
    stored channel; a person channel by its fake id or either party."""
    if channel_type and channel_type != stored_type:
        return False
    if not channel_id or channel_id == stored_id:
        return True
    return is_fake_id(stored_id, stored_type) and channel_id in parties(stored_id)

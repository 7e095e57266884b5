"""Security limits of the WuKongIM codec (``shared/spec/wukongim-v2.md`` §1.1, §1.2).

Every length a peer controls is bounded by a named parameter with a safe default, in the
manner of ``websockets``' ``max_size``. A limit ``N`` means: a value of exactly ``N`` is
accepted, ``N + 1`` is refused. Refusal is :class:`~magpie.errors.FrameTooLarge` (reason code
``PAYLOAD_DECODE_ERROR``) when the peer sent it, and :class:`~magpie.errors.LocalProtocolError`
when *we* try to encode it.

Invalid limits raise :class:`~magpie.errors.LocalProtocolError` (not ``ValueError``) so that
everything :mod:`magpie.protocol` raises stays inside the one error tree of
:mod:`magpie.errors`; the message names the field and the bad value, which is what the config
layer needs to report it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from magpie.errors import LocalProtocolError

__all__ = ["DEFAULT_LIMITS", "MAX_VARINT", "Limits"]

#: Largest value the 4-byte remaining-length varint can carry (spec §1.2): 2**28 - 1.
MAX_VARINT = 268_435_455

#: A string is a uint16 length then bytes (spec §1.1), so no limit above this can be encoded.
_MAX_U16 = 65_535

#: Upper bound of each field (the lower bound is 1 for all of them).
_UPPER = {
    "max_remaining_length": MAX_VARINT,
    "max_string": _MAX_U16,
    "max_payload": MAX_VARINT,
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what the codec decodes from a peer and agrees to encode.

    ``max_remaining_length``
        Largest packet body (the "remaining length" of the fixed header, spec §1.2), in bytes.
        Default 1 MiB, the WuKongIM server's ``MaxRemaingLength``. It is checked as soon as the
        length bytes are read, before any of the body is buffered, so a peer cannot make the
        decoder hold more than this (plus a 5-byte header) per connection. Range 1..2**28-1.
    ``max_string``
        Largest uint16-prefixed string field (uid, token, channel id, msg key …), in UTF-8
        bytes. Default 32767: the Go encoder panics above it (spec §1.1), so a longer string
        could not have come from a conforming peer. Range 1..65535.
    ``max_payload``
        Largest SEND/RECV payload ("rest" field), in bytes. Default 1 MiB, i.e. the same as
        ``max_remaining_length``: with the defaults the body cap is what binds (payload plus
        the other fields ≤ 1 MiB) and this parameter only matters when lowered, e.g. to keep
        chat messages small without lowering the frame cap. A value above
        ``max_remaining_length`` is allowed but can never be reached. Range 1..2**28-1.
    """

    max_remaining_length: int = 1_048_576
    max_string: int = 32_767
    max_payload: int = 1_048_576

    def __post_init__(self) -> None:
        for field in fields(self):
            _check_bound(field.name, getattr(self, field.name), _UPPER[field.name])


def _check_bound(name: str, value: object, upper: int) -> None:
    """Refuse anything but an ``int`` (not ``bool``) in ``1..upper``."""
    if type(value) is not int or not 1 <= value <= upper:
        raise LocalProtocolError(f"Limits.{name} must be an int in 1..{upper}, got {value!r}")


#: The limits used when none are given: every default above.
DEFAULT_LIMITS = Limits()

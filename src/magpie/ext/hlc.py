"""A hybrid logical clock (Kulkarni et al., 2014) packed into one int64.

A value is ``(physical_ms << 16) | logical``: milliseconds since the Unix epoch in the high
bits, a counter in the low 16. Comparing two values as integers orders them as the HLC pair
``(physical, logical)``, so the store and the SDKs need nothing but ``<``. The physical part
fits 47 bits until the year 6429, so a value always fits a signed 64-bit column.

The clock is sans-I/O: it never reads the time itself but calls the ``clock_ms`` it was given,
so tests drive it with a fake clock. Rules (the paper's, on packed values):

* :meth:`Hlc.now` (a local event): ``max(physical_now << 16, last + 1)``;
* :meth:`Hlc.update` (a value seen from elsewhere): ``max(physical_now << 16, last + 1,
  remote + 1)`` — the result is after everything this clock has issued or seen.

When 65,536 events share one millisecond the counter carries into the physical part; order
is kept, the physical part merely runs a little ahead.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["LOGICAL_BITS", "Hlc", "logical", "pack", "physical_ms"]

#: Bits of the logical counter.
LOGICAL_BITS = 16
_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def pack(physical: int, counter: int = 0) -> int:
    """The HLC value of ``(physical ms, logical counter)``."""
    if physical < 0 or not 0 <= counter <= _LOGICAL_MASK:
        raise ValueError("physical must be >= 0 and the counter fit 16 bits")
    return (physical << LOGICAL_BITS) | counter


def physical_ms(value: int) -> int:
    """The physical part of an HLC value, in milliseconds since the Unix epoch."""
    return value >> LOGICAL_BITS


def logical(value: int) -> int:
    """The logical counter of an HLC value."""
    return value & _LOGICAL_MASK


class Hlc:
    """One node's hybrid logical clock; ``clock_ms`` returns wall time in milliseconds."""

    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self._clock_ms = clock_ms
        self._last = 0

    @property
    def last(self) -> int:
        """The last value issued (0 before the first)."""
        return self._last

    def now(self) -> int:
        """A value later than every value issued or seen before (a local event)."""
        self._last = max(self._clock_ms() << LOGICAL_BITS, self._last + 1)
        return self._last

    def update(self, remote: int) -> int:
        """Take ``remote`` into account (a value written by another clock); returns a value
        later than both it and everything issued before."""
        self._last = max(self._clock_ms() << LOGICAL_BITS, self._last + 1, remote + 1)
        return self._last

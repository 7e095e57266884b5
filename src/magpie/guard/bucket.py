"""Token buckets: the rate limits' arithmetic, pure (the clock is an argument).

A bucket holds up to ``burst`` tokens and gains ``rate`` tokens per second; an action costs
one token and is refused when less than one is left. So at most ``burst + rate * t`` actions
pass in any ``t`` seconds, and a client that stays under ``rate`` never notices the limit.
A :class:`Buckets` map keeps one bucket per key (an address, a uid, a token digest) and
forgets the oldest keys beyond a bound, so an attacker with many keys costs bounded memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Buckets", "Rate"]

K = TypeVar("K", bound=Hashable)

#: One token, less float rounding: a client exactly at the rate must not be refused because
#: ``n * (1 / rate) * rate`` came out as 0.9999999.
_ONE = 1.0 - 1e-9


@dataclass(frozen=True, slots=True)
class Rate:
    """A bucket's parameters: ``per_second`` tokens gained, ``burst`` tokens at most.
    ``per_second == 0`` means no limit."""

    per_second: float
    burst: int

    @property
    def enabled(self) -> bool:
        """Whether this rate limits anything."""
        return self.per_second > 0


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class Buckets(Generic[K]):
    """One token bucket per key, at most ``max_keys`` of them (the least recently created
    are dropped first, after the full ones — a full bucket is the same as a new one)."""

    def __init__(self, rate: Rate, clock: Callable[[], float], max_keys: int) -> None:
        self.rate = rate
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[K, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: K) -> bool:
        """Spend one token of ``key``'s bucket; False (nothing spent) when it has none."""
        if not self.rate.enabled:
            return True
        bucket = self._refilled(key)
        if bucket.tokens >= _ONE:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return True
        return False

    def spend(self, key: K) -> None:
        """Spend one token whether or not there is one (down to zero): for events that
        already happened, such as a failed login."""
        if self.rate.enabled:
            bucket = self._refilled(key)
            bucket.tokens = max(0.0, bucket.tokens - 1.0)

    def empty(self, key: K) -> bool:
        """Whether ``key`` has less than one token (the next :meth:`take` would fail)."""
        if not self.rate.enabled:
            return False
        bucket = self._buckets.get(key)
        return bucket is not None and self._level(bucket, self._clock()) < _ONE

    def retry_after(self, key: K) -> float:
        """Seconds until ``key`` has a whole token again (0 when it has one)."""
        bucket = self._buckets.get(key)
        if not self.rate.enabled or bucket is None:
            return 0.0
        missing = 1.0 - self._level(bucket, self._clock())
        return max(0.0, missing / self.rate.per_second)

    def _level(self, bucket: _Bucket, now: float) -> float:
        elapsed = max(0.0, now - bucket.stamp)
        return min(float(self.rate.burst), bucket.tokens + elapsed * self.rate.per_second)

    def _refilled(self, key: K) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._evict(now)
            bucket = self._buckets[key] = _Bucket(float(self.rate.burst), now)
            return bucket
        bucket.tokens = self._level(bucket, now)
        bucket.stamp = now
        return bucket

    def _evict(self, now: float) -> None:
        """Make room: drop the full buckets, then the oldest until a tenth of the room is
        free — in batches, so a stream of new keys costs O(1) per key on average."""
        buckets = self._buckets
        for key in [k for k, b in buckets.items() if self._level(b, now) >= self.rate.burst]:
            del buckets[key]
        keep = self._max_keys - max(1, self._max_keys // 10)
        if len(buckets) > keep:
            for key in list(itertools.islice(buckets, len(buckets) - keep)):
                del buckets[key]

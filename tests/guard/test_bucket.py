"""Token buckets (pure, on a fake clock): the rate and burst hold at N and N+1, over any
window, per key, with bounded memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from magpie.guard.bucket import Buckets, Rate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(per_second: float, burst: int, max_keys: int = 100) -> tuple[Buckets[str], Clock]:
    clock = Clock()
    return Buckets(Rate(per_second, burst), clock, max_keys), clock


def test_a_full_bucket_allows_exactly_burst_then_refuses() -> None:
    b, _ = make(1.0, 5)
    assert [b.take("k") for _ in range(6)] == [True] * 5 + [False]


def test_tokens_come_back_at_the_rate() -> None:
    b, clock = make(2.0, 3)
    for _ in range(3):
        assert b.take("k")
    assert not b.take("k")
    clock.now += 0.49
    assert not b.take("k"), "not yet one whole token"
    clock.now += 0.02
    assert b.take("k") and not b.take("k")
    clock.now += 100
    assert [b.take("k") for _ in range(4)] == [True, True, True, False], "capped at burst"


def test_keys_are_independent() -> None:
    b, _ = make(1.0, 1)
    assert b.take("a") and not b.take("a")
    assert b.take("b")


def test_rate_zero_is_no_limit() -> None:
    b, _ = make(0.0, 0)
    assert all(b.take("k") for _ in range(10_000))
    b.spend("k")
    assert not b.empty("k") and b.retry_after("k") == 0 and len(b) == 0


def test_spend_records_events_and_empty_tells_without_spending() -> None:
    b, clock = make(0.5, 3)
    assert not b.empty("ip")
    for _ in range(5):  # more failures than the burst: the level stops at zero
        b.spend("ip")
    assert b.empty("ip") and b.empty("ip")
    assert abs(b.retry_after("ip") - 2.0) < 1e-9
    clock.now += 2.0
    assert not b.empty("ip") and b.retry_after("ip") == 0
    assert b.take("ip") and b.empty("ip")


def test_retry_after_counts_the_missing_fraction() -> None:
    b, clock = make(4.0, 1)
    assert b.take("k")
    clock.now += 0.1
    assert abs(b.retry_after("k") - 0.15) < 1e-9


def test_a_clock_going_backwards_grants_nothing() -> None:
    b, clock = make(1.0, 1)
    assert b.take("k")
    clock.now -= 50
    assert not b.take("k")


def test_memory_is_bounded_and_full_buckets_go_first() -> None:
    b, clock = make(1.0, 2, max_keys=10)
    assert b.take("hot") and b.take("hot")  # empty, must be remembered
    for i in range(9):
        b.take(f"k{i}")
    clock.now += 1.5  # every key but "hot" is full again; "hot" is not
    for i in range(100):
        b.take(f"new{i}")
        assert len(b) <= 10
    assert "hot" not in [f"k{i}" for i in range(9)]
    b2, _ = make(1.0, 2, max_keys=10)
    for i in range(1000):  # no bucket ever full: the oldest are dropped in batches
        b2.take(f"x{i}")
        b2.take(f"x{i}")
        assert len(b2) <= 10


@settings(max_examples=200, deadline=None)
@given(
    per_second=st.floats(0.1, 50),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 0.5), min_size=1, max_size=300),
)
def test_never_more_than_burst_plus_rate_times_window(
    per_second: float, burst: int, gaps: list[float]
) -> None:
    b, clock = make(per_second, burst)
    start = clock.now
    allowed = 0
    for gap in gaps:
        clock.now += gap
        allowed += b.take("k")
        assert allowed <= burst + per_second * (clock.now - start) + 1e-6


@settings(max_examples=100, deadline=None)
@given(per_second=st.floats(0.5, 50), burst=st.integers(1, 20), n=st.integers(1, 200))
def test_a_client_under_the_rate_is_never_refused(per_second: float, burst: int, n: int) -> None:
    b, clock = make(per_second, burst)
    for _ in range(n):
        assert b.take("k")
        clock.now += 1.0 / per_second

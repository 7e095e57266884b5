"""The hybrid logical clock, driven by a fake wall clock."""

from __future__ import annotations

import pytest

from magpie.ext.hlc import Hlc, logical, pack, physical_ms


class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_pack_and_unpack() -> None:
    value = pack(1_700_000_000_123, 7)
    assert (physical_ms(value), logical(value)) == (1_700_000_000_123, 7)
    assert pack(5, 0) < pack(5, 1) < pack(6, 0)
    assert pack(2**47 - 1, 2**16 - 1) < 2**63, "fits a signed int64 column"
    for bad in ((-1, 0), (1, -1), (1, 2**16)):
        with pytest.raises(ValueError):
            pack(*bad)


def test_now_follows_the_wall_clock_and_never_repeats() -> None:
    clock = FakeClock(1000)
    hlc = Hlc(clock)
    assert hlc.last == 0
    first = hlc.now()
    assert first == pack(1000, 0)
    assert [hlc.now() for _ in range(3)] == [pack(1000, 1), pack(1000, 2), pack(1000, 3)]
    clock.ms = 1005
    assert hlc.now() == pack(1005, 0)
    clock.ms = 900  # the wall clock stepped back: the HLC does not
    assert hlc.now() == pack(1005, 1)
    assert hlc.last == pack(1005, 1)


def test_update_moves_past_a_remote_value() -> None:
    clock = FakeClock(1000)
    hlc = Hlc(clock)
    hlc.now()
    ahead = pack(5000, 3)  # a writer whose clock is 4 s ahead
    assert hlc.update(ahead) == pack(5000, 4)
    assert hlc.now() == pack(5000, 5), "later local events stay after what was seen"
    assert hlc.update(pack(10, 0)) == pack(5000, 6), "an old remote value changes nothing"
    clock.ms = 6000
    assert hlc.update(pack(10, 0)) == pack(6000, 0)


def test_the_counter_carries_into_the_physical_part() -> None:
    hlc = Hlc(FakeClock(1000))
    hlc.update(pack(1000, 2**16 - 1))
    assert hlc.last == pack(1001, 0)

"""Connection caps: total and per key, at N and N+1, and places given back."""

from __future__ import annotations

from magpie.guard.gate import Gate, GateCaps, Over


def test_total_cap_at_n_and_n_plus_one() -> None:
    gate = Gate(GateCaps(total=3, per_key=0))
    assert [gate.enter(f"k{i}") for i in range(3)] == [None] * 3
    assert gate.enter("k9") is Over.TOTAL and gate.open == 3
    gate.leave("k0")
    assert gate.enter("k9") is None


def test_per_key_cap_at_n_and_n_plus_one() -> None:
    gate = Gate(GateCaps(total=0, per_key=2))
    assert gate.enter("ip") is None and gate.enter("ip") is None
    assert gate.enter("ip") is Over.PER_KEY
    assert gate.enter("other") is None
    assert gate.count("ip") == 2 and gate.open == 3
    gate.leave("ip")
    assert gate.count("ip") == 1 and gate.enter("ip") is None


def test_keyless_connections_count_only_in_the_total_and_attach_later() -> None:
    gate = Gate(GateCaps(total=10, per_key=1))
    assert gate.enter(None) is None and gate.enter(None) is None
    assert gate.attach("client") is None
    assert gate.attach("client") is Over.PER_KEY
    assert gate.open == 2 and gate.count("client") == 1
    gate.leave("client")
    gate.leave(None)
    assert gate.open == 0 and gate.count("client") == 0


def test_zero_is_no_cap_and_counts_drop_to_nothing() -> None:
    gate = Gate(GateCaps(total=0, per_key=0))
    for _ in range(1000):
        assert gate.enter("k") is None
    for _ in range(1000):
        gate.leave("k")
    assert gate.open == 0 and gate.count("k") == 0

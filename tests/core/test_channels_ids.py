"""Channel-id rules and snowflake ids."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magpie.core.channels import validate_channel_type, validate_uid
from magpie.core.ids import SNOWFLAKE_EPOCH_MS, Snowflake
from magpie.domain.channels import fake_channel_id, peer_of
from magpie.errors import BadRequest

uids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs"), blacklist_characters="@"),
    min_size=1,
    max_size=20,
)


def test_fake_channel_id_puts_larger_crc_first() -> None:
    a, b = "alice", "bob"
    first = a if zlib.crc32(a.encode()) > zlib.crc32(b.encode()) else b
    assert fake_channel_id(a, b).startswith(first + "@")


@given(uids, uids)
def test_fake_channel_id_is_symmetric_and_peer_recovers(a: str, b: str) -> None:
    fid = fake_channel_id(a, b)
    assert fid == fake_channel_id(b, a)
    assert peer_of(fid, a) == b and peer_of(fid, b) == a


@pytest.mark.parametrize("bad", ["", "a b", "a@b", "x" * 129, 5, None, "tab\there"])
def test_bad_uids_are_refused(bad: object) -> None:
    with pytest.raises(BadRequest):
        validate_uid(bad)


@pytest.mark.parametrize("bad", [0, 13, True, "2", 2.0])
def test_bad_channel_types_are_refused(bad: object) -> None:
    with pytest.raises(BadRequest):
        validate_channel_type(bad)


def test_snowflake_is_strictly_increasing_even_when_the_clock_goes_back() -> None:
    times = iter([SNOWFLAKE_EPOCH_MS + 1000] * 5000 + [SNOWFLAKE_EPOCH_MS + 10] * 10)
    gen = Snowflake(3, clock_ms=lambda: next(times))
    ids = [gen.next_id() for _ in range(5010)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert (ids[0] >> 12) & 0x3FF == 3


def test_snowflake_node_range() -> None:
    with pytest.raises(ValueError):
        Snowflake(1024)

"""The local cache: messages by seq, holes, extensions applied only if newer (I6), the
epoch reset (I7), persistence across restarts, and the uid guard."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magpie.client.cache import Cache
from magpie.client.errors import CacheMismatch
from magpie.client.model import Channel, Conversation, Message
from magpie.domain.ext import ExtState, Fields

G = Channel.group("g1")
P = Channel.person("bob")


def msg(seq: int, channel: Channel = G, mid: int | None = None, **kw: object) -> Message:
    mid = mid if mid is not None else 1000 + seq
    payload = kw.pop("payload", b'{"type":1,"content":"m%d"}' % seq)
    return Message.of(channel, mid, seq, f"c{mid}", "alice", 1_700_000_000 + seq, payload, **kw)  # type: ignore[arg-type]


def row(mid: int, version: int, extra_version: int, status: str = "") -> ExtState:
    return ExtState(
        message_id=mid,
        version=version,
        extra_version=extra_version,
        channel_id="g1",
        channel_type=2,
        fields=Fields(status=status or f"s{version}", extra={"v": version}),
    )


@pytest.fixture
async def cache(tmp_path: Path):  # type: ignore[no-untyped-def]
    c = Cache(tmp_path / "c.db")
    await c.open("alice")
    yield c
    await c.close()


async def test_messages_are_stored_once_and_read_back_in_order(cache: Cache) -> None:
    stored = await cache.put_messages([msg(2), msg(1), msg(3)])
    assert [m.message_seq for m in stored.fresh] == [2, 1, 3]
    again = await cache.put_messages([msg(2), msg(3), msg(4)])
    assert [m.message_seq for m in again.fresh] == [4], "a duplicate RECV is stored once"
    history = await cache.history(G)
    assert [m.message_seq for m in history] == [1, 2, 3, 4]
    assert history[0].text == "m1" and history[0].from_uid == "alice"
    assert [m.message_seq for m in await cache.history(G, limit=2)] == [3, 4]
    assert [m.message_seq for m in await cache.history(G, limit=2, before_seq=3)] == [1, 2]
    assert await cache.max_seq(G) == 4 and await cache.max_seq(P) == 0


async def test_messages_without_seq_and_commands(cache: Cache) -> None:
    cmd = msg(5, payload=b'{"type":99,"cmd":"x"}')
    stored = await cache.put_messages([msg(0, mid=9), cmd])
    assert [m.message_id for m in stored.fresh] == [cmd.message_id], "seq 0 is never cached"
    assert await cache.history(G) == [], "commands are cached (no hole) but not history"
    assert await cache.holes(G, 1, 5) == [range(1, 5)]


async def test_holes(cache: Cache) -> None:
    assert await cache.holes(G, 1, 0) == []
    assert await cache.holes(G, 1, 10) == [range(1, 11)]
    await cache.put_messages([msg(s) for s in (3, 4, 7, 10)])
    assert await cache.holes(G, 1, 10) == [range(1, 3), range(5, 7), range(8, 10)]
    assert await cache.holes(G, 3, 12) == [range(5, 7), range(8, 10), range(11, 13)]
    assert await cache.holes(G, 4, 4) == []
    assert await cache.last_seq(G) == 10


async def test_conversations_keep_the_highest_seq(cache: Cache) -> None:
    await cache.put_conversations([Conversation(G, 5, unread=2, timestamp=10, version=3)], 3)
    await cache.put_messages([msg(7)])
    await cache.put_conversations([Conversation(G, 4, unread=1, timestamp=9, version=4)], 4)
    (conv,) = await cache.conversations()
    assert (conv.last_msg_seq, conv.unread, conv.version) == (7, 1, 4)
    assert cache.conversation_version == 4
    assert await cache.channels() == [G]


async def test_ext_apply_if_newer_and_cursor(cache: Cache) -> None:
    await cache.put_messages([msg(1)])
    changes = await cache.apply_ext(G, [row(1001, 2, 5), row(1001, 1, 3), row(1002, 1, 4)])
    assert [(c.message_id, c.new.version) for c in changes] == [(1001, 2), (1002, 1)]
    assert changes[0].old is None and changes[0].message is not None
    assert changes[1].message is None, "the message of 1002 is not cached"
    assert await cache.ext_cursor(G) == 5
    assert await cache.apply_ext(G, [row(1001, 2, 5)]) == [], "a duplicate changes nothing"
    (newer,) = await cache.apply_ext(G, [row(1001, 3, 6, "approved")])
    assert newer.old is not None and newer.old.version == 2 and newer.new.status == "approved"
    (m,) = await cache.history(G)
    assert m.ext is not None and m.ext.status == "approved" and m.ext.extra == {"v": 3}


async def test_message_extra_applies_without_moving_the_cursor(cache: Cache) -> None:
    stored = await cache.put_messages([msg(1, ext=row(1001, 4, 9))])
    assert [c.new.version for c in stored.changes] == [4]
    assert await cache.ext_cursor(G) == 0
    stale = await cache.put_messages([msg(1, ext=row(1001, 3, 8))])
    assert stale.changes == [] and (await cache.ext(1001)).version == 4  # type: ignore[union-attr]


async def test_reset_drops_everything_but_the_uid(cache: Cache) -> None:
    assert await cache.adopt_epoch("e1")
    await cache.put_messages([msg(1)])
    await cache.apply_ext(G, [row(1001, 1, 1)])
    await cache.put_conversations([Conversation(G, 1, version=2)], 2)
    await cache.reset("e2")
    assert cache.epoch == "e2" and cache.conversation_version == 0
    assert await cache.channels() == [] and await cache.ext(1001) is None


async def test_survives_a_restart(tmp_path: Path) -> None:
    first = Cache(tmp_path / "c.db")
    await first.open("alice")
    assert await first.adopt_epoch("e1")
    await first.put_messages([msg(1), msg(2)])
    await first.apply_ext(G, [row(1002, 2, 7, "done")])
    await first.put_conversations([Conversation(G, 2, version=5)], 5)
    await first.close()
    again = Cache(tmp_path / "c.db")
    await again.open("alice")
    try:
        assert again.epoch == "e1" and again.conversation_version == 5
        history = await again.history(G)
        assert [(m.message_seq, m.ext and m.ext.status) for m in history] == [
            (1, None),
            (2, "done"),
        ]
        assert await again.ext_cursor(G) == 7
    finally:
        await again.close()


async def test_refuses_another_users_file(tmp_path: Path) -> None:
    first = Cache(tmp_path / "c.db")
    await first.open("alice")
    await first.close()
    other = Cache(tmp_path / "c.db")
    with pytest.raises(CacheMismatch, match="alice"):
        await other.open("bob")


async def test_a_cache_of_another_schema_is_rebuilt(tmp_path: Path) -> None:
    import sqlite3

    first = Cache(tmp_path / "c.db")
    await first.open("alice")
    await first.put_messages([msg(1)])
    await first.close()
    with sqlite3.connect(tmp_path / "c.db") as conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
    again = Cache(tmp_path / "c.db")
    await again.open("alice")
    assert await again.history(G) == []
    await again.close()


# --- I6: any permutation of a stream of changes, with duplicates, gives the same cache -------

# Each message has a chain of versions 1..n; extra_version grows along the channel's history.
_chains = st.lists(st.integers(1, 5), min_size=1, max_size=4)


def _history(chain_lengths: list[int]) -> list[ExtState]:
    rows, extra_version = [], 0
    pending = {mid: 1 for mid in range(len(chain_lengths))}
    while pending:
        for mid in sorted(pending):
            extra_version += 1
            rows.append(row(2000 + mid, pending[mid], extra_version))
            pending[mid] += 1
            if pending[mid] > chain_lengths[mid]:
                del pending[mid]
    return rows


@settings(max_examples=60, deadline=None)
@given(
    lengths=_chains,
    data=st.data(),
)
def test_deliveries_in_any_order_with_duplicates_converge(
    lengths: list[int], data: st.DataObject
) -> None:
    history = _history(lengths)
    extra = data.draw(st.lists(st.sampled_from(history), max_size=len(history)))
    deliveries = data.draw(st.permutations(history + extra))
    cuts = sorted(data.draw(st.sets(st.integers(0, len(deliveries)), max_size=4)))
    batches = [deliveries[a:b] for a, b in zip([0, *cuts], [*cuts, len(deliveries)], strict=True)]

    async def run() -> None:
        cache = Cache(None)
        await cache.open("alice")
        try:
            seen: dict[int, int] = {}
            for batch in batches:
                for change in await cache.apply_ext(G, batch):
                    old = change.old.version if change.old else 0
                    assert change.new.version > old == seen.get(change.message_id, 0)
                    seen[change.message_id] = change.new.version
            for mid, length in enumerate(lengths):
                final = await cache.ext(2000 + mid)
                assert final is not None and final.version == length
                assert final.status == f"s{length}" and final.extra == {"v": length}
            assert await cache.ext_cursor(G) == len(history)
        finally:
            await cache.close()

    asyncio.run(run())

"""The store contract: every backend must pass this suite (STYLE habit 9).

Backends plug in through ``BACKENDS``: a factory that takes the pytest request and its
``tmp_path`` and returns a :class:`Backend`, which builds fresh, unopened stores on named
databases (the same name gives the same data) and can tamper with a database's schema version.
SQLite uses files under ``tmp_path``; PostgreSQL one fresh schema per test and name in the
session's database (``tests.support.postgres``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import pytest

from magpie.domain.ext import (
    Actor,
    Decision,
    ExtAttempt,
    ExtRecord,
    ExtState,
    Fields,
    Mutate,
    Result,
)
from magpie.errors import MigrationError, StoreError
from magpie.store.interface import (
    AppendResult,
    CardTypeRow,
    ChannelInfo,
    ConversationRow,
    NewMessage,
    Store,
    TokenRow,
)
from magpie.store.sqlite import SqliteStore
from tests.support.postgres import PostgresBackend

GROUP = 2
PERSON = 1
RED_DOT = 0x02


class Backend(Protocol):
    """What the suite needs from a backend under test."""

    def new_store(self, db: str = "main") -> Store:
        """A new, unopened store on database ``db`` (same name, same data)."""
        ...

    def applied_versions(self, db: str) -> list[int]:
        """The schema versions recorded in ``db``."""
        ...

    def record_version(self, db: str, version: int) -> None:
        """Pretend ``db`` was migrated to ``version`` by a newer Magpie."""
        ...


class SqliteBackend:
    """Stores on files under a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def new_store(self, db: str = "main") -> Store:
        return SqliteStore(self.root / f"{db}.sqlite3")

    def _sql(self, db: str) -> sqlite3.Connection:
        return sqlite3.connect(self.root / f"{db}.sqlite3", isolation_level=None)

    def applied_versions(self, db: str) -> list[int]:
        conn = self._sql(db)
        try:
            rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version")
            return [row[0] for row in rows]
        finally:
            conn.close()

    def record_version(self, db: str, version: int) -> None:
        conn = self._sql(db)
        try:
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)",
                (version, f"{version:04d}_future.sql"),
            )
        finally:
            conn.close()


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Backend]] = {
    "sqlite": lambda request, tmp_path: SqliteBackend(tmp_path),
    "postgres": lambda request, tmp_path: PostgresBackend(request.getfixturevalue("pg_database")),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](request, tmp_path)


@asynccontextmanager
async def opened(backend: Backend, db: str = "main") -> AsyncIterator[Store]:
    store = backend.new_store(db)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with opened(backend) as s:
        yield s


def msg(
    n: int,
    *,
    from_uid: str = "alice",
    channel_id: str = "g1",
    channel_type: int = GROUP,
    client_msg_no: str | None = None,
    flags: int = RED_DOT,
    payload: bytes | None = None,
    timestamp: int | None = None,
) -> NewMessage:
    """A message whose id, client_msg_no, timestamp and payload derive from ``n``."""
    return NewMessage(
        message_id=1_000_000 + n,
        client_msg_no=client_msg_no if client_msg_no is not None else f"c{n}",
        from_uid=from_uid,
        channel_id=channel_id,
        channel_type=channel_type,
        timestamp=timestamp if timestamp is not None else 1_700_000_000 + n,
        payload=payload if payload is not None else b'{"type":1,"content":"%d"}' % n,
        flags=flags,
    )


async def conversation(store: Store, uid: str, channel_id: str = "g1") -> ConversationRow | None:
    rows = [c for c in await store.list_conversations(uid) if c.channel_id == channel_id]
    return rows[0] if rows else None


# --- lifecycle, epoch, migrations ----------------------------------------------------------


async def test_epoch_is_stable_across_reopen(backend: Backend) -> None:
    async with opened(backend) as first:
        epoch = first.epoch
    async with opened(backend) as second:
        assert second.epoch == epoch
    assert len(epoch) >= 16


async def test_a_new_database_has_a_new_epoch(backend: Backend) -> None:
    async with opened(backend, "one") as one, opened(backend, "two") as two:
        assert one.epoch != two.epoch


async def test_reopen_applies_no_migration_twice_and_keeps_data(backend: Backend) -> None:
    async with opened(backend) as s:
        await s.append_message(msg(1), ["bob"])
    versions = backend.applied_versions("main")
    assert versions and versions == list(range(1, len(versions) + 1))
    for _ in range(2):
        async with opened(backend) as s:
            assert await s.max_seq("g1", GROUP) == 1
    assert backend.applied_versions("main") == versions


async def test_a_newer_schema_is_refused(backend: Backend) -> None:
    async with opened(backend):
        pass
    backend.record_version("main", 9999)
    refused = backend.new_store()
    with pytest.raises(MigrationError, match="9999"):
        await refused.open()
    with pytest.raises(StoreError):
        await refused.max_seq("g1", GROUP)
    await refused.close()


async def test_a_closed_store_refuses_calls_and_closes_twice(backend: Backend) -> None:
    s = backend.new_store()
    with pytest.raises(StoreError):
        _ = s.epoch
    await s.open()
    await s.close()
    await s.close()
    with pytest.raises(StoreError):
        await s.append_message(msg(1), [])
    with pytest.raises(StoreError):
        await s.get_message(1)


# --- tokens and channels -------------------------------------------------------------------


async def test_tokens_set_get_replace_and_clear(store: Store) -> None:
    web = TokenRow("alice", 1, b"\x00hash-web", 1)
    await store.set_token(web)
    await store.set_token(TokenRow("alice", 0, b"hash-app", 0))
    await store.set_token(TokenRow("bob", 1, b"hash-bob", 0))
    assert await store.get_token("alice", 1) == web
    replaced = TokenRow("alice", 1, b"hash-web-2", 0)
    await store.set_token(replaced)
    assert await store.get_token("alice", 1) == replaced
    assert await store.get_token("alice", 2) is None

    assert await store.clear_tokens("alice", 1) == 1
    assert await store.get_token("alice", 1) is None
    assert await store.get_token("alice", 0) is not None
    await store.set_token(web)
    assert await store.clear_tokens("alice", None) == 2
    assert await store.clear_tokens("alice", None) == 0
    assert await store.get_token("bob", 1) is not None


async def test_find_tokens_by_digest(store: Store) -> None:
    await store.set_token(TokenRow("bob", 1, b"shared", 0))
    await store.set_token(TokenRow("alice", 2, b"shared", 1))
    await store.set_token(TokenRow("alice", 0, b"own", 0))
    assert await store.find_tokens(b"shared") == [
        TokenRow("alice", 2, b"shared", 1),
        TokenRow("bob", 1, b"shared", 0),
    ]
    assert await store.find_tokens(b"own") == [TokenRow("alice", 0, b"own", 0)]
    assert await store.find_tokens(b"none") == []


async def test_list_users_pages_by_uid(store: Store) -> None:
    for uid, flag in [("carol", 0), ("alice", 1), ("alice", 2), ("bob", 0), ("ünï", 0)]:
        await store.set_token(TokenRow(uid, flag, uid.encode(), 0))
    assert await store.list_users("", 10) == ["alice", "bob", "carol", "ünï"]
    assert await store.list_users("", 2) == ["alice", "bob"]
    assert await store.list_users("bob", 2) == ["carol", "ünï"]
    assert await store.list_users("ünï", 2) == []
    await store.clear_tokens("bob", None)
    assert await store.list_users("", 10) == ["alice", "carol", "ünï"]


async def test_list_channels_pages_by_id_and_type(store: Store) -> None:
    for channel_id, kind in [("g2", GROUP), ("g1", GROUP), ("g1", PERSON), ("a", GROUP)]:
        await store.upsert_channel(ChannelInfo(channel_id, kind, ban=channel_id == "a"))
    listed = await store.list_channels("", 0, 10)
    assert [(c.channel_id, c.channel_type) for c in listed] == [
        ("a", GROUP), ("g1", PERSON), ("g1", GROUP), ("g2", GROUP)
    ]  # fmt: skip
    assert listed[0] == ChannelInfo("a", GROUP, False, True)
    page = await store.list_channels("g1", PERSON, 2)
    assert [(c.channel_id, c.channel_type) for c in page] == [("g1", GROUP), ("g2", GROUP)]
    assert await store.list_channels("g2", GROUP, 2) == []


async def test_channels_upsert_get_delete(store: Store) -> None:
    assert await store.get_channel("g1", GROUP) is None
    await store.upsert_channel(ChannelInfo("g1", GROUP))
    assert await store.get_channel("g1", GROUP) == ChannelInfo("g1", GROUP, False, False)
    await store.upsert_channel(ChannelInfo("g1", GROUP, large=True, ban=True))
    assert await store.get_channel("g1", GROUP) == ChannelInfo("g1", GROUP, True, True)
    assert await store.get_channel("g1", PERSON) is None  # the type is part of the key

    await store.add_subscribers("g1", GROUP, ["bob"])
    await store.append_message(msg(1), ["bob"])
    assert await store.delete_channel("g1", GROUP) is True
    assert await store.get_channel("g1", GROUP) is None
    assert await store.get_subscribers("g1", GROUP) == []
    assert await store.max_seq("g1", GROUP) == 1  # messages stay
    assert await store.delete_channel("g1", GROUP) is False


async def test_subscribers_add_reset_remove(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["carol", "alice", "bob", "alice"])
    assert await store.get_channel("g1", GROUP) == ChannelInfo("g1", GROUP)  # created
    assert await store.get_subscribers("g1", GROUP) == ["alice", "bob", "carol"]
    await store.add_subscribers("g1", GROUP, ["bob", "dave"])
    assert await store.get_subscribers("g1", GROUP) == ["alice", "bob", "carol", "dave"]
    assert await store.is_subscriber("g1", GROUP, "dave")
    assert not await store.is_subscriber("g1", GROUP, "erin")
    assert await store.count_subscribers("g1", GROUP, "") == 4
    assert await store.count_subscribers("g1", GROUP, "bob") == 3, "all but bob"
    assert await store.count_subscribers("g1", GROUP, "erin") == 4, "erin is not one"
    assert await store.count_subscribers("g2", GROUP, "") == 0
    assert not await store.is_subscriber("g2", GROUP, "dave")

    await store.add_subscribers("g1", GROUP, ["erin", "bob"], reset=True)
    assert await store.get_subscribers("g1", GROUP) == ["bob", "erin"]
    await store.remove_subscribers("g1", GROUP, ["bob", "nobody"])
    assert await store.get_subscribers("g1", GROUP) == ["erin"]
    await store.add_subscribers("g1", GROUP, [], reset=True)
    assert await store.get_subscribers("g1", GROUP) == []
    assert await store.get_subscribers("g1", PERSON) == []


async def test_upsert_keeps_subscribers(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["bob"])
    await store.upsert_channel(ChannelInfo("g1", GROUP, large=True))
    assert await store.get_subscribers("g1", GROUP) == ["bob"]


# --- messages ------------------------------------------------------------------------------


async def test_append_assigns_gap_free_seqs_per_channel(store: Store) -> None:
    seqs = [(await store.append_message(msg(n), ["bob"])).message.message_seq for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    other = await store.append_message(msg(10, channel_id="g2"), [])
    person = await store.append_message(msg(11, channel_type=PERSON), [])
    assert (other.message.message_seq, person.message.message_seq) == (1, 1)
    assert await store.max_seq("g1", GROUP) == 5
    assert await store.max_seq("g1", PERSON) == 1
    assert await store.max_seq("nope", GROUP) == 0


async def test_append_returns_and_stores_every_field(store: Store) -> None:
    new = NewMessage(
        message_id=42,
        client_msg_no="abc",
        from_uid="alice",
        channel_id="g1",
        channel_type=GROUP,
        timestamp=1_700_000_123,
        payload=b"\x00\xff binary \x00",
        flags=RED_DOT | 0x01,
        setting=0x30,
        topic="t/1",
        expire=3600,
    )
    result = await store.append_message(new, [])
    assert result.duplicate is False
    stored = result.message
    assert (stored.message_id, stored.message_seq, stored.payload) == (42, 1, new.payload)
    assert (stored.flags, stored.setting, stored.topic, stored.expire) == (3, 0x30, "t/1", 3600)
    assert await store.get_message(42) == stored
    assert await store.get_message(43) is None


async def test_duplicate_returns_the_original_and_changes_nothing(store: Store) -> None:
    first = await store.append_message(msg(1), ["alice", "bob"])
    before = await store.list_conversations("bob")
    again = msg(2, client_msg_no="c1", payload=b"other", timestamp=1)
    dup = await store.append_message(again, ["alice", "bob", "carol"])
    assert dup == AppendResult(first.message, duplicate=True)
    assert await store.get_message(again.message_id) is None
    assert await store.list_conversations("bob") == before
    assert await store.list_conversations("carol") == []
    assert await store.max_seq("g1", GROUP) == 1
    nxt = await store.append_message(msg(3), [])
    assert nxt.message.message_seq == 2  # no seq consumed by the duplicate


async def test_duplicates_are_found_across_channels(store: Store) -> None:
    first = await store.append_message(msg(1), [])
    dup = await store.append_message(msg(2, client_msg_no="c1", channel_id="g9"), [])
    assert dup == AppendResult(first.message, duplicate=True)
    assert await store.max_seq("g9", GROUP) == 0
    other_sender = await store.append_message(msg(3, client_msg_no="c1", from_uid="bob"), [])
    assert other_sender.duplicate is False  # the key is (from_uid, client_msg_no)


async def test_a_failed_append_commits_nothing(store: Store) -> None:
    await store.append_message(msg(1), ["bob"])
    before = await store.list_conversations("bob")
    clash = msg(1, client_msg_no="fresh")  # same message_id, new client_msg_no
    with pytest.raises(StoreError) as info:
        await store.append_message(clash, ["bob", "carol"])
    assert "INSERT" not in str(info.value) and "fresh" not in str(info.value)
    assert await store.max_seq("g1", GROUP) == 1
    assert await store.list_conversations("bob") == before
    assert await store.list_conversations("carol") == []
    assert (await store.append_message(msg(2), [])).message.message_seq == 2


async def test_an_empty_client_msg_no_is_refused(store: Store) -> None:
    await store.append_message(msg(1, client_msg_no="x"), [])
    with pytest.raises(StoreError):
        await store.append_message(msg(2, client_msg_no=""), ["bob"])
    with pytest.raises(StoreError):
        await store.append_to_queues(msg(3, client_msg_no=""), ["bob"])
    assert await store.max_seq("g1", GROUP) == 1
    assert await store.get_message(1_000_002) is None


async def test_concurrent_appends_get_exactly_one_seq_each(store: Store) -> None:
    async def sender(task: int) -> list[int]:
        results = []
        for i in range(20):
            n = task * 100 + i
            result = await store.append_message(msg(n, from_uid=f"u{task}"), ["bob"])
            results.append(result.message.message_seq)
        return results

    per_task = await asyncio.gather(*(sender(t) for t in range(50)))
    seqs = [seq for seqs in per_task for seq in seqs]
    assert sorted(seqs) == list(range(1, 1001))
    assert all(s == sorted(s) for s in per_task)  # each sender's messages in its own order
    assert await store.max_seq("g1", GROUP) == 1000
    stored = await store.get_messages("g1", GROUP, start_seq=1, end_seq=0, limit=2000, pull_mode=1)
    assert [m.message_seq for m in stored] == list(range(1, 1001))
    bob = await conversation(store, "bob")
    assert bob is not None and (bob.unread, bob.last_msg_seq) == (1000, 1000)


async def test_concurrent_duplicates_store_one_message(store: Store) -> None:
    results = await asyncio.gather(
        *(store.append_message(msg(n, client_msg_no="same"), ["bob"]) for n in range(20))
    )
    assert sum(not r.duplicate for r in results) == 1
    assert len({(r.message.message_id, r.message.message_seq) for r in results}) == 1
    assert await store.max_seq("g1", GROUP) == 1
    bob = await conversation(store, "bob")
    assert bob is not None and bob.unread == 1


# get_messages on a channel with seqs 1..10: (start, end, limit, pull_mode) -> seqs
GET_MESSAGES_CASES = {
    "newest (down)": (0, 0, 3, 0, [8, 9, 10]),
    "newest (up)": (0, 0, 3, 1, [8, 9, 10]),
    "newest, limit above count": (0, 0, 50, 0, list(range(1, 11))),
    "down from 5 inclusive": (5, 0, 3, 0, [3, 4, 5]),
    "down to end exclusive": (5, 2, 10, 0, [3, 4, 5]),
    "down, one message": (5, 4, 10, 0, [5]),
    "down, empty range": (5, 5, 10, 0, []),
    "down, inverted range": (5, 7, 10, 0, []),
    "down from newest to end": (0, 7, 10, 0, [8, 9, 10]),
    "down from beyond the newest": (100, 0, 2, 0, [9, 10]),
    "down, pull_mode 2 acts as 0": (5, 0, 2, 2, [4, 5]),
    "up from 5 inclusive": (5, 0, 3, 1, [5, 6, 7]),
    "up to end exclusive": (5, 7, 10, 1, [5, 6]),
    "up from the start": (0, 4, 10, 1, [1, 2, 3]),
    "up from 1, oldest first": (1, 0, 2, 1, [1, 2]),
    "up past the newest": (11, 0, 10, 1, []),
    "up, empty range": (5, 5, 10, 1, []),
    "up, inverted range": (7, 5, 10, 1, []),
    "limit 0": (0, 0, 0, 0, []),
}


@pytest.mark.parametrize("case", GET_MESSAGES_CASES.values(), ids=GET_MESSAGES_CASES.keys())
async def test_get_messages(store: Store, case: tuple[int, int, int, int, list[int]]) -> None:
    start, end, limit, mode, expected = case
    for n in range(1, 11):
        await store.append_message(msg(n), [])
    await store.append_message(msg(50, channel_id="g2"), [])
    await store.append_to_queues(msg(60), ["bob"])  # seq 0 in the same channel: not in the log
    got = await store.get_messages(
        "g1", GROUP, start_seq=start, end_seq=end, limit=limit, pull_mode=mode
    )
    assert [m.message_seq for m in got] == expected
    assert all((m.channel_id, m.message_id) == ("g1", 1_000_000 + m.message_seq) for m in got)


# get_messages with a payload budget on seqs 1..10 whose payloads are n*100 bytes:
# (start, end, limit, pull_mode, max_bytes) -> seqs (rows are taken in the pull direction
# while the payloads before them sum to less than max_bytes)
BUDGET_CASES = {
    "down: 1000 + 900 reach 1500": (0, 0, 10, 0, 1500, [9, 10]),
    "down: exactly at the budget stops": (0, 0, 10, 0, 1900, [9, 10]),
    "down: one byte more takes one more": (0, 0, 10, 0, 1901, [8, 9, 10]),
    "down: a budget below the first row still gives it": (0, 0, 10, 0, 1, [10]),
    "down from 5": (5, 0, 10, 0, 800, [4, 5]),
    "up from 1: 100+200+300+400 < 1001": (1, 0, 10, 1, 1001, [1, 2, 3, 4, 5]),
    "up, limit first": (1, 0, 2, 1, 10_000, [1, 2]),
    "no budget": (0, 0, 3, 0, 0, [8, 9, 10]),
}


@pytest.mark.parametrize("case", BUDGET_CASES.values(), ids=BUDGET_CASES.keys())
async def test_get_messages_within_a_byte_budget(
    store: Store, case: tuple[int, int, int, int, int, list[int]]
) -> None:
    start, end, limit, mode, budget, expected = case
    for n in range(1, 11):
        await store.append_message(msg(n, payload=b"x" * (n * 100)), [])
    got = await store.get_messages(
        "g1", GROUP, start_seq=start, end_seq=end, limit=limit, pull_mode=mode, max_bytes=budget
    )
    assert [m.message_seq for m in got] == expected
    assert all(len(m.payload) == m.message_seq * 100 for m in got)


async def test_read_queue_within_a_byte_budget(store: Store) -> None:
    for n in range(1, 6):
        await store.append_to_queues(msg(n, payload=b"q" * (n * 100)), ["bob"])
    entries = await store.read_queue("bob", 0, 10, max_bytes=301)  # 100 + 200 < 301
    assert [e.queue_seq for e in entries] == [1, 2, 3]
    assert [len(e.message.payload) for e in entries] == [100, 200, 300]
    assert [e.queue_seq for e in await store.read_queue("bob", 1, 10, max_bytes=1)] == [2]
    assert len(await store.read_queue("bob", 0, 10)) == 5


async def test_sync_ext_within_a_byte_budget(store: Store) -> None:
    """Rows of ~1,000 bytes of ``extra``: a budget of 2,500 takes three (the first two sum
    to ~2,000, below it), in reading order from either end."""
    ids = []
    for n in range(1, 6):
        ids.append((await store.append_message(msg(n), [])).message.message_id)
    for mid in ids:
        await store.update_ext(attempt(mid, f"a{mid}"), set_status("s", 100, {"k": "v" * 990}))
    after = await store.sync_ext("g1", GROUP, 1, 10, max_bytes=2500)
    assert [r.extra_version for r in after] == [2, 3, 4]
    newest = await store.sync_ext("g1", GROUP, 0, 10, max_bytes=2500)
    assert [r.extra_version for r in newest] == [3, 4, 5]
    assert [r.extra_version for r in await store.sync_ext("g1", GROUP, 0, 10, max_bytes=1)] == [5]
    assert len(await store.sync_ext("g1", GROUP, 0, 10)) == 5


async def test_get_messages_of_an_empty_channel(store: Store) -> None:
    for mode in (0, 1):
        got = await store.get_messages("g1", GROUP, start_seq=0, end_seq=0, limit=5, pull_mode=mode)
        assert got == []


# --- conversations -------------------------------------------------------------------------


async def test_append_updates_each_recipients_conversation(store: Store) -> None:
    await store.append_message(msg(1), ["alice", "bob", "carol", "bob"])
    alice, bob = await conversation(store, "alice"), await conversation(store, "bob")
    assert alice is not None and bob is not None
    assert (alice.unread, bob.unread) == (0, 1)  # the sender gets no red dot; bob counted once
    assert (bob.last_msg_seq, bob.last_client_msg_no, bob.timestamp) == (1, "c1", 1_700_000_001)
    assert (bob.uid, bob.channel_id, bob.channel_type, bob.readed_to_msg_seq) == (
        "bob",
        "g1",
        GROUP,
        0,
    )
    await store.append_message(msg(2, from_uid="carol"), ["alice", "bob", "carol"])
    alice2, bob2 = await conversation(store, "alice"), await conversation(store, "bob")
    assert alice2 is not None and bob2 is not None
    assert (alice2.unread, bob2.unread, bob2.last_msg_seq) == (1, 2, 2)
    assert bob2.version > bob.version and alice2.version > alice.version
    assert await store.list_conversations("dave") == []


async def test_no_red_dot_updates_the_last_message_but_not_unread(store: Store) -> None:
    await store.append_message(msg(1), ["bob"])
    before = await conversation(store, "bob")
    await store.append_message(msg(2, flags=0), ["bob"])
    after = await conversation(store, "bob")
    assert before is not None and after is not None
    assert (after.unread, after.last_msg_seq, after.last_client_msg_no) == (1, 2, "c2")
    assert after.version > before.version


async def test_conversations_are_listed_newest_first(store: Store) -> None:
    await store.append_message(msg(1, channel_id="old", timestamp=100), ["bob"])
    await store.append_message(msg(2, channel_id="new", timestamp=300), ["bob"])
    await store.append_message(msg(3, channel_id="mid", timestamp=200), ["bob"])
    assert [c.channel_id for c in await store.list_conversations("bob")] == ["new", "mid", "old"]


# --- offline command queue -----------------------------------------------------------------


async def test_queue_append_and_read(store: Store) -> None:
    result, seqs = await store.append_to_queues(msg(1), ["bob", "carol", "bob"])
    assert (result.duplicate, result.message.message_seq, seqs) == (
        False,
        0,
        {"bob": 1, "carol": 1},
    )
    _, seqs2 = await store.append_to_queues(msg(2), ["bob"])
    assert seqs2 == {"bob": 2}
    assert await store.max_seq("g1", GROUP) == 0  # not in the channel log
    assert await store.list_conversations("bob") == []
    assert await store.get_message(result.message.message_id) == result.message

    entries = await store.read_queue("bob", 0, 10)
    assert [(e.uid, e.queue_seq, e.message.message_id) for e in entries] == [
        ("bob", 1, 1_000_001),
        ("bob", 2, 1_000_002),
    ]
    assert entries[0].message == result.message
    assert [e.queue_seq for e in await store.read_queue("bob", 0, 1)] == [1]
    assert [e.queue_seq for e in await store.read_queue("bob", 1, 10)] == [2]
    assert await store.read_queue("bob", 2, 10) == []
    assert await store.read_queue("bob", 0, 0) == []
    assert await store.read_queue("nobody", 0, 10) == []
    carol = await store.read_queue("carol", 0, 10)
    assert [(e.queue_seq, e.message.message_id) for e in carol] == [(1, 1_000_001)]


async def test_queue_duplicate_queues_nothing(store: Store) -> None:
    first, _ = await store.append_to_queues(msg(1), ["bob"])
    dup, seqs = await store.append_to_queues(msg(2, client_msg_no="c1"), ["bob", "carol"])
    assert (dup, seqs) == (AppendResult(first.message, duplicate=True), {})
    assert [e.queue_seq for e in await store.read_queue("bob", 0, 10)] == [1]
    assert await store.read_queue("carol", 0, 10) == []
    # and a channel message with a queued command's key is a duplicate too
    assert (await store.append_message(msg(3, client_msg_no="c1"), [])).duplicate


async def test_queue_ack_moves_forward_only(store: Store) -> None:
    for n in range(1, 4):
        await store.append_to_queues(msg(n), ["bob"])
    assert await store.queue_cursor("bob") == 0
    assert await store.ack_queue("bob", 2) == 2
    assert await store.queue_cursor("bob") == 2
    assert await store.ack_queue("bob", 1) == 2  # never backwards
    assert await store.queue_cursor("bob") == 2
    left = await store.read_queue("bob", 0, 10)  # acknowledged entries are discarded
    assert [(e.queue_seq, e.message.message_id) for e in left] == [(3, 1_000_003)]

    assert await store.ack_queue("bob", 99) == 3  # not past the last queued seq
    _, seqs = await store.append_to_queues(msg(4), ["bob"])
    assert seqs == {"bob": 4}
    assert [e.queue_seq for e in await store.read_queue("bob", 0, 10)] == [4]
    assert await store.ack_queue("nobody", 5) == 0
    assert await store.queue_cursor("nobody") == 0


# --- durability ----------------------------------------------------------------------------


async def test_an_appended_message_is_visible_to_a_fresh_store(backend: Backend) -> None:
    writer = backend.new_store()
    await writer.open()
    result = await writer.append_message(msg(1), ["bob"])
    _, seqs = await writer.append_to_queues(msg(2), ["bob"])
    # no close, no further writes: the commit must already be visible
    async with opened(backend) as fresh:
        assert fresh.epoch == writer.epoch
        assert await fresh.get_message(result.message.message_id) == result.message
        assert await fresh.max_seq("g1", GROUP) == 1
        assert [e.queue_seq for e in await fresh.read_queue("bob", 0, 10)] == [seqs["bob"]]
        bob = await conversation(fresh, "bob")
        assert bob is not None and bob.unread == 1
    await writer.close()


# --- message extensions (I6) ---------------------------------------------------------------


def attempt(message_id: int, action_id: str, **patch: object) -> ExtAttempt:
    actor = Actor("carol", "web")
    return ExtAttempt(message_id, action_id, actor, "test", patch, 1_700_000_000_000)


def set_status(status: str, at: int = 100, extra: dict[str, object] | None = None) -> Mutate:
    """Apply: set ``status`` (and ``extra``) on whatever is there."""

    def decide(state: ExtState) -> Decision:
        base = state.fields
        fields = replace(base, status=status, extra=base.extra if extra is None else extra)
        return Decision.applied(fields, updated_at=at)

    return decide


def reject(result: str) -> Mutate:
    def decide(state: ExtState) -> Decision:
        return Decision.rejected(Result(result), "no", base_version=7)

    return decide


async def test_update_ext_applies_and_logs(store: Store) -> None:
    await store.append_message(msg(1), [])
    extra = {"votes": {"yes": 2}, "note": "ünïcode ✓", "list": [1, 2.5, None, True]}
    out = await store.update_ext(attempt(1_000_001, "a1", s="open"), set_status("open", 5, extra))
    assert out is not None and not out.duplicate
    row = out.state
    assert (row.message_id, row.channel_id, row.channel_type, row.message_seq) == (
        1_000_001,
        "g1",
        GROUP,
        1,
    )
    assert (row.version, row.extra_version, row.updated_at) == (1, 1, 5)
    assert row.updated_by == Actor("carol", "web")
    assert row.fields.status == "open" and dict(row.fields.extra) == extra
    assert row.fields.content_edit is None and row.fields.revoke is False
    op = out.op
    assert (op.message_id, op.action_id, op.actor.uid, op.actor.device, op.operation) == (
        1_000_001,
        "a1",
        "carol",
        "web",
        "test",
    )
    assert (op.result, op.status_before, op.status_after, op.version_after) == (
        Result.APPLIED,
        "",
        "open",
        1,
    )
    assert dict(op.patch) == {"s": "open"} and op.created_at == 1_700_000_000_000
    assert out.last_applied == op and op.detail == ""
    assert await store.get_ext(1_000_001) == row
    second = await store.update_ext(attempt(1_000_001, "a2"), set_status("done", 9))
    assert second is not None
    assert (second.state.version, second.state.extra_version) == (2, 2)
    assert dict(second.state.fields.extra) == extra, "fields the decision kept stay"
    assert (second.op.status_before, second.op.status_after) == ("open", "done")
    assert second.op.op_id > op.op_id


async def test_extra_version_is_per_channel_and_strictly_increasing(store: Store) -> None:
    await store.append_message(msg(1), [])
    await store.append_message(msg(2), [])
    await store.append_message(msg(3, channel_id="g2"), [])
    seen = []
    for n, mid in enumerate([1_000_001, 1_000_002, 1_000_001, 1_000_003, 1_000_002]):
        out = await store.update_ext(attempt(mid, f"x{n}"), set_status(f"s{n}"))
        assert out is not None
        seen.append((out.state.channel_id, out.state.extra_version))
    assert seen == [("g1", 1), ("g1", 2), ("g1", 3), ("g2", 1), ("g1", 4)]
    row = await store.get_ext(1_000_001)
    assert row is not None and (row.version, row.extra_version) == (2, 3)


@pytest.mark.parametrize("result", ["conflict", "forbidden", "invalid", "stale"])
async def test_a_rejection_is_logged_and_changes_nothing(store: Store, result: str) -> None:
    await store.append_message(msg(1), [])
    first = await store.update_ext(attempt(1_000_001, "a1"), set_status("open"))
    assert first is not None
    out = await store.update_ext(attempt(1_000_001, "a2"), reject(result))
    assert out is not None and out.state == first.state and not out.duplicate
    assert (out.op.result.value, out.op.base_version, out.op.detail) == (result, 7, f"{result}: no")
    assert (out.op.status_before, out.op.status_after, out.op.version_after) == ("open", "open", 1)
    assert out.last_applied == first.op
    assert await store.get_ext(1_000_001) == first.state
    nxt = await store.update_ext(attempt(1_000_001, "a3"), set_status("x"))
    assert nxt is not None
    assert (nxt.state.version, nxt.state.extra_version) == (2, 2), "no number consumed"
    ops = await store.list_ops(1_000_001, 0, 10)
    assert [o.result.value for o in ops] == ["applied", result, "applied"]


async def test_a_rejection_of_a_never_changed_message(store: Store) -> None:
    await store.append_message(msg(1), [])
    out = await store.update_ext(attempt(1_000_001, "a1"), reject("conflict"))
    never_changed = ExtState(1_000_001, "g1", GROUP, 1)
    assert out is not None and out.state == never_changed and out.last_applied is None
    assert out.op.version_after == 0 and out.op.result is Result.CONFLICT
    assert await store.get_ext(1_000_001) is None
    assert await store.sync_ext("g1", GROUP, 0, 10) == []


async def test_a_repeated_action_id_returns_the_original(store: Store) -> None:
    await store.append_message(msg(1), [])
    first = await store.update_ext(attempt(1_000_001, "same"), set_status("one"))
    calls: list[int] = []

    def must_not_run(state: ExtState) -> Decision:
        calls.append(1)
        raise AssertionError("decide ran for a duplicate")

    again = await store.update_ext(attempt(1_000_001, "same", other=1), must_not_run)
    assert first is not None and again is not None and calls == []
    assert again.duplicate and again.op == first.op and again.state == first.state
    rejected = await store.update_ext(attempt(1_000_001, "r"), reject("stale"))
    assert rejected is not None
    replay = await store.update_ext(attempt(1_000_001, "r"), set_status("would apply"))
    assert replay is not None and replay.duplicate and replay.op == rejected.op
    assert replay.state == first.state and replay.last_applied == first.op
    assert len(await store.list_ops(1_000_001, 0, 10)) == 2
    await store.append_message(msg(2), [])
    other = await store.update_ext(attempt(1_000_002, "same"), set_status("two"))
    assert other is not None and not other.duplicate, "action ids are per message"


async def test_update_ext_needs_a_channel_log_message(store: Store) -> None:
    assert await store.update_ext(attempt(1_000_001, "a"), set_status("x")) is None
    await store.append_to_queues(msg(2), ["bob"])  # a sync-once command: seq 0
    assert await store.update_ext(attempt(1_000_002, "a"), set_status("x")) is None
    assert await store.list_ops(1_000_002, 0, 10) == []


async def test_a_failing_decision_commits_nothing(store: Store) -> None:
    await store.append_message(msg(1), [])

    def boom(state: ExtState) -> Decision:
        raise ValueError("decision failed")

    def nonsense(state: ExtState) -> Decision:
        return Decision("nonsense")  # type: ignore[arg-type]

    def unstamped(state: ExtState) -> Decision:
        return Decision.applied(Fields("no updated_at"))

    with pytest.raises(ValueError, match="decision failed"):
        await store.update_ext(attempt(1_000_001, "a1"), boom)
    with pytest.raises(StoreError):
        await store.update_ext(attempt(1_000_001, "a2"), nonsense)
    with pytest.raises(StoreError):
        await store.update_ext(attempt(1_000_001, "a3"), unstamped)
    assert await store.get_ext(1_000_001) is None
    assert await store.list_ops(1_000_001, 0, 10) == []
    ok = await store.update_ext(attempt(1_000_001, "a1"), set_status("fine"))
    assert ok is not None and ok.state.extra_version == 1


async def test_fields_round_trip(store: Store) -> None:
    await store.append_message(msg(1), [])
    edit = {"type": 1, "content": "fixed 🐦", "nested": {"a": [1, {"b": None}]}}
    fields = Fields("s", {"k": 1.5}, True, "bob", edit, 1_700_000_123, 42)

    def decide(state: ExtState) -> Decision:
        return Decision.applied(fields, updated_at=2**62, base_version=0)

    out = await store.update_ext(attempt(1_000_001, "a"), decide)
    stored = await store.get_ext(1_000_001)
    assert out is not None and stored is not None and stored == out.state
    assert stored.fields == fields and stored.updated_at == 2**62


async def test_sync_ext_reads_rows_after_the_cursor(store: Store) -> None:
    for n in range(1, 8):
        await store.append_message(msg(n), [])
    await store.append_message(msg(20, channel_id="g2"), [])
    order = [1, 2, 3, 1, 4, 5, 2]  # extra_versions 1..7; message 1 ends at 4, 2 at 7
    for i, n in enumerate(order):
        await store.update_ext(attempt(1_000_000 + n, f"a{i}"), set_status(f"s{i}"))
    await store.update_ext(attempt(1_000_020, "g2"), set_status("other channel"))

    async def sync(after: int, limit: int) -> list[tuple[int, int]]:
        rows = await store.sync_ext("g1", GROUP, after, limit)
        return [(r.message_id - 1_000_000, r.extra_version) for r in rows]

    assert await sync(0, 100) == [(3, 3), (1, 4), (4, 5), (5, 6), (2, 7)]
    assert await sync(0, 2) == [(5, 6), (2, 7)], "cursor 0: the newest, ascending"
    assert await sync(3, 2) == [(1, 4), (4, 5)], "after the cursor: the oldest first"
    assert await sync(6, 10) == [(2, 7)]
    assert await sync(7, 10) == []
    assert await sync(1, 0) == []
    assert await store.sync_ext("g1", PERSON, 0, 10) == []
    assert [r.extra_version for r in await store.sync_ext("g2", GROUP, 0, 10)] == [1]


async def test_get_exts_and_list_ops(store: Store) -> None:
    for n in range(1, 4):
        await store.append_message(msg(n), [])
    for i in range(5):
        await store.update_ext(attempt(1_000_001, f"a{i}"), set_status(f"s{i}"))
    await store.update_ext(attempt(1_000_003, "b"), set_status("three"))
    got = await store.get_exts([1_000_003, 1_000_002, 1_000_001, 1_000_001, 42])
    assert sorted(got) == [1_000_001, 1_000_003]
    assert got[1_000_001].version == 5 and got[1_000_003].fields.status == "three"
    assert await store.get_exts([]) == {}
    many = await store.get_exts(list(range(1_000_000, 1_002_000)))
    assert sorted(many) == [1_000_001, 1_000_003]
    ops = await store.list_ops(1_000_001, 0, 3)
    assert [o.action_id for o in ops] == ["a0", "a1", "a2"]
    rest = await store.list_ops(1_000_001, ops[-1].op_id, 10)
    assert [o.action_id for o in rest] == ["a3", "a4"]
    assert await store.list_ops(1_000_001, 0, 0) == []
    assert await store.list_ops(1_000_002, 0, 10) == []


async def test_concurrent_cas_has_one_winner_per_version(store: Store) -> None:
    await store.append_message(msg(1), [])

    def cas(expected: int, tag: str) -> Mutate:
        def decide(state: ExtState) -> Decision:
            current = state.version
            if current != expected:
                return Decision.rejected(Result.CONFLICT, "lost", base_version=expected)
            return Decision.applied(Fields(tag), updated_at=current + 1, base_version=expected)

        return decide

    async def racer(task: int) -> list[int]:
        won = []
        for rnd in range(5):
            row = await store.get_ext(1_000_001)
            version = row.version if row is not None else 0
            out = await store.update_ext(attempt(1_000_001, f"{task}-{rnd}"), cas(version, "t"))
            assert out is not None
            if out.op.result is Result.APPLIED:
                won.append(out.op.version_after)
        return won

    wins = [v for won in await asyncio.gather(*(racer(t) for t in range(20))) for v in won]
    row = await store.get_ext(1_000_001)
    assert row is not None and sorted(wins) == list(range(1, row.version + 1))
    ops = await store.list_ops(1_000_001, 0, 1000)
    assert len(ops) == 100
    assert sorted(o.version_after for o in ops if o.result is Result.APPLIED) == sorted(wins)


async def test_an_extension_is_visible_to_a_fresh_store(backend: Backend) -> None:
    writer = backend.new_store()
    await writer.open()
    await writer.append_message(msg(1), [])
    out = await writer.update_ext(attempt(1_000_001, "a"), set_status("durable"))
    async with opened(backend) as fresh:
        assert out is not None and await fresh.get_ext(1_000_001) == out.state
        assert [o.op_id for o in await fresh.list_ops(1_000_001, 0, 5)] == [out.op.op_id]
    await writer.close()


# --- records and card types ----------------------------------------------------------------


def tally(key: str, choice: int) -> Mutate:
    """A ballot: replace ``key``'s record, keep a counter per choice in ``extra``."""

    def decide(state: ExtState) -> Decision:
        counts = dict(state.fields.extra.get("counts", {}))
        before = state.records.get(key)
        if before is not None:
            counts[str(before.value["c"])] -= 1
        counts[str(choice)] = counts.get(str(choice), 0) + 1
        fields = replace(state.fields, extra={"counts": counts})
        return Decision.applied(
            fields, updated_at=state.updated_at + 1, records={key: {"c": choice}}
        )

    return decide


async def test_a_decision_reads_and_writes_records(store: Store) -> None:
    await store.append_message(msg(1), [])
    for n, (key, choice) in enumerate([("b:ann", 1), ("b:bob", 2), ("b:ann", 2)]):
        out = await store.update_ext(
            replace(attempt(1_000_001, f"v{n}"), reads=(key, "b:nobody")), tally(key, choice)
        )
        assert out is not None and out.applied
    row = await store.get_ext(1_000_001)
    assert row is not None and row.fields.extra == {"counts": {"1": 0, "2": 2}}
    assert row.records == {}, "records never ride on a stored row"
    got = await store.get_records(1_000_001, ["b:ann", "b:bob", "b:zed", "b:ann"])
    assert set(got) == {"b:ann", "b:bob"}
    assert got["b:ann"] == ExtRecord(1_000_001, "b:ann", {"c": 2}, 3)
    assert got["b:bob"].version == 2 and dict(got["b:bob"].value) == {"c": 2}


async def test_records_are_written_only_when_applied(store: Store) -> None:
    await store.append_message(msg(1), [])

    def rejected_with_records(state: ExtState) -> Decision:
        return Decision(Result.CONFLICT, None, None, None, "x", "no", {"k": {"a": 1}})

    out = await store.update_ext(attempt(1_000_001, "r"), rejected_with_records)
    assert out is not None and not out.applied
    assert await store.get_records(1_000_001, ["k"]) == {}
    put = Decision.applied(Fields("s"), updated_at=1, records={"k": {"a": 1}, "j": {"b": 2}})
    await store.update_ext(attempt(1_000_001, "p"), lambda s: put)
    gone = Decision.applied(Fields("s"), updated_at=2, records={"k": None})
    await store.update_ext(replace(attempt(1_000_001, "d"), reads=("k",)), lambda s: gone)
    assert set(await store.get_records(1_000_001, ["k", "j"])) == {"j"}


async def test_a_malformed_record_changes_nothing(store: Store) -> None:
    await store.append_message(msg(1), [])
    bad_key = Decision.applied(Fields("s"), updated_at=1, records={"": {"a": 1}})
    bad_value = Decision.applied(Fields("s"), updated_at=1, records={"k": [1]})  # type: ignore[dict-item]
    long_key = Decision.applied(Fields("s"), updated_at=1, records={"k" * 201: {"a": 1}})
    for n, decision in enumerate([bad_key, bad_value, long_key]):
        with pytest.raises(StoreError):
            await store.update_ext(attempt(1_000_001, f"m{n}"), lambda s, d=decision: d)
    with pytest.raises(StoreError):
        too_many = tuple(f"k{i}" for i in range(17))
        await store.update_ext(replace(attempt(1_000_001, "r"), reads=too_many), set_status("x"))
    assert await store.get_ext(1_000_001) is None and await store.list_ops(1_000_001, 0, 9) == []
    ok = Decision.applied(Fields("s"), updated_at=1, records={"k" * 200: {"a": 1}})
    reads = tuple(f"k{i}" for i in range(16))
    assert await store.update_ext(replace(attempt(1_000_001, "ok"), reads=reads), lambda s: ok)


async def test_list_records_pages_by_prefix_in_byte_order(store: Store) -> None:
    await store.append_message(msg(1), [])
    await store.append_message(msg(2), [])
    keys = ["o1:b", "o1:a", "o0:z", "o1:ä", "o1:B", "o10:a", "o2:a", "b:a"]
    put = Decision.applied(Fields("s"), updated_at=1, records={k: {"k": k} for k in keys})
    await store.update_ext(attempt(1_000_001, "p"), lambda s: put)
    other = Decision.applied(Fields("s"), updated_at=1, records={"o1:c": {"k": "x"}})
    await store.update_ext(attempt(1_000_002, "p"), lambda s: other)

    async def page(prefix: str, after: str = "", limit: int = 10) -> list[str]:
        return [r.key for r in await store.list_records(1_000_001, prefix, after, limit)]

    assert await page("o1:") == ["o1:B", "o1:a", "o1:b", "o1:ä"]  # bytewise, not by locale
    assert await page("o1:", "o1:a", 2) == ["o1:b", "o1:ä"]
    assert await page("o1") == ["o10:a", "o1:B", "o1:a", "o1:b", "o1:ä"]
    assert await page("") == sorted(keys, key=str.encode)
    assert await page("x") == [] and await page("o1:", limit=0) == []
    found = await store.list_records(1_000_001, "b:", "", 5)
    assert found == [ExtRecord(1_000_001, "b:a", {"k": "b:a"}, 1)]


async def test_card_types_are_stored_once(store: Store) -> None:
    spec = {"name": "leave", "actions": {"approve": {"label": "Approve ✓"}}, "n": [1, None]}
    first = await store.add_card_type(CardTypeRow("leave", 1, spec, 100))
    assert first == CardTypeRow("leave", 1, spec, 100)
    again = await store.add_card_type(CardTypeRow("leave", 1, {"other": True}, 200))
    assert again == first, "a stored type never changes"
    await store.add_card_type(CardTypeRow("leave", 2, {"v": 2}, 300))
    await store.add_card_type(CardTypeRow("expense", 1, {}, 400))
    assert await store.get_card_type("leave", 1) == first
    assert await store.get_card_type("leave", 3) is None
    listed = [(r.name, r.version) for r in await store.list_card_types()]
    assert listed == [("expense", 1), ("leave", 1), ("leave", 2)]


async def test_concurrent_registrations_of_one_type_agree(store: Store) -> None:
    rows = [CardTypeRow("race", 1, {"n": n}, n) for n in range(10)]
    stored = await asyncio.gather(*(store.add_card_type(r) for r in rows))
    assert len({r.spec["n"] for r in stored}) == 1

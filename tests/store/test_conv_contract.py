"""The store contract for the conversation features (``docs/conversation.md``) on every backend
of the store contract suite: member roles (and, as they land, reactions, reminders, read state,
files and search)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from magpie.domain.channels import fake_channel_id
from magpie.domain.ext import Decision
from magpie.domain.members import ADMIN, MEMBER, OWNER, Member
from magpie.domain.reactions import Reaction, Summary, summarise
from magpie.domain.reminders import MENTION, NewReminder, Reminder
from magpie.domain.search import SearchQuery
from magpie.errors import StoreError
from magpie.store.interface import NewMessage, ReactionChange, Store, StoredMessage
from tests.store.test_store_contract import (
    BACKENDS,
    GROUP,
    PERSON,
    Backend,
    attempt,
    msg,
    opened,
)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every backend of the store contract suite."""
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with opened(backend) as s:
        yield s


# --- roles ---------------------------------------------------------------------------------


async def test_members_start_as_plain_members(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["carol", "alice", "bob"])
    assert await store.get_members("g1", GROUP) == [
        Member("alice", MEMBER),
        Member("bob", MEMBER),
        Member("carol", MEMBER),
    ]
    assert await store.get_role("g1", GROUP, "bob") == MEMBER
    assert await store.get_role("g1", GROUP, "erin") is None
    assert await store.get_members("nope", GROUP) == []


async def test_set_role_changes_every_named_member(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["alice", "bob", "carol"])
    assert await store.set_role("g1", GROUP, ["alice", "bob", "alice"], ADMIN)
    assert await store.set_role("g1", GROUP, ["carol"], OWNER)
    roles = {m.uid: m.role for m in await store.get_members("g1", GROUP)}
    assert roles == {"alice": ADMIN, "bob": ADMIN, "carol": OWNER}
    assert await store.set_role("g1", GROUP, ["bob"], MEMBER)
    assert await store.get_role("g1", GROUP, "bob") == MEMBER


async def test_set_role_with_a_non_member_changes_nothing(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["alice", "bob"])
    assert not await store.set_role("g1", GROUP, ["alice", "erin"], ADMIN)
    assert await store.get_role("g1", GROUP, "alice") == MEMBER
    assert not await store.set_role("g2", GROUP, ["alice"], ADMIN)


async def test_a_reset_keeps_the_roles_of_members_who_stay(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["alice", "bob", "carol"])
    await store.set_role("g1", GROUP, ["alice", "bob"], ADMIN)
    await store.add_subscribers("g1", GROUP, ["alice", "dave"], reset=True)
    assert await store.get_members("g1", GROUP) == [Member("alice", ADMIN), Member("dave")]
    await store.remove_subscribers("g1", GROUP, ["alice"])
    await store.add_subscribers("g1", GROUP, ["alice"])
    assert await store.get_role("g1", GROUP, "alice") == MEMBER  # a new membership


# --- reactions -----------------------------------------------------------------------------


def change(
    mid: int, uid: str, emoji: str, add: bool = True, at: int = 1, most: int = 3
) -> ReactionChange:
    return ReactionChange(mid, uid, emoji, add, at, most)


async def two_messages(store: Store) -> tuple[int, int]:
    a = (await store.append_message(msg(1), ["alice", "bob"])).message.message_id
    b = (await store.append_message(msg(2), ["alice", "bob"])).message.message_id
    return a, b


async def test_reactions_add_remove_and_sync(store: Store) -> None:
    m1, m2 = await two_messages(store)
    added = await store.react(change(m1, "bob", "👍", at=10))
    assert added is not None and added.changed and added.refused == ""
    assert (added.channel_id, added.channel_type) == ("g1", GROUP)
    assert added.row == Reaction(m1, "g1", GROUP, "bob", "👍", 1, False, 10)
    again = await store.react(change(m1, "bob", "👍", at=11))
    assert again is not None and not again.changed and again.row == added.row, "idempotent"
    await store.react(change(m1, "alice", "👍"))
    await store.react(change(m2, "bob", "🎉"))
    removed = await store.react(change(m1, "bob", "👍", add=False, at=20))
    assert removed is not None and removed.changed
    assert removed.row == Reaction(m1, "g1", GROUP, "bob", "👍", 4, True, 20)
    gone = await store.react(change(m1, "bob", "👍", add=False))
    assert gone is not None and not gone.changed, "removing what is not there changes nothing"
    never = await store.react(change(m2, "carol", "👍", add=False))
    assert never is not None and not never.changed and never.row is None
    rows = await store.sync_reactions("g1", GROUP, 0, 100)
    assert [(r.seq, r.uid, r.emoji, r.deleted) for r in rows] == [
        (2, "alice", "👍", False),
        (3, "bob", "🎉", False),
        (4, "bob", "👍", True),
    ]
    assert [r.seq for r in await store.sync_reactions("g1", GROUP, 2, 1)] == [3]
    assert await store.sync_reactions("g1", GROUP, 4, 100) == []
    assert await store.reaction_summaries([m1, m2, 999]) == {
        m1: [Summary("👍", 1, ("alice",), 2)],
        m2: [Summary("🎉", 1, ("bob",), 3)],
    }


async def live_summaries(store: Store, ids: list[int]) -> dict[int, list[Summary]]:
    """What :func:`summarise` makes of every row of the messages (tombstones included)."""
    rows = [
        r
        for channel in ("g1", "g2")
        for r in await store.sync_reactions(channel, GROUP, 0, 10_000)
        if r.message_id in ids
    ]
    return summarise(rows)


async def test_reaction_summaries_are_summarise_of_the_live_rows(store: Store) -> None:
    m1, m2 = await two_messages(store)
    m3 = (await store.append_message(msg(3, channel_id="g2"), ["alice"])).message.message_id
    m4 = (await store.append_message(msg(4), ["alice"])).message.message_id
    m5 = (await store.append_message(msg(5), ["alice"])).message.message_id
    assert await store.reaction_summaries([m1, m2, m3]) == {}
    steps = [
        (m1, "zed", "🔥", True),  # emoji in order of their first live seq, not by name
        (m1, "amy", "a", True),
        (m3, "amy", "a", True),  # another channel: its seqs start again at 1
        (m1, "amy", "🔥", True),
        (m2, "bob", "x", True),
        (m1, "mia", "a", True),
        (m1, "zed", "🔥", False),  # 🔥's first live seq moves from 1 to 3, after a's 2
        (m1, "bob", "👍", True),
        (m2, "bob", "x", False),  # m2 has no live reaction left
        (m1, "zed", "🔥", True),  # re-added: now the last of 🔥's users
        (m1, "amy", "a", False),  # a's first live seq moves to 5, after 🔥's
        (m1, "amy", "a", True),  # now after mia
        (m5, "bob", "gone", True),
        (m5, "bob", "gone", False),
    ]
    for mid, uid, emoji, add in steps:
        await store.react(change(mid, uid, emoji, add, most=10))

    # A larger mix: uids neither in seq nor in name order, some with two emoji, removes and
    # re-adds (a re-added row keeps its place in the table but takes a new seq).
    def row(n: int) -> tuple[str, str]:
        return f"u{n * 7919 % 1000:03d}", "abcde"[n * 3 % 5]

    for n in range(200):
        await store.react(change(m4, *row(n), most=10))
        if n % 5 == 2:
            await store.react(change(m4, row(n)[0], "abcde"[(n * 3 + 1) % 5], most=10))
        if n % 7 == 3:
            await store.react(change(m4, *row(n - 3), add=False))
        if n % 14 == 10:
            await store.react(change(m4, *row(n - 10), most=10))
    ids = [m1, m2, m3, m4, m5, 999]
    got = await store.reaction_summaries([*ids, m1])
    assert got == await live_summaries(store, ids)
    assert got[m1] == [  # g1's seqs: 🔥 from 3 (amy), a from 5 (mia), 👍 7
        Summary("🔥", 2, ("amy", "zed"), 9),
        Summary("a", 2, ("mia", "amy"), 11),
        Summary("👍", 1, ("bob",), 7),
    ]
    assert got[m3] == [Summary("a", 1, ("amy",), 1)]
    assert m2 not in got and m5 not in got and 999 not in got
    assert len(got[m4]) == 5 and sum(s.count for s in got[m4]) > 150
    # More ids than one query takes: the messages are found in any chunk.
    many = await store.reaction_summaries([*range(1, 1_200), m3, m1])
    assert many == {m1: got[m1], m3: got[m3]}


async def test_seqs_are_per_channel(store: Store) -> None:
    m1 = (await store.append_message(msg(1), ["alice"])).message.message_id
    m2 = (await store.append_message(msg(2, channel_id="g2"), ["alice"])).message.message_id
    for mid in (m1, m2, m1):
        held = (await store.reaction_summaries([mid])).get(mid, [])
        await store.react(change(mid, "alice", f"e{mid}{len(held)}"))
    assert [r.seq for r in await store.sync_reactions("g1", GROUP, 0, 10)] == [1, 2]
    assert [r.seq for r in await store.sync_reactions("g2", GROUP, 0, 10)] == [1]


async def test_the_distinct_emoji_limit(store: Store) -> None:
    m1, _ = await two_messages(store)
    for n, emoji in enumerate(["a", "b", "c"]):
        assert (await store.react(change(m1, f"u{n}", emoji, most=3))).changed  # type: ignore[union-attr]
    refused = await store.react(change(m1, "u9", "d", most=3))
    assert refused is not None and refused.refused == "too_many_emoji" and not refused.changed
    joined = await store.react(change(m1, "u9", "a", most=3))
    assert joined is not None and joined.changed, "an emoji already there is fine"
    await store.react(change(m1, "u2", "c", add=False))
    assert (await store.react(change(m1, "u9", "d", most=3))).changed  # type: ignore[union-attr]
    assert len(await store.sync_reactions("g1", GROUP, 0, 100)) == 5


async def test_reactions_need_a_live_channel_log_message(store: Store) -> None:
    assert await store.react(change(12345, "bob", "x")) is None
    queued, _ = await store.append_to_queues(msg(3, flags=0), ["bob"])
    assert await store.react(change(queued.message.message_id, "bob", "x")) is None
    m1, _ = await two_messages(store)
    await store.update_ext(
        attempt(m1, "rv"), lambda s: Decision.applied(replace(s.fields, revoke=True), updated_at=1)
    )
    refused = await store.react(change(m1, "bob", "x"))
    assert refused is not None and refused.refused == "revoked"
    assert await store.sync_reactions("g1", GROUP, 0, 10) == []


async def test_concurrent_reactions_take_distinct_seqs(store: Store) -> None:
    m1, _ = await two_messages(store)
    outcomes = await asyncio.gather(
        *(store.react(change(m1, f"u{n}", "ok", at=n, most=1)) for n in range(40))
    )
    assert all(o is not None and o.changed for o in outcomes)
    rows = await store.sync_reactions("g1", GROUP, 0, 100)
    assert sorted(r.seq for r in rows) == list(range(1, 41))
    emoji = await asyncio.gather(
        *(store.react(change(m1, "x", f"e{n}", most=3)) for n in range(10))
    )
    assert sum(1 for o in emoji if o is not None and o.changed) == 2, "one emoji was there"


# --- read position -------------------------------------------------------------------------


async def test_clear_unread_moves_the_read_position_up_only(store: Store) -> None:
    for n in range(1, 6):  # bob sends 2, alice 3 (red dot), then one without a red dot
        sender = "bob" if n in (2, 4) else "alice"
        await store.append_message(msg(n, from_uid=sender), ["alice", "bob"])
    await store.append_message(msg(6, from_uid="alice", flags=0), ["alice", "bob"])
    before = {c.channel_id: c for c in await store.list_conversations("bob")}["g1"]
    assert (before.unread, before.last_msg_seq, before.readed_to_msg_seq) == (3, 6, 0)
    cleared = await store.clear_unread("bob", "g1", GROUP, 3)
    assert cleared is not None
    row, changed = cleared
    assert changed and (row.readed_to_msg_seq, row.unread) == (3, 1)  # message 5 is left
    assert row.version > before.version
    listed = {c.channel_id: c for c in await store.list_conversations("bob")}["g1"]
    assert listed == row
    same = await store.clear_unread("bob", "g1", GROUP, 2)
    assert same is not None and same == (row, False), "the position never moves back"
    last = await store.clear_unread("bob", "g1", GROUP, 0)
    assert last is not None and last[1] and (last[0].readed_to_msg_seq, last[0].unread) == (6, 0)
    beyond = await store.clear_unread("bob", "g1", GROUP, 99)
    assert beyond is not None and not beyond[1]
    assert await store.clear_unread("bob", "g2", GROUP, 0) is None
    alice = {c.channel_id: c for c in await store.list_conversations("alice")}["g1"]
    assert alice.readed_to_msg_seq == 0, "another user's position is their own"


async def test_new_messages_after_the_read_position_count_again(store: Store) -> None:
    await store.append_message(msg(1), ["alice", "bob"])
    await store.clear_unread("bob", "g1", GROUP, 0)
    await store.append_message(msg(2), ["alice", "bob"])
    row = {c.channel_id: c for c in await store.list_conversations("bob")}["g1"]
    assert (row.unread, row.readed_to_msg_seq, row.last_msg_seq) == (1, 1, 2)
    cleared = await store.clear_unread("bob", "g1", GROUP, 0)
    assert cleared is not None and cleared[0].unread == 0


# --- reminders -----------------------------------------------------------------------------


async def test_reminders_come_with_their_message(store: Store) -> None:
    remind = [NewReminder("bob", MENTION, "@you"), NewReminder("carol")]
    appended = await store.append_message(msg(1), ["alice", "bob", "carol"], reminders=remind)
    m = appended.message
    bob = await store.sync_reminders("bob", 0, 10)
    conv = {c.channel_id: c for c in await store.list_conversations("bob")}["g1"]
    assert bob == [
        Reminder(
            bob[0].reminder_id,
            "bob",
            "g1",
            GROUP,
            m.message_id,
            1,
            MENTION,
            "alice",
            "@you",
            conv.version,
        )
    ]
    assert [r.uid for r in await store.sync_reminders("carol", 0, 10)] == ["carol"]
    assert await store.sync_reminders("alice", 0, 10) == []
    again = await store.append_message(msg(1), ["alice", "bob", "carol"], reminders=remind)
    assert again.duplicate and len(await store.sync_reminders("bob", 0, 10)) == 1
    with pytest.raises(StoreError):
        await store.append_message(msg(2), ["alice"], reminders=[NewReminder("bob")])
    assert await store.max_seq("g1", GROUP) == 1, "a refused append commits nothing"


async def test_done_reminders_take_new_versions(store: Store) -> None:
    for n in (1, 2, 3):
        await store.append_message(msg(n), ["alice", "bob"], reminders=[NewReminder("bob")])
    rows = await store.sync_reminders("bob", 0, 10)
    assert [r.version for r in rows] == sorted(r.version for r in rows) and len(rows) == 3
    top = rows[-1].version
    done = await store.done_reminders("bob", [rows[0].reminder_id, rows[1].reminder_id])
    assert done is not None and [r.done for r in done] == [True, True]
    assert all(r.version > top for r in done)
    later = await store.sync_reminders("bob", top, 10)
    assert [(r.reminder_id, r.done) for r in later] == [
        (rows[0].reminder_id, True),
        (rows[1].reminder_id, True),
    ]
    assert await store.done_reminders("bob", [rows[0].reminder_id]) == [], "done once"
    assert await store.done_reminders("alice", [rows[2].reminder_id]) is None, "not alice's"
    assert await store.done_reminders("bob", [rows[2].reminder_id, 999999]) is None
    left = [r for r in await store.sync_reminders("bob", 0, 10) if not r.done]
    assert [r.reminder_id for r in left] == [rows[2].reminder_id], "a refused call changed nothing"
    assert [r.reminder_id for r in await store.sync_reminders("bob", 0, 1)] == [rows[2].reminder_id]


async def test_concurrent_appends_with_reminders(store: Store) -> None:
    """Appends queued together (one batch on PostgreSQL) each create their reminders."""
    await asyncio.gather(
        *(
            store.append_message(
                msg(n, channel_id=f"g{n % 3}"), ["alice", "bob"], [], [NewReminder("bob")]
            )
            for n in range(1, 31)
        )
    )
    rows = await store.sync_reminders("bob", 0, 100)
    assert len(rows) == 30 and len({r.version for r in rows}) == 30
    assert sorted(r.message_id for r in rows) == [msg(n).message_id for n in range(1, 31)]


# --- replies -------------------------------------------------------------------------------


def quoting(n: int, target: int | str, **kw: object) -> NewMessage:
    payload = json.dumps({"type": 1, "content": f"re {n}", "reply": {"message_id": target}})
    return msg(n, payload=payload.encode(), **kw)  # type: ignore[arg-type]


async def test_replies_are_indexed_as_they_are_stored(store: Store) -> None:
    root = (await store.append_message(msg(1), ["alice"])).message.message_id
    await store.append_message(quoting(2, str(root)), ["alice"])
    await store.append_message(msg(3), ["alice"])
    await store.append_message(quoting(4, root), ["alice"])  # a number works too
    await store.append_message(quoting(5, "not a number"), ["alice"])
    await store.append_message(quoting(9, "99999999999999999999"), ["alice"])  # above int64
    big = (await store.append_message(replace(msg(10), message_id=2**63 - 7), ["alice"])).message
    await store.append_message(quoting(11, str(big.message_id)), ["alice"])  # 19 digits
    await store.append_message(msg(6, payload=b'{"type":1,"content":"\\"reply\\""}'), ["alice"])
    await store.append_message(msg(7, payload=b'not json "reply"'), ["alice"])
    queued, _ = await store.append_to_queues(quoting(8, str(root), flags=0), ["alice"])
    thread = await store.get_replies(root, 0, 10)
    assert [m.message_seq for m in thread] == [2, 4]
    assert [m.message_seq for m in await store.get_replies(root, 2, 10)] == [4]
    assert [m.message_seq for m in await store.get_replies(root, 0, 1)] == [2]
    assert await store.get_replies(thread[0].message_id, 0, 10) == []
    assert queued.message.message_seq == 0, "a queued command is no reply in a thread"
    assert [m.message_seq for m in await store.get_replies(big.message_id, 0, 10)] == [8]


# --- search --------------------------------------------------------------------------------


def said(n: int, text: str, **kw: object) -> NewMessage:
    return msg(n, payload=json.dumps({"type": 1, "content": text}).encode(), **kw)  # type: ignore[arg-type]


def found(messages: list[StoredMessage]) -> list[int]:
    return [m.message_id - 1_000_000 for m in messages]


async def test_search_finds_word_prefixes_in_readable_channels(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["alice", "bob"])
    await store.add_subscribers("g2", GROUP, ["carol"])
    await store.append_message(said(1, "Lunch at noon?"), ["alice", "bob"])
    await store.append_message(said(2, "lunchbox ready"), ["alice", "bob"])
    await store.append_message(said(3, "lunch for carol", channel_id="g2"), ["carol"])
    pm = fake_channel_id("alice", "dave")
    await store.append_message(
        said(4, "secret lunch", channel_id=pm, channel_type=PERSON), ["alice", "dave"]
    )
    await store.append_message(
        msg(5, payload=b'{"type":8,"name":"lunch-menu.pdf","url":"x"}'), ["alice"]
    )
    await store.append_message(msg(6, payload=b'{"type":99,"cmd":"lunch"}'), ["alice"])
    await store.append_message(msg(7, payload=b'{"type":1,"content":{"lunch":1}}'), ["alice"])
    await store.append_message(msg(8, payload=b"not json lunch"), ["alice"])
    q = SearchQuery(("lunch",))
    assert found(await store.search_messages("alice", q)) == [5, 4, 2, 1]
    assert found(await store.search_messages("bob", q)) == [5, 2, 1]
    assert found(await store.search_messages("dave", q)) == [4]
    assert found(await store.search_messages("carol", q)) == [3]
    assert found(await store.search_messages("eve", q)) == []
    assert found(await store.search_messages("alice", SearchQuery(("lunch", "noon")))) == [1]
    assert found(await store.search_messages("alice", SearchQuery(("unch",)))) == [], "prefixes"
    assert found(await store.search_messages("alice", replace(q, limit=2))) == [5, 4]
    page = replace(q, before_message_id=1_000_004)
    assert found(await store.search_messages("alice", page)) == [2, 1]
    one = replace(q, channel_id=pm, channel_type=PERSON)
    assert found(await store.search_messages("alice", one)) == [4]
    assert found(await store.search_messages("bob", one)) == []
    await store.remove_subscribers("g1", GROUP, ["bob"])
    assert found(await store.search_messages("bob", q)) == [], "readable now, not once"


async def test_search_follows_edits_and_revokes(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["alice"])
    a = (await store.append_message(said(1, "old words"), ["alice"])).message.message_id
    b = (await store.append_message(said(2, "doomed words"), ["alice"])).message.message_id
    edit = {"type": 1, "content": "new text"}
    await store.update_ext(
        attempt(a, "e"),
        lambda s: Decision.applied(replace(s.fields, content_edit=edit), updated_at=1),
    )
    await store.update_ext(
        attempt(b, "r"), lambda s: Decision.applied(replace(s.fields, revoke=True), updated_at=1)
    )
    assert found(await store.search_messages("alice", SearchQuery(("words",)))) == []
    assert found(await store.search_messages("alice", SearchQuery(("new",)))) == [1]
    await store.update_ext(
        attempt(a, "s"), lambda s: Decision.applied(replace(s.fields, status="x"), updated_at=2)
    )
    assert found(await store.search_messages("alice", SearchQuery(("text",)))) == [1]

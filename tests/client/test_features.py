"""The SDK's conversation features against a real node on loopback: every method and
listener, bad input refused with the SDK's errors and nothing changed, two clients
converging (``docs/conversation.md``, ``docs/client.md``)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from magpie.app import Node
from magpie.client import (
    ApiRequestFailed,
    Channel,
    Client,
    ConnectionState,
    InvalidArgument,
    Message,
    RateLimited,
)
from magpie.client.features import ReactionBook
from magpie.client.model import ReactionRow
from tests.client.support import Proxy, T, client_of
from tests.support.nodes import add_user, make_group, running_node, settle

G = Channel.group("g1")


def text(s: str) -> dict[str, object]:
    return {"type": 1, "content": s}


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(
        tmp_path / "node", ext_coalesce_ms=0, reaction_max_emoji=2, upload_max_bytes=4096
    ) as n:
        for uid in ("alice", "bob", "carol", "dave"):
            await add_user(n, uid)
        await make_group(n, "g1", ["alice", "bob", "carol"])
        yield n


@pytest.fixture
async def clients(node: Node, tmp_path: Path) -> AsyncIterator[dict[str, Client]]:
    made: dict[str, Client] = {}
    try:
        for uid in ("alice", "bob"):
            made[uid] = await started(client_of(node, uid, f"tok-{uid}", tmp_path / f"{uid}.db"))
        yield made
    finally:
        for c in made.values():
            await c.close()


async def started(client: Client) -> Client:
    await client.open()
    await client.wait_connected(T)
    await client.wait_synced(T)
    return client


async def delivered(client: Client, message_id: int) -> Message:
    """The message once ``client`` has it cached."""
    for _ in range(int(50 * T)):
        if (m := await client.message(message_id)) is not None:
            return m
        await settle(0.02)
    raise AssertionError(f"message {message_id} never reached {client.uid}")


async def test_reply_quotes_the_message_with_the_servers_preview(
    clients: dict[str, Client],
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    original = await alice.send(G, text("lunch at noon?"))
    quoted = await delivered(bob, original.message_id)
    incoming = alice.messages.stream()
    sent = await bob.reply(quoted, "yes", from_name="Bob")
    got = await incoming.get(T)
    assert got.message_id == sent.message_id and got.text == "yes"
    assert got.reply is not None
    assert (got.reply.message_id, got.reply.message_seq, got.reply.from_uid) == (
        original.message_id,
        original.message_seq,
        "alice",
    )
    assert got.reply.preview.get("content") == "lunch at noon?" and not got.reply.revoked
    by_id = await bob.reply(original.message_id, {"type": 1, "content": "again"})
    assert by_id.message_seq == sent.message_seq + 1
    thread = await alice.replies(original.message_id, limit=1)
    assert [m.message_id for m in thread.messages] == [sent.message_id]
    assert thread.more and thread.next == sent.message_seq
    rest = await alice.replies(original.message_id, after_seq=thread.next)
    assert [m.message_id for m in rest.messages] == [by_id.message_id] and not rest.more
    assert rest.messages[0].reply is not None and rest.messages[0].channel == G


async def test_reply_bad_input_sends_nothing(clients: dict[str, Client]) -> None:
    bob = clients["bob"]
    sent = await bob.send(G, text("x"))
    with pytest.raises(InvalidArgument) as info:
        await bob.reply(987654321, "yes")
    assert info.value.argument == "message_id"
    with pytest.raises(InvalidArgument):
        await bob.reply(sent.message_id, "   ")
    assert [m.message_seq for m in await bob.history(G)] == [sent.message_seq]


async def test_reactions_live_idempotent_and_converging(
    node: Node, clients: dict[str, Client], tmp_path: Path
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    sent = await alice.send(G, text("ship it"))
    await delivered(bob, sent.message_id)
    assert await alice.reactions(sent.message_id) == ()
    changes = alice.reaction_changes.stream()
    summary = await bob.react(sent.message_id, "👍")
    assert [(r.emoji, r.count, r.users) for r in summary] == [("👍", 1, ("bob",))]
    change = await changes.get(T)
    assert change.message_id == sent.message_id and change.channel == G
    assert [(r.emoji, r.count, r.users) for r in change.reactions] == [("👍", 1, ("bob",))]
    await alice.react(sent.message_id, "👍")
    again = await bob.react(sent.message_id, "👍")  # idempotent: no change
    assert [(r.emoji, r.count) for r in again] == [("👍", 2)]
    after = await bob.unreact(sent.message_id, "👍")
    assert [(r.emoji, r.count, r.users) for r in after] == [("👍", 1, ("alice",))]
    fresh = await started(client_of(node, "bob", "tok-bob", tmp_path / "bob2.db"))
    try:
        await delivered(fresh, sent.message_id)
        assert await fresh.reactions(sent.message_id) == await alice.reactions(sent.message_id)
    finally:
        await fresh.close()


async def test_reactions_bad_input_changes_nothing(clients: dict[str, Client]) -> None:
    alice, bob = clients["alice"], clients["bob"]
    sent = await alice.send(G, text("pick"))
    await delivered(bob, sent.message_id)
    for bad in ("", "a b", "x" * 40, "\x00"):
        with pytest.raises(InvalidArgument) as info:
            await bob.react(sent.message_id, bad)
        assert info.value.argument == "emoji"
    await bob.react(sent.message_id, "👍")
    await bob.react(sent.message_id, "🎉")
    with pytest.raises(ApiRequestFailed) as refused:
        await bob.react(sent.message_id, "🚀")  # the node allows 2 distinct emoji
    assert refused.value.status == 400 and refused.value.error_code == "too_many_emoji"
    assert [r.emoji for r in await alice.reactions(sent.message_id)] == ["👍", "🎉"]


async def test_receipts_reach_the_sender_live_with_who_read(
    clients: dict[str, Client],
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    plain = await alice.send(G, text("fyi"))
    sent = await alice.send(G, text("please read"), receipt=True)
    await delivered(bob, sent.message_id)
    receipts = alice.receipts.stream()
    result = await bob.mark_read(G, [sent.message_id, plain.message_id])
    assert result.applied == (sent.message_id,) and result.skipped == (plain.message_id,)
    change = await receipts.get(T)
    assert (change.message_id, change.readed_count, change.unread_count) == (
        sent.message_id,
        1,
        1,
    )
    again = await bob.mark_read(G, [sent.message_id])
    assert again.applied == ()
    page = await alice.read_by(sent.message_id)
    assert [r.uid for r in page.readers] == ["bob"] and page.readers[0].readed_at > 0
    assert not page.more and page.next == ""
    waiting = await alice.read_by(sent.message_id, unread=True)
    assert [r.uid for r in waiting.readers] == ["carol"]
    with pytest.raises(ApiRequestFailed) as info:
        await bob.read_by(sent.message_id)  # only the sender
    assert info.value.status == 403 and info.value.error_code == "forbidden"


async def test_receipts_bad_input_changes_nothing(clients: dict[str, Client]) -> None:
    alice, bob = clients["alice"], clients["bob"]
    sent = await alice.send(G, text("x"), receipt=True)
    with pytest.raises(InvalidArgument):
        await bob.mark_read(G, [])
    with pytest.raises(InvalidArgument):
        await bob.mark_read(G, [0])
    with pytest.raises(ApiRequestFailed) as info:
        await bob.mark_read(Channel.person("alice"), [sent.message_id])  # not that channel
    assert info.value.status == 404
    assert (await alice.read_by(sent.message_id)).readers == ()


async def test_clear_unread_reaches_the_users_other_device(
    node: Node, clients: dict[str, Client], tmp_path: Path
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    for i in range(3):
        last = await alice.send(G, text(f"m{i}"))
    other = await started(client_of(node, "bob", "tok-bob", tmp_path / "bob-phone.db"))
    try:
        await delivered(other, last.message_id)
        await other.sync()
        assert (await other.unread_counts())[G] == 3
        cleared = other.unread_cleared.stream()
        conversation = await bob.clear_unread(G, last.message_seq - 1)
        assert conversation.unread == 1
        event = await cleared.get(T)
        assert (event.channel, event.unread, event.readed_to_msg_seq) == (
            G,
            1,
            last.message_seq - 1,
        )
        for _ in range(int(50 * T)):
            if (await other.unread_counts()).get(G) == 1:
                break
            await settle(0.02)
        assert (await other.unread_counts())[G] == 1
        with pytest.raises(ApiRequestFailed) as info:
            await bob.clear_unread(Channel.group("nowhere"))
        assert info.value.status == 404
        with pytest.raises(InvalidArgument):
            await bob.clear_unread(G, -1)
    finally:
        await other.close()


async def test_mentions_become_reminders_until_done(clients: dict[str, Client]) -> None:
    alice, bob = clients["alice"], clients["bob"]
    added = bob.reminders_added.stream()
    sent = await alice.send(G, {"type": 1, "content": "@bob look", "mention": {"uids": ["bob"]}})
    reminder = await added.get(T)
    assert (reminder.message_id, reminder.channel, reminder.publisher) == (
        sent.message_id,
        G,
        "alice",
    )
    assert [r.id for r in await bob.reminders()] == [reminder.id]
    with pytest.raises(ApiRequestFailed) as info:
        await bob.reminders_done([reminder.id + 1000])
    assert info.value.status == 404
    assert [r.id for r in await bob.reminders()] == [reminder.id]
    with pytest.raises(InvalidArgument):
        await bob.reminders_done([])
    await bob.reminders_done([reminder.id])
    await bob.reminders_done([reminder.id])  # idempotent
    assert await bob.reminders() == []
    assert [r.done for r in await bob.reminders(include_done=True)] == [True]


async def test_typing_notice_reaches_the_others_and_is_rate_limited(
    clients: dict[str, Client],
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    typing = alice.typing.stream()
    await bob.send_typing(G)
    notice = await typing.get(T)
    assert (notice.channel, notice.from_uid) == (G, "bob") and notice.expires_in_ms > 0
    with pytest.raises(RateLimited) as info:
        await bob.send_typing(G)
    assert info.value.status == 429 and info.value.retry_after > 0
    with pytest.raises(InvalidArgument):
        await bob.send_typing("g1")  # type: ignore[arg-type]


async def test_edit_and_revoke_reach_the_other_client(clients: dict[str, Client]) -> None:
    alice, bob = clients["alice"], clients["bob"]
    sent = await alice.send(G, text("teh plan"))
    await delivered(bob, sent.message_id)
    edits = bob.edits.stream()
    with pytest.raises(ApiRequestFailed) as info:
        await bob.edit(sent.message_id, "hijacked")  # not bob's message
    assert info.value.status == 403
    with pytest.raises(InvalidArgument):
        await alice.edit(sent.message_id, 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        await alice.edit(sent.message_id, {"content": "no type"})
    with pytest.raises(ApiRequestFailed) as wrong_type:
        await alice.edit(sent.message_id, {"type": 8, "name": "x"})  # a text stays a text
    assert wrong_type.value.status == 400
    assert await bob.ext(sent.message_id) is None  # nothing changed
    await alice.edit(sent.message_id, "the plan")
    edited = await edits.get(T)
    assert edited.message_id == sent.message_id and not edited.revoked
    assert edited.content is not None and edited.content["content"] == "the plan"
    await alice.revoke(sent.message_id)
    revoked = await edits.get(T)
    assert revoked.revoked and revoked.revoker == "alice"
    ext = await bob.ext(sent.message_id)
    assert ext is not None and ext.fields.revoke
    with pytest.raises(ApiRequestFailed) as again:
        await alice.revoke(sent.message_id)
    assert again.value.status == 400


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (3, 2), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


async def test_images_and_files_upload_send_and_download(
    node: Node, clients: dict[str, Client], tmp_path: Path
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    incoming = bob.messages.stream()
    await alice.send_file(G, _png(), "dot.png")
    image = await incoming.get(T)
    assert image.content_type == 2
    assert (image.content["width"], image.content["height"]) == (3, 2)
    assert await bob.download(str(image.content["url"])) == _png()
    notes = tmp_path / "notes.txt"
    notes.write_text("hello file")
    await alice.send_file(G, notes)
    file_message = await incoming.get(T)
    assert file_message.content_type == 8 and file_message.content["name"] == "notes.txt"
    assert await bob.download(str(file_message.content["url"])) == b"hello file"
    dave = await started(client_of(node, "dave", "tok-dave", None))
    try:
        with pytest.raises(ApiRequestFailed) as info:
            await dave.download(str(file_message.content["url"]))
        assert info.value.status == 404
        with pytest.raises(ApiRequestFailed) as forbidden:
            await dave.upload(G, b"nope")
        assert forbidden.value.status == 403
    finally:
        await dave.close()
    with pytest.raises(InvalidArgument):
        await alice.upload(G, b"")
    with pytest.raises(ApiRequestFailed) as big:
        await alice.upload(G, b"x" * 5000)  # the node keeps at most 4096 bytes
    assert big.value.status == 413 and big.value.error_code == "too_large"
    with pytest.raises(InvalidArgument):
        await alice.download("../../etc/passwd")


async def test_search_pages_through_readable_messages(clients: dict[str, Client]) -> None:
    alice, bob = clients["alice"], clients["bob"]
    first = await alice.send(G, text("hello world"))
    second = await alice.send(G, text("hello again"))
    await alice.send(G, text("unrelated"))
    page = await bob.search("hello", limit=1)
    assert [m.message_id for m in page.messages] == [second.message_id]
    assert page.more and page.next is not None
    rest = await bob.search("hello", G, limit=1, before=page.next)
    assert [m.message_id for m in rest.messages] == [first.message_id]
    assert rest.messages[0].text == "hello world" and rest.messages[0].channel == G
    with pytest.raises(InvalidArgument):
        await bob.search("  ")
    with pytest.raises(ApiRequestFailed) as info:
        await bob.search("hello", Channel.group("elsewhere"))
    assert info.value.status in (403, 404)


async def test_online_members_of_a_channel(clients: dict[str, Client]) -> None:
    members = await clients["alice"].online(G)
    assert [(p.uid, p.online) for p in members] == [
        ("alice", True),
        ("bob", True),
        ("carol", False),
    ]
    assert 2 in members[0].device_flags
    with pytest.raises(InvalidArgument):
        await clients["alice"].online(None)  # type: ignore[arg-type]


async def test_person_channel_reactions_typing_and_receipts(clients: dict[str, Client]) -> None:
    alice, bob = clients["alice"], clients["bob"]
    to_bob, to_alice = Channel.person("bob"), Channel.person("alice")
    sent = await alice.send(to_bob, text("psst"), receipt=True)
    got = await delivered(bob, sent.message_id)
    assert got.channel == to_alice
    changes, typing, receipts = (
        alice.reaction_changes.stream(),
        alice.typing.stream(),
        alice.receipts.stream(),
    )
    await bob.react(got, "👀")
    change = await changes.get(T)
    assert (change.channel, change.message_id) == (to_bob, sent.message_id)
    assert [(r.emoji, r.users) for r in change.reactions] == [("👀", ("bob",))]
    await bob.send_typing(to_alice)
    notice = await typing.get(T)
    assert (notice.channel, notice.from_uid) == (to_bob, "bob")
    assert (await bob.mark_read(to_alice, [sent.message_id])).applied == (sent.message_id,)
    receipt = await receipts.get(T)
    assert (receipt.channel, receipt.readed_count, receipt.unread_count) == (to_bob, 1, 0)


async def test_an_offline_client_catches_up_on_reactions_and_reminders(
    node: Node, clients: dict[str, Client], tmp_path: Path
) -> None:
    alice = clients["alice"]
    async with Proxy(node.ws_port) as proxy:
        url = proxy.url
        carol = await started(client_of(node, "carol", "tok-carol", tmp_path / "c.db", url=url))
        try:
            sent = await alice.send(G, text("vote with emoji"))
            await delivered(carol, sent.message_id)
            assert await carol.reactions(sent.message_id) == ()  # the channel is followed
            changes, added = carol.reaction_changes.stream(), carol.reminders_added.stream()
            proxy.refuse = True
            proxy.cut()
            for _ in range(int(50 * T)):
                if carol.state is not ConnectionState.CONNECTED:
                    break
                await settle(0.02)
            await alice.react(sent.message_id, "🍕")  # the CMDs go nowhere
            mention = {"type": 1, "content": "@carol?", "mention": {"uids": ["carol"]}}
            asked = await alice.send(G, mention)
            proxy.refuse = False
            await carol.wait_connected(T)
            change = await changes.get(T)
            assert [(r.emoji, r.users) for r in change.reactions] == [("🍕", ("alice",))]
            reminder = await added.get(T)
            assert reminder.message_id == asked.message_id
            assert await carol.reactions(sent.message_id) == await alice.reactions(sent.message_id)
        finally:
            await carol.close()


def test_reaction_book_is_order_and_duplicate_free() -> None:
    def row(seq: int, uid: str, emoji: str, deleted: bool = False) -> ReactionRow:
        return ReactionRow(5, "g1", 2, uid, emoji, seq, deleted)

    rows = [row(1, "a", "👍"), row(2, "b", "👍"), row(3, "a", "👍", True), row(4, "b", "🎉")]
    forward, backward = ReactionBook(), ReactionBook()
    assert forward.apply(G, rows) == [5]
    backward.apply(G, list(reversed(rows)) + rows)
    for book in (forward, backward):
        assert [(r.emoji, r.count, r.users) for r in book.summary(5)] == [
            ("👍", 1, ("b",)),
            ("🎉", 1, ("b",)),
        ]
        assert book.cursor(G) == 4 and book.channels == [G]
    assert forward.apply(G, rows) == []  # nothing new: no event


async def test_features_need_the_api_url(tmp_path: Path) -> None:
    client = Client("ws://127.0.0.1:9", "alice", "tok", api_url=None)
    await client.open(connect=False)
    try:
        with pytest.raises(InvalidArgument) as info:
            await client.online(G)
        assert info.value.argument == "api_url"
        with pytest.raises(InvalidArgument):
            await client.search("x")
    finally:
        await client.close()

"""``magpie.client.convtext``: messages and their state as readable lines (no JSON)."""

from __future__ import annotations

from magpie.client.chat import text_content
from magpie.client.convtext import body_text, chips, line, reply_text, size_text, value_text
from magpie.client.model import Reaction, Reply
from magpie.domain.ext import ExtState, Fields


def test_bodies_of_each_content_type() -> None:
    assert body_text({"type": 1, "content": "two\nlines"}) == "two lines"
    image = {"type": 2, "url": "/file/x", "width": 3, "height": 2, "size": 2048, "name": "a.png"}
    assert body_text(image) == "[image a.png 3×2, 2.0 KiB]"
    assert body_text({"type": 8, "name": "n.txt", "size": 10}) == "[file n.txt, 10 B]"
    card = {"type": 3000, "content": "vote", "card": {"type": "vote@1", "title": "Lunch"}}
    assert body_text(card) == "[card vote@1: Lunch]"
    assert body_text({"type": 42}) == "[message of type 42]"
    assert size_text(3 * 1024 * 1024) == "3.0 MiB"


def test_reply_preview_and_withdrawn_original() -> None:
    reply = Reply.of(
        {
            "reply": {
                "message_id": "7",
                "message_seq": 1,
                "from_uid": "alice",
                "payload": {"type": 1, "content": "x" * 60},
            }
        }
    )
    assert reply is not None and reply.message_id == 7
    assert reply_text(reply) == '↪ alice: "' + "x" * 39 + '…"'
    gone = Reply.of({"reply": {"message_id": 7, "from_uid": "alice", "revoke": 1}})
    assert gone is not None and reply_text(gone) == "↪ alice: (withdrawn)"
    assert Reply.of({"reply": {"message_id": 0}}) is None
    edited = ExtState(7, fields=Fields(content_edit={"type": 1, "content": "fixed"}), version=1)
    assert reply_text(reply, edited) == '↪ alice: "fixed"'
    assert reply_text(reply, ExtState(7, fields=Fields(revoke=True), version=2)) == (
        "↪ alice: (withdrawn)"
    )


def test_chips_tags_and_a_whole_line() -> None:
    reactions = [Reaction("👍", 2, ("alice", "bob"), 3), Reaction("🎉", 1, ("carol",), 4)]
    assert chips(reactions) == "👍 2 (alice, bob) · 🎉 1 (carol)"
    ext = ExtState(
        1, fields=Fields(content_edit={"type": 1, "content": "new"}, readed_count=2), version=2
    )
    content = {"type": 1, "content": "old", "mention": {"uids": ["bob"]}}
    assert line(content, "alice", "bob", ext, reactions) == (
        "alice: new  @you · edited · read by 2 · 👍 2 (alice, bob) · 🎉 1 (carol)"
    )
    assert line(content, "alice", "carol") == "alice: old"
    revoked = ExtState(1, fields=Fields(revoke=True), version=3)
    assert line(content, "alice", "bob", revoked) == "alice: (withdrawn)"
    assert line({"type": 1, "content": "hi", "mention": {"all": 1}}, "a", "z").endswith("@you")


def test_values_as_text() -> None:
    assert value_text({"n": 1, "tags": ["a", "b"], "ok": True, "x": None}) == (
        "n=1, tags=[a, b], ok=yes, x=-"
    )


def test_mentions_in_typed_text() -> None:
    assert text_content("hi") == {"type": 1, "content": "hi"}
    assert text_content("@bob, @carol: @bob see")["mention"] == {"uids": ["bob", "carol"]}
    assert text_content("@all now")["mention"] == {"uids": [], "all": 1}
    assert "mention" not in text_content("mail me@home or @ alone")

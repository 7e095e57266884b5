"""The demo page in a real browser: login, live messages, extension changes, reconnects,
and the card framework (renderer registry, status classes, pending state, rollback and the
409 prompt, the history panel) on the real cards API; the card types are in test_cards.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from typing import Any

import pytest
from playwright.async_api import Request, Route, expect

from magpie.app import Node
from tests.support.nodes import api, settle, time_scale
from tests.web.conftest import Ui
from tests.web.helpers import GROUP, act, create_card, shown

#: One Chromium per module (conftest ``browser``): the tests share the module's loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

#: A card type the server does not run (its own content type): the page's placeholder.
CARD_TYPE = 3001


async def update_status(
    node: Node, message_id: str, status: str, actor: str = "carol", channel: tuple[str, int] = GROUP
) -> None:
    """Change a message's extension status through the business API (last writer wins)."""
    async with api(node) as http:
        r = await http.post(
            "/message/extra/update",
            json={
                "message_id": message_id,
                "channel_id": channel[0],
                "channel_type": channel[1],
                "status": status,
                "mode": "lww",
                "action_id": uuid.uuid4().hex,
                "actor_uid": actor,
            },
        )
        assert r.status_code == 200, r.text


async def send_card(node: Node, card: dict[str, Any], content: str) -> str:
    """The business server posts a card message to the demo group; returns its id."""
    payload = {"type": CARD_TYPE, "content": content, "card": card}
    body = {
        "header": {"red_dot": 1},
        "from_uid": "alice",
        "channel_id": GROUP[0],
        "channel_type": GROUP[1],
        "payload": base64.b64encode(json.dumps(payload).encode()).decode(),
    }
    async with api(node) as http:
        r = await http.post("/message/send", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["data"]["message_id"])


async def test_login_connects_and_shows_history(ui: Ui) -> None:
    alice = await ui.login("alice")
    await alice.expect_connection("connected")
    await expect(alice.conversation(*GROUP)).to_be_visible()
    await expect(alice.conversation("bob", 1)).to_be_visible()
    await alice.open(*GROUP)
    await expect(alice.message_with_text("Welcome to the Magpie demo group!")).to_be_visible()


async def test_text_reaches_the_other_browser_live(ui: Ui) -> None:
    alice = await ui.login("alice")
    bob = await ui.login("bob")
    await alice.open(*GROUP)
    await bob.open(*GROUP)
    text = f"hello bob {uuid.uuid4().hex[:6]}"
    message_id = await alice.send_text(text)
    row = bob.message(message_id)
    await expect(row).to_be_visible(timeout=bob.ms(5000))
    await expect(row.locator(".msg-bubble")).to_have_text(text)
    await expect(row).to_have_attribute("data-from", "alice")
    # Unread counts: the seeded direct message, then one more live; opening reads them, and
    # a reload keeps them read.
    direct = bob.conversation("alice", 1)
    await expect(direct).to_have_attribute("data-unread", "1")
    await alice.open("bob", 1)
    await alice.send_text("psst, direct")
    await expect(direct).to_have_attribute("data-unread", "2", timeout=bob.ms(5000))
    await expect(direct.locator(".conv-digest")).to_have_text("psst, direct")
    await bob.open("alice", 1)
    await expect(direct).to_have_attribute("data-unread", "0")
    await bob.page.reload()
    await bob.expect_connection("connected")
    await expect(bob.conversation(*GROUP)).to_be_visible()
    await expect(direct).to_have_attribute("data-unread", "0")


async def test_extension_change_patches_only_that_message_within_1s(
    ui: Ui, demo_node: Node
) -> None:
    alice = await ui.login("alice")
    bob = await ui.login("bob")
    await alice.open(*GROUP)
    await bob.open(*GROUP)
    message_id = await alice.send_text("please approve the budget")
    target = bob.message(message_id)
    await expect(target).to_be_visible(timeout=bob.ms(5000))
    other = bob.message_with_text("Welcome to the Magpie demo group!")
    for locator in (target, other, bob.page.locator(".msg-list")):
        await bob.mark(locator, "__before")

    started = time.monotonic()
    waiting = asyncio.ensure_future(bob.wait_status_of(message_id, "approved", 5000))
    await update_status(demo_node, message_id, "approved")
    await waiting
    elapsed = time.monotonic() - started
    print(f"extension change shown after {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0 * time_scale(), f"the change took {elapsed:.3f}s to show"

    await expect(target.locator(".chip")).to_have_text("Approved")
    await expect(target).to_have_attribute("data-ext-version", "1")
    # Patched in place: the list, the changed element and its neighbours are the same nodes.
    for locator in (target, other, bob.page.locator(".msg-list")):
        assert await bob.still_marked(locator, "__before"), locator
    await expect(other.locator(".chip")).to_have_count(0)
    # The sender's page follows too.
    await alice.wait_status_of(message_id, "approved", 5000)


async def test_extension_change_in_a_direct_chat(ui: Ui, demo_node: Node) -> None:
    bob = await ui.login("bob")
    await bob.open("alice", 1)
    seeded = bob.message_with_text("Hi Bob, this is a direct chat.")
    message_id = await seeded.get_attribute("data-message-id")
    assert message_id and message_id.isdigit()
    await update_status(demo_node, message_id, "done", actor="alice", channel=("bob", 1))
    await bob.wait_status_of(message_id, "done", 2000)
    await expect(seeded.locator(".chip")).to_have_class(re.compile(r"\bchip--good\b"))


async def test_offline_page_shows_the_change_after_reconnecting(ui: Ui, demo_node: Node) -> None:
    alice = await ui.login("alice")
    bob = await ui.login("bob")
    await alice.open(*GROUP)
    await bob.open(*GROUP)
    message_id = await alice.send_text("ship it?")
    await expect(bob.message(message_id)).to_be_visible(timeout=bob.ms(5000))

    await bob.set_offline(True)
    await bob.expect_connection("offline")
    await update_status(demo_node, message_id, "rejected")
    missed = await alice.send_text("sent while bob was away")
    await alice.wait_status_of(message_id, "rejected", 5000)
    await settle(0.5)
    await expect(bob.message(message_id)).not_to_have_attribute("data-status", "rejected")

    await bob.set_offline(False)
    await bob.expect_connection("connected", timeout_ms=10_000)
    await bob.wait_status_of(message_id, "rejected", 5000)
    await expect(bob.message(missed)).to_be_visible(timeout=bob.ms(5000))


async def test_unknown_card_type_shows_the_fallback_and_follows_status(
    ui: Ui, demo_node: Node
) -> None:
    bob = await ui.login("bob")
    await bob.open(*GROUP)
    message_id = await send_card(demo_node, {"type": "mystery"}, "Mystery card: please reply")
    card = bob.card(message_id)
    await expect(card.root).to_be_visible(timeout=bob.ms(5000))
    await expect(card.root).to_have_class(re.compile(r"\bcard--placeholder\b"))
    await expect(card.root.locator(".card-fallback-text")).to_have_text(
        "Mystery card: please reply"
    )
    await expect(card.root.locator(".card-fallback-note")).to_have_text(
        "This card type (mystery) is not supported by this page yet."
    )
    assert await card.tone() == "open"
    await update_status(demo_node, message_id, "approved")
    await card.expect_status("approved", 2000)
    assert await card.tone() == "good"
    await update_status(demo_node, message_id, "expired")
    await card.expect_status("expired", 2000)
    assert await card.tone() == "muted"
    await expect(card.buttons).to_have_count(0)


async def test_card_pending_conflict_rollback_and_confirm(ui: Ui, demo_node: Node) -> None:
    """The shell on the real cards API: pending state while the request is out, a 409
    ``stale`` rolls back to ``current`` and names the winner, "… anyway" re-sends with
    ``confirm`` on the new base version, and the history panel lists every attempt."""
    bob = await ui.login("bob")
    await bob.open(*GROUP)
    message_id = await create_card(
        demo_node,
        "alice",
        {"type": "task@1", "title": "Order pizza", "assignees": ["bob", "carol"]},
    )
    card = await shown(bob, message_id)
    await expect(card.buttons).to_have_count(2)  # accept, decline
    assert await card.tone() == "open"

    posted: list[dict[str, Any]] = []
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hold(route: Route, request: Request) -> None:
        posted.append(json.loads(request.post_data or "{}"))
        arrived.set()
        await release.wait()  # the page shows its pending state meanwhile
        await route.continue_()

    await bob.page.route(re.compile(r"/cards/\d+/actions$"), hold)
    await card.click("accept")
    await asyncio.wait_for(arrived.wait(), 5 * time_scale())
    await expect(card.root).to_have_class(re.compile(r"\bis-pending\b"))
    await expect(card.button("accept")).to_have_class(re.compile(r"\bis-pending\b"))
    assert posted[0]["action"] == "accept" and posted[0]["base_version"] == 1
    assert posted[0]["action_id"]
    await act(demo_node, "carol", message_id, "accept")  # carol is first
    release.set()

    # 409 stale: rolled back to carol's state, who and when, and the offer to confirm.
    await card.expect_status("doing")
    await expect(card.notice).to_contain_text("Carol accepted at")
    await expect(card.notice).to_have_attribute("data-reason", "stale")
    await expect(card.root).not_to_have_class(re.compile(r"\bis-pending\b"))
    await expect(card.person("bob")).to_contain_text("Waiting")
    await card.confirm_button.click()
    await expect(card.person("bob")).to_contain_text("Accepted")
    assert posted[1]["confirm"] is True and posted[1]["base_version"] == 2
    assert posted[1]["action_id"] != posted[0]["action_id"]
    await expect(card.notice).to_be_hidden()
    await expect(card.button("accept")).to_have_count(0)  # removed once it no longer applies
    await expect(card.button("complete")).to_be_visible()

    await card.open_history()
    await expect(card.history).to_have_count(4)  # create, carol, bob refused, bob confirmed
    await expect(card.history.nth(2)).to_have_attribute("data-result", "conflict")
    await expect(card.history.nth(2)).to_contain_text("You tried to accept")
    await expect(card.history.nth(3)).to_contain_text("You accepted")
    await card.reveal()

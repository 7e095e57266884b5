"""The demo page in a real browser: login, live messages, extension changes, reconnects,
and the card framework (renderer registry, status classes, pending state, rollback and the
409 prompt, the history panel).

The cards service does not exist yet: the framework test serves ``/cards/*`` from the test
(Playwright routing) with the documented shapes; real card-type tests will talk to the
server instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from typing import Any

from playwright.async_api import Route, expect

from magpie.app import Node
from tests.support.nodes import api, time_scale
from tests.web.conftest import Ui

GROUP = ("demo-group", 2)
#: A card message's payload type in these tests (any custom content type).
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
    await asyncio.sleep(0.5 * time_scale())
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
    assert await card.tone() == "open"
    await update_status(demo_node, message_id, "approved")
    await card.expect_status("approved", 2000)
    assert await card.tone() == "good"
    await update_status(demo_node, message_id, "expired")
    await card.expect_status("expired", 2000)
    assert await card.tone() == "muted"
    await expect(card.buttons).to_have_count(0)


class FakeCards:
    """``/cards/{id}`` as the cards service will answer it (ARCHITECTURE: the 409 carries
    the winner, when, the current state and whether an override may be confirmed)."""

    def __init__(self) -> None:
        self.projection: dict[str, Any] = {
            "type": "expense",
            "status": "pending",
            "version": 1,
            "extra": {},
            "can_act": True,
            "actions": [{"action": "approve", "label": "Approve"}, "reject"],
            "unavailable_reason": "",
        }
        self.posted: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.history = [
            {
                "op_id": 1,
                "actor": {"uid": "carol"},
                "operation": "reject",
                "status_before": "pending",
                "status_after": "rejected",
                "result": "applied",
                "created_at": int(time.time() * 1000),
            },
        ]

    async def handle(self, route: Route) -> None:
        request = route.request
        if request.url.endswith("/history"):
            await route.fulfill(json=self.history)
        elif request.method == "GET":
            await route.fulfill(json=self.projection)
        else:
            await self.act(route, request.post_data_json)

    async def act(self, route: Route, body: dict[str, Any]) -> None:
        self.posted.append(body)
        await self.release.wait()  # hold the answer: the page shows its pending state
        if not body.get("confirm"):
            self.projection = {
                **self.projection,
                "status": "rejected",
                "version": 2,
                "can_act": False,
                "actions": [],
            }
            conflict = {
                "status": 409,
                "code": "conflict",
                "msg": "lost the race",
                "winner": {"uid": "carol", "action": "reject"},
                "at": int(time.time() * 1000),
                "current": self.projection,
                "can_confirm": True,
            }
            await route.fulfill(status=409, json=conflict)
            return
        self.projection = {
            **self.projection,
            "status": "approved",
            "version": 3,
            "outcome": "Approved by bob",
        }
        await route.fulfill(json={"status": 200, "projection": self.projection})


async def test_card_pending_conflict_rollback_and_confirm(ui: Ui, demo_node: Node) -> None:
    bob = await ui.login("bob")
    fake = FakeCards()
    await bob.page.route(re.compile(r"/cards/"), fake.handle)
    await bob.register_card_renderer(
        "expense",
        "const p = document.createElement('p'); p.className = 'test-body';"
        " p.textContent = `${message.content.contentObj.card.amount} EUR, ${projection.status}`;"
        " return p;",
    )
    await bob.open(*GROUP)
    message_id = await send_card(demo_node, {"type": "expense", "amount": 120}, "Expense: 120 EUR")
    card = bob.card(message_id)
    await expect(card.button("approve")).to_be_visible(timeout=bob.ms(5000))
    await expect(card.buttons).to_have_count(2)
    await expect(card.root.locator(".test-body")).to_have_text("120 EUR, pending")
    assert await card.tone() == "open"

    await card.click("approve")  # held by the fake until released
    await expect(card.root).to_have_class(re.compile(r"\bis-pending\b"))
    await expect(card.button("approve")).to_have_class(re.compile(r"\bis-pending\b"))
    assert fake.posted[0]["action"] == "approve" and fake.posted[0]["base_version"] == 1
    assert fake.posted[0]["action_id"]
    fake.release.set()

    # 409: rolled back to the winner's state; buttons removed (not greyed); prompt to confirm.
    await card.expect_status("rejected")
    assert await card.tone() == "bad"
    await expect(card.buttons).to_have_count(0)
    await expect(card.notice).to_contain_text("carol")
    await expect(card.root).not_to_have_class(re.compile(r"\bis-pending\b"))
    await card.confirm_button.click()
    await card.expect_status("approved")
    assert fake.posted[1]["confirm"] is True and fake.posted[1]["base_version"] == 2
    assert await card.tone() == "good"
    await expect(card.notice).to_be_hidden()
    await expect(card.root.locator(".card-outcome")).to_have_text("Approved by bob")

    await card.open_history()
    await expect(card.history).to_have_count(1)
    await expect(card.history.first).to_contain_text("carol")

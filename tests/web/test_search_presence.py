"""The demo page's search box and presence dots (docs/conversation.md, *Search*, *Presence*)
in real browsers: two users in two browser contexts on a node seeded like ``magpie demo``.
Screenshots land in ``artifacts/web``.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from playwright.async_api import expect

from magpie.app import Node
from tests.support.nodes import api
from tests.web.conftest import Ui
from tests.web.helpers import GROUP, alice_and_bob

#: One Chromium per module (conftest ``browser``): the tests share the module's loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

#: The page asks for presence every 8 s; a change shows within one round and some slack.
PRESENCE_MS = 20000
FLASH = re.compile(r"\bis-flash\b")
ACTIVE = re.compile(r"\bis-active\b")


async def send(node: Node, sender: str, channel: tuple[str, int], text: str) -> str:
    """A text message sent through the business API; its id."""
    payload = base64.b64encode(json.dumps({"type": 1, "content": text}).encode()).decode()
    async with api(node) as http:
        r = await http.post(
            "/message/send",
            json={
                "from_uid": sender,
                "channel_id": channel[0],
                "channel_type": channel[1],
                "payload": payload,
            },
        )
        assert r.status_code == 200, r.text
        return str(r.json()["data"]["message_id"])


async def test_search_finds_messages_and_opens_them(ui: Ui) -> None:
    node = ui.node
    in_group = await send(node, "alice", GROUP, "the quarterly rhubarb report is ready")
    # Enough later messages that the hit is not on the first history page.
    for n in range(40):
        await send(node, "carol", GROUP, f"filler {n}")
    in_direct = await send(node, "alice", ("bob", 1), "rhubarb pie recipe attached")
    alice, bob = await alice_and_bob(ui)
    box = bob.page.get_by_label("Search messages", exact=True)
    await box.fill("rhub")
    hits = bob.page.locator(".search-hit")
    await expect(hits).to_have_count(2, timeout=bob.ms(5000))
    # Newest first: the direct message, then the group's.
    assert await hits.nth(0).get_attribute("data-message-id") == in_direct
    assert await hits.nth(1).get_attribute("data-message-id") == in_group
    await expect(hits.nth(0)).to_contain_text("Alice")
    await expect(hits.nth(1)).to_contain_text("#demo-group")
    await expect(bob.page.locator(".conv-list")).to_be_hidden()
    await bob.page.screenshot(path=str(ui.artifact("results")), animations="disabled")
    # The group hit opens the group scrolled to it (older pages loaded to find it).
    await hits.nth(1).click()
    row = bob.message(in_group)
    await expect(row).to_be_visible(timeout=bob.ms(5000))
    await expect(row).to_have_class(FLASH, timeout=bob.ms(5000))
    # The direct hit opens the direct chat with alice.
    await hits.nth(0).click()
    await expect(bob.conversation("alice", 1)).to_have_class(ACTIVE, timeout=bob.ms(5000))
    await expect(bob.message(in_direct)).to_be_visible(timeout=bob.ms(5000))
    # Nothing matches: said so; an outsider's words are never found.
    await box.fill("zzyzx")
    await expect(bob.page.locator(".search-note")).to_contain_text("No messages match")
    await expect(hits).to_have_count(0)
    # alice sees her own direct message; clearing the box brings the list back.
    abox = alice.page.get_by_label("Search messages", exact=True)
    await abox.fill("recipe")
    await expect(alice.page.locator(".search-hit")).to_have_count(1, timeout=alice.ms(5000))
    await abox.press("Escape")
    await expect(alice.page.locator(".conv-list")).to_be_visible()
    await expect(alice.page.locator(".search-panel")).to_be_hidden()


async def test_presence_dots_follow_logins(ui: Ui) -> None:
    node = ui.node
    await send(node, "bob", GROUP, "bob was here")
    alice = await ui.login("alice")
    direct = alice.conversation("bob", 1)
    dot = direct.locator(".presence-dot")
    await expect(dot).to_have_attribute("data-online", "0", timeout=alice.ms(PRESENCE_MS))
    bob = await ui.login("bob")
    await expect(dot).to_have_attribute("data-online", "1", timeout=alice.ms(PRESENCE_MS))
    # In the group: bob's message shows his dot; in the direct chat the header says online.
    await alice.open(*GROUP)
    row = alice.message_with_text("bob was here")
    await expect(row.locator(".presence-dot")).to_have_attribute(
        "data-online", "1", timeout=alice.ms(PRESENCE_MS)
    )
    await alice.open("bob", 1)
    sub = alice.page.locator(".chat-sub")
    await expect(sub).to_have_text("Direct chat · Online", timeout=alice.ms(PRESENCE_MS))
    # bob sees alice online too.
    await expect(bob.conversation("alice", 1).locator(".presence-dot")).to_have_attribute(
        "data-online", "1", timeout=bob.ms(PRESENCE_MS)
    )
    await alice.page.screenshot(path=str(ui.artifact("alice-sees-bob")), animations="disabled")
    # bob leaves: alice's page follows at the next round.
    await bob.context.close()
    ui.pages.remove(bob)
    await expect(sub).to_have_text("Direct chat · Offline", timeout=alice.ms(PRESENCE_MS))
    await expect(dot).to_have_attribute("data-online", "0", timeout=alice.ms(PRESENCE_MS))

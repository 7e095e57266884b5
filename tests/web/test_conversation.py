"""The conversation features of the demo page (docs/conversation.md) in real browsers: two
users in two browser contexts (two SDK clients) on a node seeded like ``magpie demo`` (alice
owns ``demo-group``). Markdown rendered safely, reactions, replies, edit and revoke, typing,
@mentions and "@you", read receipts, server-synced unread counts across fresh browsers,
images and files (button, drop, paste), message links and the phone-width layout.
Screenshots land in ``artifacts/web``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.async_api import expect

from magpie.app import Node
from tests.support.nodes import api, settle
from tests.web.conftest import Ui
from tests.web.helpers import GROUP, alice_and_bob

#: One Chromium per module (conftest ``browser``): the tests share the module's loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

PHONE = {"width": 390, "height": 844}


async def stored_payload(node: Node, message_id: str, channel: tuple[str, int] = GROUP) -> Any:
    """The payload of a message as the server stored it (business API history)."""
    async with api(node) as http:
        r = await http.post(
            "/channel/messagesync",
            json={
                "login_uid": "alice",
                "channel_id": channel[0],
                "channel_type": channel[1],
                "start_message_seq": 0,
                "end_message_seq": 0,
                "limit": 100,
                "pull_mode": 0,
            },
        )
        assert r.status_code == 200, r.text
        for m in r.json()["messages"]:
            if str(m["message_idstr"]) == message_id:
                return json.loads(base64.b64decode(m["payload"]))
    raise AssertionError(f"message {message_id} not in the history")


async def test_markdown_is_rendered_and_sanitised(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    hostile = (
        "**bold** _it_ `code` https://example.com/a?b=1 [click](javascript:alert(1)) "
        '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script>'
        "\n\n![pixel](https://tracker.example/p.png)"
    )
    await alice.composer.fill(hostile)
    message_id = await alice.send_composed()
    bubble = bob.bubble(message_id)
    await expect(bubble).to_be_visible(timeout=bob.ms(5000))
    await expect(bubble.locator("strong")).to_have_text("bold")
    await expect(bubble.locator("em")).to_have_text("it")
    await expect(bubble.locator("code")).to_have_text("code")
    # A bare URL is a link that opens in a new tab, without opener or referrer.
    link = bubble.locator('a[href="https://example.com/a?b=1"]')
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b.*\bnoreferrer\b"))
    # Typed HTML is text; script URLs lose their href; Markdown images are not fetched.
    await expect(bubble).to_contain_text('<img src=x onerror="window.__pwned=1">')
    await expect(bubble).to_contain_text("<script>")
    for page in (alice, bob):
        assert await page.bubble(message_id).locator("img, script").count() == 0
        hrefs = (
            await page.bubble(message_id)
            .locator("a")
            .evaluate_all("els => els.map(el => el.getAttribute('href'))")
        )
        assert not any(h and h.lower().startswith("javascript") for h in hrefs), hrefs
        assert await page.page.evaluate("window.__pwned") is None
    await expect(bubble).to_contain_text("pixel")
    # The stored payload is the text as typed (rendering is the reader's business).
    assert (await stored_payload(ui.node, message_id))["content"] == hostile


async def test_reactions_live_toggle_and_fresh_page(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    await alice.composer.fill("lunch at noon?")
    message_id = await alice.send_composed()
    await expect(bob.message(message_id)).to_be_visible(timeout=bob.ms(5000))

    await bob.react(message_id, "👍")
    chip = alice.reaction(message_id, "👍")
    await expect(chip).to_have_attribute("data-count", "1", timeout=alice.ms(5000))
    await expect(chip).to_have_attribute("data-users", "bob")
    await expect(chip).to_have_attribute("aria-pressed", "false")
    await expect(bob.reaction(message_id, "👍")).to_have_attribute("aria-pressed", "true")
    # alice clicks the chip: now two; and a second emoji from her.
    await chip.click()
    await expect(bob.reaction(message_id, "👍")).to_have_attribute(
        "data-count", "2", timeout=bob.ms(5000)
    )
    await alice.react(message_id, "🎉")
    await expect(bob.reaction(message_id, "🎉")).to_have_attribute(
        "data-users", "alice", timeout=bob.ms(5000)
    )
    # bob takes his back (a click on his own chip removes it).
    await bob.reaction(message_id, "👍").click()
    await expect(alice.reaction(message_id, "👍")).to_have_attribute(
        "data-users", "alice", timeout=alice.ms(5000)
    )
    await expect(alice.reaction(message_id, "👍")).to_have_attribute("aria-pressed", "true")
    # A fresh browser shows the same state from the history's summaries.
    carol = await ui.login("carol")
    await carol.open(*GROUP)
    await expect(carol.reaction(message_id, "👍")).to_have_attribute("data-count", "1")
    await expect(carol.reaction(message_id, "🎉")).to_have_attribute("data-users", "alice")
    await expect(carol.message(message_id).locator(".reaction")).to_have_count(2)
    await bob.message(message_id).scroll_into_view_if_needed()


async def test_reactions_missed_offline_arrive_after_reconnect(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    await alice.composer.fill("who is in?")
    message_id = await alice.send_composed()
    await expect(bob.message(message_id)).to_be_visible(timeout=bob.ms(5000))
    await bob.set_offline(True)
    await bob.expect_connection("offline")
    await alice.react(message_id, "🙏")
    await expect(alice.reaction(message_id, "🙏")).to_have_attribute("data-count", "1")
    await settle(0.3)
    await expect(bob.reaction(message_id, "🙏")).to_have_count(0)
    await bob.set_offline(False)
    await bob.expect_connection("connected")
    await expect(bob.reaction(message_id, "🙏")).to_have_attribute(
        "data-users", "alice", timeout=bob.ms(5000)
    )


async def test_reply_quotes_and_follows_the_original(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    await alice.composer.fill("Can someone review PR 42?")
    original = await alice.send_composed()
    await expect(bob.message(original)).to_be_visible(timeout=bob.ms(5000))

    await bob.action(original, "reply")
    await expect(bob.page.locator(".composer-banner")).to_contain_text("Replying to Alice")
    await bob.composer.fill("On it")
    reply = await bob.send_composed()
    await expect(bob.page.locator(".composer-banner")).to_be_hidden()
    for page in (alice, bob):
        preview = page.reply_preview(reply)
        await expect(preview).to_be_visible(timeout=page.ms(5000))
        await expect(preview).to_have_attribute("data-reply-to", original)
        await expect(preview).to_contain_text("Can someone review PR 42?")
    payload = await stored_payload(ui.node, reply)
    assert payload["reply"]["message_id"] == original
    assert payload["reply"]["from_uid"] == "alice"
    # A click on the preview brings the original into view.
    await alice.reply_preview(reply).click()
    await expect(alice.message(original)).to_have_class(re.compile(r"\bis-flash\b"))
    # The original is edited, then withdrawn: the preview follows.
    await alice.action(original, "edit")
    await alice.composer.fill("Can someone review PR 43?")
    await alice.composer.press("Enter")
    await expect(bob.reply_preview(reply)).to_contain_text("PR 43", timeout=bob.ms(5000))
    alice.page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await alice.action(original, "revoke")
    await expect(bob.reply_preview(reply)).to_have_attribute(
        "data-revoked", "1", timeout=bob.ms(5000)
    )
    await expect(bob.reply_preview(reply)).to_contain_text("Message withdrawn")


async def test_edit_and_revoke_own_and_admin(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    await bob.composer.fill("meeting at 3")
    mine = await bob.send_composed()
    await expect(alice.message(mine)).to_be_visible(timeout=alice.ms(5000))
    # bob may edit and withdraw his own; alice (the group's owner) may withdraw but not edit.
    assert await bob.actions_offered(mine) == ["pick", "reply", "edit", "revoke", "link"]
    assert await alice.actions_offered(mine) == ["pick", "reply", "revoke", "link"]

    await bob.action(mine, "edit")
    await expect(bob.composer).to_have_value("meeting at 3")
    await bob.composer.fill("meeting at **4**")
    await bob.composer.press("Enter")
    await expect(alice.bubble(mine).locator("strong")).to_have_text("4", timeout=alice.ms(5000))
    await expect(alice.message(mine).locator(".msg-note--edited")).to_be_visible()
    await expect(bob.message(mine).locator(".msg-note--edited")).to_be_visible()

    # bob cannot withdraw alice's message (not offered), alice withdraws bob's as admin.
    await alice.composer.fill("agenda follows")
    hers = await alice.send_composed()
    await expect(bob.message(hers)).to_be_visible(timeout=bob.ms(5000))
    assert "revoke" not in await bob.actions_offered(hers)
    alice.page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await alice.action(mine, "revoke")
    for page, by in ((alice, "You"), (bob, "Alice")):
        await expect(page.message(mine)).to_have_attribute(
            "data-revoked", "1", timeout=page.ms(5000)
        )
        await expect(page.bubble(mine)).to_have_text(f"Message withdrawn by {by}")
    assert await bob.actions_offered(mine) == []


async def test_typing_indicator_shows_and_expires(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    await bob.composer.press_sequentially("hel", delay=30)
    await expect(alice.typing).to_have_attribute("data-who", "Bob", timeout=alice.ms(3000))
    await expect(alice.typing).to_contain_text("Bob is typing")
    await expect(bob.typing).to_have_attribute("data-who", "")  # not for oneself
    await bob.page.screenshot(path=str(ui.artifact("typing-alice-sees")), animations="disabled")
    # The typist's message ends it at once.
    await bob.composer.press_sequentially("lo", delay=30)
    await bob.send_composed()
    await expect(alice.typing).to_have_attribute("data-who", "", timeout=alice.ms(2000))
    # A notice alone expires (typing_expire_ms: 5 s).
    await settle(2.6)  # past the page's own interval between notices
    await bob.composer.press_sequentially("again", delay=30)
    await expect(alice.typing).to_have_attribute("data-who", "Bob", timeout=alice.ms(3000))
    await expect(alice.typing).to_have_attribute("data-who", "", timeout=alice.ms(8000))


async def test_mention_completion_and_highlight(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    carol = await ui.login("carol")
    await carol.open(*GROUP)
    await bob.composer.press_sequentially("ping @ca", delay=20)
    items = bob.page.locator(".mention-list .mention-item")
    await expect(items).to_have_count(1)
    await expect(items.first).to_have_attribute("data-uid", "carol")
    await bob.composer.press("Enter")  # picks the suggestion
    await expect(bob.composer).to_have_value("ping @Carol ")
    await bob.composer.press_sequentially("please look", delay=10)
    message_id = await bob.send_composed()
    payload = await stored_payload(ui.node, message_id)
    assert payload["mention"] == {"uids": ["carol"]}
    await expect(carol.message(message_id)).to_have_class(
        re.compile(r"\bmsg--mentions-me\b"), timeout=carol.ms(5000)
    )
    await expect(alice.message(message_id)).not_to_have_class(re.compile(r"\bmsg--mentions-me\b"))
    # "@all" is offered to the group's owner only.
    await bob.composer.fill("")
    await bob.composer.press_sequentially("@", delay=20)
    assert "all" not in await items.evaluate_all("els => els.map(el => el.dataset.uid)")
    await bob.composer.press("Escape")
    await alice.composer.press_sequentially("@", delay=20)
    offered = await alice.page.locator(".mention-list .mention-item").evaluate_all(
        "els => els.map(el => el.dataset.uid)"
    )
    assert offered == ["all", "bob", "carol", "dave"], offered


async def test_copy_link_opens_the_message_in_another_browser(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    await alice.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await alice.composer.fill("the release notes are here")
    message_id = await alice.send_composed()
    await alice.action(message_id, "link")
    await expect(alice.page.locator(".toast")).to_have_text("Link copied")
    link = await alice.page.evaluate("navigator.clipboard.readText()")
    assert link.endswith(f"#/m/2/demo-group/{message_id}"), link
    await bob.page.goto(link.replace(ui.base_url, ""))
    await bob.expect_connection("connected")
    await expect(bob.message(message_id)).to_have_class(
        re.compile(r"\bis-flash\b"), timeout=bob.ms(5000)
    )


async def test_phone_width_layout(ui: Ui) -> None:
    alice = await ui.login("alice")
    bob = await ui.login("bob", viewport=PHONE, has_touch=True)
    page = bob.page
    await expect(page.locator(".sidebar")).to_be_visible()
    await expect(page.locator(".chat")).to_be_hidden()
    await bob.open(*GROUP)
    await expect(page.locator(".sidebar")).to_be_hidden()
    await expect(page.locator(".composer-input")).to_be_visible()
    await alice.open(*GROUP)
    await alice.composer.fill("A long line that has to wrap on a phone: " + "word " * 30)
    message_id = await alice.send_composed()
    row = bob.message(message_id)
    await expect(row).to_be_visible(timeout=bob.ms(5000))
    # Nothing is wider than the screen.
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], width
    box = await row.locator(".msg-bubble").bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    # A tap shows the action bar (no hover on a touch screen); react from it.
    await row.locator(".msg-bubble").tap()
    await expect(row).to_have_class(re.compile(r"\bis-selected\b"))
    await row.locator('[data-action="pick"]').tap()
    await row.locator('.emoji-option[data-emoji="❤️"]').tap()
    await expect(alice.reaction(message_id, "❤️")).to_have_attribute(
        "data-users", "bob", timeout=alice.ms(5000)
    )
    await page.screenshot(path=str(ui.artifact("phone-chat")), animations="disabled")
    # Back to the list.
    await page.locator(".chat-back").tap()
    await expect(page.locator(".sidebar")).to_be_visible()
    await expect(page.locator(".chat")).to_be_hidden()


def png(width: int, height: int) -> bytes:
    """A real PNG of the given size (made with Pillow)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (79, 70, 229)).save(out, format="PNG")
    return out.getvalue()


async def test_read_by_reaches_the_sender_live(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    await alice.composer.fill("status update: shipped")
    message_id = await alice.send_composed()
    # bob has the group open: his page reports the read, alice's count follows live.
    readers = alice.message(message_id).locator(".msg-readers")
    await expect(readers).to_have_attribute("data-readed", "1", timeout=alice.ms(8000))
    await expect(readers).to_have_text("Read by 1")
    carol = await ui.login("carol")
    await carol.open(*GROUP)
    await expect(readers).to_have_attribute("data-readed", "2", timeout=alice.ms(8000))
    # Only the sender sees it; the list of readers on a click.
    await expect(bob.message(message_id).locator(".msg-readers")).to_have_count(0)
    await readers.click()
    pop = alice.message(message_id).locator('[data-testid="readers"]')
    await expect(pop).to_have_attribute("data-uids", "bob,carol")
    await expect(pop).to_have_text("Read by Bob, Carol")
    await pop.scroll_into_view_if_needed()


async def test_unread_counts_are_the_servers_in_every_browser(ui: Ui) -> None:
    """bob in several browsers, one after the other. Each demo login issues a new web token
    and the older one stops working for HTTP (one token per user and device kind), so the
    newest browser acts and the older ones watch: their badges follow the server's CMDs."""
    alice = await ui.login("alice")
    await alice.open(*GROUP)
    bob_a = await ui.login("bob")
    await bob_a.open(*GROUP)
    await bob_a.open("alice", 1)  # the group is read up to now, and no longer open
    group_a = bob_a.conversation(*GROUP)
    await expect(group_a).to_have_attribute("data-unread", "0")
    bob_b = await ui.login("bob")  # a fresh browser: the server says all is read
    group_b = bob_b.conversation(*GROUP)
    await expect(group_b).to_have_attribute("data-unread", "0")
    await expect(bob_a.page.locator('[data-testid="session-replaced"]')).to_have_count(0)

    for text in ("first news", "second news"):
        await alice.composer.fill(text)
        await alice.send_composed()
    await expect(group_a).to_have_attribute("data-unread", "2", timeout=bob_a.ms(5000))
    await expect(group_b).to_have_attribute("data-unread", "2", timeout=bob_b.ms(5000))
    bob_c = await ui.login("bob")
    group_c = bob_c.conversation(*GROUP)
    await expect(group_c).to_have_attribute("data-unread", "2")
    # Reading in the newest browser clears the badge in the older ones, live (CMD
    # unreadClear), and a fresh browser agrees.
    await bob_c.open(*GROUP)
    await expect(group_c).to_have_attribute("data-unread", "0")
    await expect(group_a).to_have_attribute("data-unread", "0", timeout=bob_a.ms(5000))
    await expect(group_b).to_have_attribute("data-unread", "0", timeout=bob_b.ms(5000))
    bob_d = await ui.login("bob")
    await expect(bob_d.conversation(*GROUP)).to_have_attribute("data-unread", "0")
    # An older browser that needs the API says it must log in again (its token is gone).
    await bob_a.open(*GROUP)
    await expect(bob_a.page.locator('[data-testid="session-replaced"]')).to_be_visible()
    await bob_a.expect_connection("replaced")


async def test_mention_shows_at_you_until_read(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    carol_a = await ui.login("carol")  # logged in, the group not open
    await bob.composer.press_sequentially("@Car", delay=20)
    await bob.composer.press("Enter")
    await bob.composer.press_sequentially("can you check the numbers?", delay=5)
    await bob.send_composed()
    group_a = carol_a.conversation(*GROUP)
    await expect(group_a).to_have_attribute("data-mentioned", "1", timeout=carol_a.ms(5000))
    await expect(group_a.locator(".conv-mention")).to_have_text("@you")
    await expect(alice.conversation(*GROUP)).to_have_attribute("data-mentioned", "0")
    await carol_a.page.screenshot(path=str(ui.artifact("at-you")), animations="disabled")
    carol_b = await ui.login("carol")  # a fresh browser has it from the server
    group_b = carol_b.conversation(*GROUP)
    await expect(group_b).to_have_attribute("data-mentioned", "1", timeout=carol_b.ms(5000))
    # Opening the conversation marks the reminder done: a fresh browser shows no "@you".
    await carol_b.open(*GROUP)
    await expect(group_b).to_have_attribute("data-mentioned", "0", timeout=carol_b.ms(5000))
    carol_c = await ui.login("carol")
    await expect(carol_c.conversation(*GROUP)).to_be_visible()
    await expect(carol_c.conversation(*GROUP)).to_have_attribute("data-mentioned", "0")
    # "@all" from the group's owner reaches everybody.
    await alice.composer.press_sequentially("@al", delay=20)
    await expect(alice.page.locator(".mention-list .mention-item").first).to_have_attribute(
        "data-uid", "all"
    )
    await alice.composer.press("Enter")
    await alice.composer.press_sequentially("standup in 5", delay=5)
    all_id = await alice.send_composed()
    assert (await stored_payload(ui.node, all_id))["mention"] == {"all": 1}
    await expect(carol_c.conversation(*GROUP).locator(".conv-mention")).to_have_text(
        "@all", timeout=carol_c.ms(5000)
    )


async def test_upload_image_button_drop_and_paste(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)
    # The button: an image, shown inline to both. The row appears only once the page has
    # read the image's size, so wait for it before reading the newest row (until then
    # the newest own row is an earlier message of bob's).
    before = await bob.rows.count()
    await bob.page.locator(".composer-file-input").set_input_files(
        files=[{"name": "chart.png", "mimeType": "image/png", "buffer": png(40, 30)}]
    )
    await expect(bob.rows).to_have_count(before + 1, timeout=bob.ms())
    mine = bob.page.locator(".msg-list > li.msg.msg--mine").last
    await expect(mine.locator("img.msg-image")).to_have_count(1, timeout=bob.ms())
    await expect(mine).to_have_attribute("data-delivery", "sent", timeout=bob.ms())
    message_id = await mine.get_attribute("data-message-id")
    assert message_id and message_id.isdigit(), message_id
    image = alice.bubble(message_id).locator("img.msg-image")
    await expect(image).to_have_attribute("data-loaded", "1", timeout=alice.ms(5000))
    assert await image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [40, 30]
    assert (await image.get_attribute("src") or "").startswith("blob:")
    payload = await stored_payload(ui.node, message_id)
    assert payload["type"] == 2 and payload["url"].startswith("/file/"), payload
    assert (payload["width"], payload["height"], payload["name"]) == (40, 30, "chart.png")
    # The file itself answers only with a member's token.
    async with httpx.AsyncClient(base_url=ui.base_url) as http:
        assert (await http.get(payload["url"])).status_code in (401, 403, 404)

    # A file dropped on the chat: a file message with its name and size.
    await bob.page.evaluate(
        """() => {
            const dt = new DataTransfer();
            dt.items.add(new File(['hello, file'], 'notes.txt', {type: 'text/plain'}));
            const target = document.querySelector('.chat');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                target.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true,
                    cancelable: true}));
            }
        }"""
    )
    dropped = alice.message_with_text("notes.txt")
    await expect(dropped.locator(".msg-file-name")).to_have_text(
        "notes.txt", timeout=alice.ms(5000)
    )
    await expect(dropped.locator(".msg-file-size")).to_have_text("11 B")
    # An image pasted into the message box.
    await bob.composer.focus()
    await bob.page.evaluate(
        """async (b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'pasted.png', {type: 'image/png'}));
            document.querySelector('.composer-input').dispatchEvent(
                new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
        }""",
        base64.b64encode(png(12, 20)).decode(),
    )
    pasted = alice.page.locator('.msg-list img.msg-image[alt="pasted.png"]')
    await expect(pasted).to_have_attribute("data-loaded", "1", timeout=alice.ms(5000))
    await pasted.scroll_into_view_if_needed()

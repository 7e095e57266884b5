"""Page objects for the browser tests: what a person sees and does on the demo page.

Selectors follow the page's data attributes (``data-status``, ``data-message-id`` …), so the
tests read like the UI and survive restyling. Every wait is scaled by ``MAGPIE_TIME_SCALE``.
Card tests use :class:`CardHandle` (``page.card(message_id)``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.async_api import BrowserContext, Locator, Page, expect

#: Default wait in ms (× MAGPIE_TIME_SCALE).
WAIT_MS = 10_000


class DemoPage:
    """One browser context logged in as ``uid``."""

    def __init__(self, context: BrowserContext, page: Page, uid: str, scale: float) -> None:
        self.context = context
        self.page = page
        self.uid = uid
        self.scale = scale
        self.page_errors: list[str] = []
        self.console: list[str] = []
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))

    def ms(self, ms: float = WAIT_MS) -> float:
        """``ms`` scaled for slow machines."""
        return ms * self.scale

    # --- login and connection ------------------------------------------------------------

    async def login(self, *, wait_connected: bool = True) -> None:
        """Open the page and pick ``uid`` on the demo login screen."""
        await self.page.goto("/")
        await self.page.locator(f'.login-user[data-uid="{self.uid}"]').click()
        await expect(self.page.locator(".me-name")).to_have_attribute(
            "data-uid", self.uid, timeout=self.ms()
        )
        if wait_connected:
            await self.expect_connection("connected")

    @property
    def connection(self) -> Locator:
        """The connection indicator."""
        return self.page.locator('[data-testid="connection"]')

    async def expect_connection(self, status: str, timeout_ms: float = WAIT_MS) -> None:
        """Wait until the indicator shows ``status`` (connected, offline, reconnecting …)."""
        await expect(self.connection).to_have_attribute(
            "data-status", status, timeout=self.ms(timeout_ms)
        )

    async def set_offline(self, offline: bool) -> None:
        """Cut or restore this context's network (the browser fires offline/online)."""
        await self.context.set_offline(offline)

    # --- conversations -------------------------------------------------------------------

    def conversation(self, channel_id: str, channel_type: int) -> Locator:
        """The conversation list entry of a channel (``data-unread`` has its unread count)."""
        return self.page.locator(f'.conv-item[data-channel="{channel_id}-{channel_type}"]')

    async def open(self, channel_id: str, channel_type: int) -> None:
        """Open a conversation and wait until its history is shown."""
        await self.conversation(channel_id, channel_type).click()
        await expect(self.conversation(channel_id, channel_type)).to_have_class(
            re.compile(r"\bis-active\b"), timeout=self.ms()
        )
        await self.page.wait_for_function(
            "key => window.magpie && window.magpie.cache.channels.get(key)?.loaded === true",
            arg=f"{channel_id}-{channel_type}",
            timeout=self.ms(),
        )

    # --- messages ------------------------------------------------------------------------

    @property
    def rows(self) -> Locator:
        """Every message element of the open channel."""
        return self.page.locator(".msg-list > li.msg")

    def message(self, message_id: str) -> Locator:
        """The element of one message, by id (a decimal string)."""
        return self.page.locator(f'.msg-list > li.msg[data-message-id="{message_id}"]')

    def message_with_text(self, text: str) -> Locator:
        """The element of the message showing ``text``."""
        return self.rows.filter(has=self.page.locator(".msg-bubble", has_text=text))

    async def send_text(self, text: str) -> str:
        """Type and send ``text`` in the open channel; returns its message id (after the
        SENDACK)."""
        box = self.page.locator(".composer-input")
        await box.fill(text)
        await box.press("Enter")
        row = self.message_with_text(text)
        await expect(row).to_have_attribute("data-delivery", "sent", timeout=self.ms())
        message_id = await row.get_attribute("data-message-id")
        assert message_id and message_id.isdigit(), message_id
        return message_id

    async def wait_status_of(self, message_id: str, status: str, timeout_ms: float) -> None:
        """Wait (polling every 20 ms) until the message element shows extension ``status``."""
        await self.page.wait_for_function(
            """([id, status]) => {
                const el = document.querySelector(`.msg-list > li.msg[data-message-id="${id}"]`);
                return el !== null && el.dataset.status === status;
            }""",
            arg=[message_id, status],
            polling=20,
            timeout=self.ms(timeout_ms),
        )

    async def mark(self, locator: Locator, name: str) -> None:
        """Tag a DOM node with a JS property (survives only if the node is not replaced)."""
        await locator.evaluate("(el, name) => { el[name] = true; }", name)

    async def still_marked(self, locator: Locator, name: str) -> bool:
        """Whether the node matched now is the one tagged by :meth:`mark`."""
        return bool(await locator.evaluate("(el, name) => el[name] === true", name))

    # --- conversation features (docs/conversation.md) -------------------------------------

    async def action(self, message_id: str, name: str) -> None:
        """Hover a message and press ``name`` in its action bar (react, reply, edit, revoke,
        link; ``pick`` opens the emoji row)."""
        row = self.message(message_id)
        await row.scroll_into_view_if_needed()
        await row.hover()
        await row.locator(f'.msg-actions [data-action="{name}"]').click()

    async def actions_offered(self, message_id: str) -> list[str]:
        """The actions the bar of a message offers (visible buttons), after hovering it."""
        row = self.message(message_id)
        await row.hover()
        return list(
            await row.locator(".msg-actions .msg-action:not([hidden])").evaluate_all(
                "els => els.map(el => el.dataset.action)"
            )
        )

    async def react(self, message_id: str, emoji: str) -> None:
        """Add ``emoji`` through the action bar's emoji row."""
        await self.action(message_id, "pick")
        await self.message(message_id).locator(f'.emoji-option[data-emoji="{emoji}"]').click()

    def reaction(self, message_id: str, emoji: str) -> Locator:
        """The reaction chip of ``emoji`` under a message (``data-count``, ``data-users``,
        ``aria-pressed`` for the viewer's own)."""
        return self.message(message_id).locator(f'.reaction[data-emoji="{emoji}"]')

    def bubble(self, message_id: str) -> Locator:
        """The bubble of a message (Markdown text, an image or a file)."""
        return self.message(message_id).locator(".msg-bubble")

    def reply_preview(self, message_id: str) -> Locator:
        """The quoted message shown above a reply (``data-reply-to``, ``data-revoked``)."""
        return self.message(message_id).locator(".msg-reply")

    @property
    def composer(self) -> Locator:
        """The message box."""
        return self.page.locator(".composer-input")

    @property
    def typing(self) -> Locator:
        """The typing line above the composer (``data-who``: the names shown)."""
        return self.page.locator('[data-testid="typing"]')

    async def send_composed(self) -> str:
        """Press Enter in the composer and return the id of the message that appears as
        the newest own message, once acknowledged."""
        before = await self.rows.count()
        await self.composer.press("Enter")
        mine = self.page.locator(".msg-list > li.msg.msg--mine")
        row = mine.last
        await expect(self.rows).to_have_count(before + 1, timeout=self.ms())
        await expect(row).to_have_attribute("data-delivery", "sent", timeout=self.ms())
        message_id = await row.get_attribute("data-message-id")
        assert message_id and message_id.isdigit(), message_id
        return message_id

    # --- cards ---------------------------------------------------------------------------

    def card(self, message_id: str) -> CardHandle:
        """The card shown for a card message."""
        return CardHandle(self, self.page.locator(f'.card[data-card-for="{message_id}"]'))

    def card_titled(self, title: str) -> CardHandle:
        """The card whose header shows ``title``."""
        return CardHandle(
            self,
            self.page.locator(".card").filter(
                has=self.page.locator(".card-title", has_text=re.compile(f"^{re.escape(title)}$"))
            ),
        )

    async def new_card(self, kind: str) -> Locator:
        """Open the composer's "New card" menu, pick ``kind``; returns the form dialog."""
        await self.page.locator(".composer-new").click()
        await self.page.locator(f'.new-card-item[data-card-kind="{kind}"]').click()
        dialog = self.page.locator("dialog.card-dialog[open]")
        await expect(dialog).to_be_visible(timeout=self.ms())
        return dialog

    async def register_card_renderer(self, card_type: str, body_js: str) -> None:
        """Register a card renderer from JS: ``body_js`` is the body of
        ``(message, projection, ui) => Element``."""
        await self.page.evaluate(
            f"() => {{ Magpie.registerCard({json.dumps(card_type)}, "
            f"(message, projection, ui) => {{ {body_js} }}); }}"
        )


class CardHandle:
    """One card: its status, buttons, conflict notice and history panel."""

    def __init__(self, owner: DemoPage, root: Locator) -> None:
        self.owner = owner
        self.root = root

    def button(self, action: str) -> Locator:
        """The action button ``action`` (absent when the viewer cannot act)."""
        return self.root.locator(f'.card-actions button[data-action="{action}"]')

    def doc_button(self, action: str) -> Locator:
        """A card document's button for ``action`` (in the card's body, docs/cards.md §10)."""
        return self.root.locator(f'.card-document button.doc-button[data-action="{action}"]')

    def doc_input(self, name: str) -> Locator:
        """A card document's input element ``name`` (its label or fieldset)."""
        return self.root.locator(f'.card-document .doc-input[data-name="{name}"]')

    @property
    def ephemeral(self) -> Locator:
        """The note only the actor sees (an ephemeral answer, docs/cards.md §13)."""
        return self.root.locator(".card-ephemeral")

    @property
    def buttons(self) -> Locator:
        """Every action button shown."""
        return self.root.locator(".card-actions button")

    @property
    def notice(self) -> Locator:
        """The conflict / error notice."""
        return self.root.locator(".card-notice")

    @property
    def confirm_button(self) -> Locator:
        """The notice's "… anyway" button (409 with can_confirm)."""
        return self.root.locator(".card-notice button[data-confirm]")

    @property
    def history(self) -> Locator:
        """The rows of the history panel."""
        return self.root.locator(".card-history-row")

    async def expect_status(self, status: str, timeout_ms: float = WAIT_MS) -> None:
        """Wait until the card shows ``status``."""
        await expect(self.root).to_have_attribute(
            "data-status", status, timeout=self.owner.ms(timeout_ms)
        )

    async def tone(self) -> str:
        """The colour family: open, good (green), bad (red), muted (grey), neutral."""
        classes = (await self.root.get_attribute("class")) or ""
        tones = [c.removeprefix("card--tone-") for c in classes.split() if "--tone-" in c]
        assert len(tones) == 1, classes
        return tones[0]

    async def click(self, action: str) -> None:
        """Press an action button."""
        await self.button(action).click()

    async def open_history(self) -> None:
        """Show the history panel."""
        await self.root.locator(".card-history-toggle").click()

    async def state(self) -> dict[str, Any]:
        """The card's data attributes (status, version, canAct, cardType)."""
        return dict(await self.root.evaluate("el => ({...el.dataset})"))

    @property
    def outcome(self) -> Locator:
        """The line that replaces the buttons (who decided and when, why not ...)."""
        return self.root.locator(".card-outcome")

    def person(self, uid: str) -> Locator:
        """An approver's / assignee's row (``data-decision`` on approvers)."""
        return self.root.locator(f'.person-row[data-uid="{uid}"]')

    def option(self, index: int) -> Locator:
        """A vote option (``data-tally``: its count when visible, ``data-mine``)."""
        return self.root.locator(f'.vote-option[data-option="{index}"]')

    async def tallies(self) -> list[str]:
        """The shown tally of every vote option ('' while results are hidden)."""
        return list(
            await self.root.locator(".vote-option").evaluate_all(
                "els => els.map(el => el.dataset.tally)"
            )
        )

    async def expect_tallies(self, tallies: list[int], timeout_ms: float = WAIT_MS) -> None:
        """Wait until the vote shows exactly ``tallies``."""
        want = [str(n) for n in tallies]
        options = self.root.locator(".vote-option")
        await expect(options).to_have_count(len(want), timeout=self.owner.ms(timeout_ms))
        for i, n in enumerate(want):
            await expect(options.nth(i)).to_have_attribute(
                "data-tally", n, timeout=self.owner.ms(timeout_ms)
            )

    async def reveal(self) -> None:
        """Scroll the card to the middle of the message list (for the screenshots)."""
        await self.root.evaluate("el => el.scrollIntoView({block: 'center'})")

    async def expect_no_buttons(self, timeout_ms: float = WAIT_MS) -> None:
        """Wait until the action bar is gone (removed, not greyed)."""
        await expect(self.buttons).to_have_count(0, timeout=self.owner.ms(timeout_ms))

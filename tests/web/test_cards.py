"""The four card types in real browsers against the real cards API (docs/cards.md).

Every page is its own browser context (its own SDK client) on a real node seeded like
``magpie demo``; cards are created through ``POST /cards`` (the business key naming the
creator, or the page's own "New card" form) and changed by clicking in the pages or through
the API. Screenshots land in ``artifacts/web`` (conftest).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest
from playwright.async_api import Request, Route, expect

from magpie.app import Node
from tests.support.nodes import settle, time_scale
from tests.web.conftest import Ui
from tests.web.helpers import CLOCK, GROUP, act, alice_and_bob, create_card, open_group, shown

#: One Chromium per module (conftest ``browser``): the tests share the module's loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_approval_turns_green_on_the_creators_page_within_1s(ui: Ui, demo_node: Node) -> None:
    alice, bob = await alice_and_bob(ui)
    message_id = await create_card(
        demo_node,
        "alice",
        {"type": "approval@1", "title": "New laptop", "approvers": ["bob", "carol"]},
    )
    mine, theirs = await shown(alice, message_id), await shown(bob, message_id)
    # The creator may only withdraw; an approver approves or rejects (with a comment).
    await expect(mine.buttons).to_have_count(1)
    await expect(mine.button("withdraw")).to_be_visible()
    await expect(theirs.buttons).to_have_count(2)
    assert await mine.tone() == "open"
    await expect(mine.person("bob")).to_have_attribute("data-decision", "waiting")

    await theirs.root.locator(".approval-comment").fill("go for it")
    started = time.monotonic()
    await theirs.click("approve")
    await alice.page.wait_for_function(
        """id => {
            const el = document.querySelector(`.card[data-card-for="${id}"]`);
            return el && el.dataset.status === 'approved'
                && el.querySelectorAll('.card-actions button').length === 0;
        }""",
        arg=message_id,
        polling=20,
        timeout=alice.ms(5000),
    )
    elapsed = time.monotonic() - started
    print(
        f"approval shown green without buttons on the creator's page after {elapsed * 1000:.0f} ms"
    )
    assert elapsed < 1.0 * time_scale(), f"took {elapsed:.3f}s"
    assert await mine.tone() == "good"
    await expect(mine.outcome).to_have_text(re.compile(rf"^Approved by Bob at {CLOCK}"))
    await expect(mine.outcome).to_contain_text("go for it")
    await expect(mine.person("bob")).to_have_attribute("data-decision", "approved")
    await expect(mine.person("bob")).to_contain_text("go for it")
    # The approver's own card settled the same way.
    await theirs.expect_status("approved")
    await theirs.expect_no_buttons()
    await expect(theirs.outcome).to_have_text(re.compile(rf"^Approved by you at {CLOCK}"))
    # The history panel (GET /cards/{id}/ops with the user token): creation, then bob.
    await mine.open_history()
    await expect(mine.history).to_have_count(2)
    await expect(mine.history.nth(1)).to_contain_text("Bob")
    await expect(mine.history.nth(1)).to_contain_text("approved")
    await expect(mine.history.nth(1)).to_contain_text("Pending → Approved")
    await mine.reveal()
    await theirs.reveal()


async def test_vote_tallies_update_live_in_three_browsers(ui: Ui, demo_node: Node) -> None:
    alice, bob, carol = [await ui.login(uid) for uid in ("alice", "bob", "carol")]
    await open_group(alice, bob, carol)
    message_id = await create_card(
        demo_node,
        "alice",
        {"type": "vote@1", "title": "Where to eat", "options": ["Thai", "Pizza", "Tacos"]},
    )
    cards = [await shown(p, message_id) for p in (alice, bob, carol)]
    for card in cards:
        await card.expect_tallies([0, 0, 0])
    fill = cards[2].option(0).locator(".vote-fill")
    await carol.mark(fill, "__fill")

    await asyncio.gather(cards[0].option(0).click(), cards[1].option(1).click())
    await cards[2].option(0).click()
    for card in cards:
        await card.expect_tallies([2, 1, 0], timeout_ms=3000)
    # The bar was patched, not rebuilt: its width glides (a CSS transition on width).
    assert await carol.still_marked(fill, "__fill")
    assert "width" in await fill.evaluate("el => getComputedStyle(el).transitionProperty")
    await expect(fill).to_have_attribute("style", re.compile(r"width: 66\.7%"))
    # My choice is marked; named votes show who voted for what.
    await expect(cards[1].option(1)).to_have_attribute("data-mine", "1")
    await expect(cards[1].option(0)).to_have_attribute("data-mine", "0")
    await expect(cards[1].root.locator(".vote-voters").first).to_have_text(
        re.compile(r"Alice, Carol|Carol, Alice")
    )

    await cards[1].option(0).click()  # bob changes his vote
    for card in cards:
        await card.expect_tallies([3, 0, 0], timeout_ms=3000)
    await expect(cards[1].option(0)).to_have_attribute("data-mine", "1")

    await cards[0].click("close")
    for card in cards:
        await card.expect_status("closed", timeout_ms=3000)
        await card.expect_no_buttons()
        await expect(card.outcome).to_have_text("Closed: Thai wins with 3 of 3 voters")
        await expect(card.option(1)).to_be_disabled()
        assert await card.tone() == "muted"
        await card.reveal()


async def test_concurrent_single_approval_one_wins_the_other_is_told(
    ui: Ui, demo_node: Node
) -> None:
    bob = await ui.login("bob")
    carol = await ui.login("carol")
    await open_group(bob, carol)
    message_id = await create_card(
        demo_node,
        "alice",
        {"type": "approval@1", "title": "Hire Eve", "approvers": ["bob", "carol"]},
    )
    theirs = {"bob": await shown(bob, message_id), "carol": await shown(carol, message_id)}

    # Hold both requests until both pages sent theirs, then let them reach the server together.
    held: list[Route] = []
    both, release = asyncio.Event(), asyncio.Event()

    async def hold(route: Route) -> None:
        held.append(route)
        if len(held) == 2:
            both.set()
        await release.wait()
        await route.continue_()

    for page in (bob, carol):
        await page.page.route(re.compile(r"/cards/\d+/actions$"), hold)
    await asyncio.gather(theirs["bob"].click("approve"), theirs["carol"].click("reject"))
    await asyncio.wait_for(both.wait(), 5 * time_scale())
    for card in theirs.values():  # both show their pending state
        await expect(card.root).to_have_class(re.compile(r"\bis-pending\b"))
        await expect(card.buttons.and_(card.root.locator(".is-pending"))).to_have_count(1)
    release.set()

    for card in theirs.values():
        await expect(card.root).not_to_have_class(re.compile(r"\bis-pending\b"), timeout=5000)
    status = await theirs["bob"].root.get_attribute("data-status")
    assert status in {"approved", "rejected"}
    winner, loser = ("bob", "carol") if status == "approved" else ("carol", "bob")
    for card in theirs.values():
        await card.expect_status(status)
        await card.expect_no_buttons()
    lost = theirs[loser]
    await expect(lost.notice).to_be_visible()
    await expect(lost.notice).to_have_attribute("data-winner", winner)
    verb = "approved" if winner == "bob" else "rejected"
    await expect(lost.notice.locator(".card-notice-text")).to_have_text(
        re.compile(rf"{winner.capitalize()} {verb} at {CLOCK}, before your “\w+” went through")
    )
    await expect(lost.confirm_button).to_have_count(0)  # a decided card cannot be overridden
    await expect(theirs[winner].notice).to_be_hidden()
    for card in theirs.values():
        await card.reveal()


async def test_offline_page_shows_the_new_state_after_reconnecting(ui: Ui, demo_node: Node) -> None:
    alice, bob = await alice_and_bob(ui)
    message_id = await create_card(
        demo_node,
        "alice",
        {"type": "task@1", "title": "Book the venue", "assignees": ["bob", "carol"]},
    )
    mine, theirs = await shown(alice, message_id), await shown(bob, message_id)
    await expect(theirs.button("accept")).to_be_visible()

    await bob.set_offline(True)
    await bob.expect_connection("offline")
    await act(demo_node, "carol", message_id, "accept")
    await mine.expect_status("doing", 2000)
    await expect(mine.person("carol")).to_contain_text("Accepted")
    await settle(0.3)
    await theirs.expect_status("todo")  # nothing reached the offline page

    await bob.set_offline(False)
    await bob.expect_connection("connected")
    await theirs.expect_status("doing", 5000)
    await expect(theirs.person("carol")).to_contain_text("Accepted")
    await expect(theirs.root.locator('.task-step[data-step="doing"]')).to_have_attribute(
        "data-state", "current"
    )
    # The task goes on from the reconnected page: block (with a reason), unblock, complete.
    await theirs.click("block")
    await theirs.root.locator('.card-prompt input[type="text"]').fill("no quote yet")
    await theirs.root.locator('.card-prompt button[data-submit="block"]').click()
    await mine.expect_status("blocked", 2000)
    assert await mine.tone() == "warn"
    await expect(mine.root.locator(".task-blocked")).to_contain_text("no quote yet")
    await theirs.click("unblock")
    await theirs.click("complete")
    await mine.expect_status("done", 2000)
    await mine.expect_no_buttons()
    assert await mine.tone() == "good"
    await expect(mine.outcome).to_have_text(re.compile(rf"^Done by Bob at {CLOCK}"))
    await mine.open_history()
    await expect(mine.history).to_have_count(5)  # create, accept, block, unblock, complete
    await mine.reveal()
    await theirs.reveal()


async def test_survey_answers_and_live_results_for_the_creator(ui: Ui, demo_node: Node) -> None:
    bob = await ui.login("bob")
    carol = await ui.login("carol")
    await open_group(bob, carol)
    questions = [
        {"id": "main", "kind": "single", "prompt": "Main course?", "options": ["Pizza", "Sushi"]},
        {"kind": "multiple", "prompt": "Extras?", "options": ["Salad", "Cake"], "required": False},
        {"id": "note", "kind": "text", "prompt": "Wishes?", "required": False},
    ]
    message_id = await create_card(
        demo_node, "bob", {"type": "survey@1", "title": "Lunch order", "questions": questions}
    )
    owner, member = await shown(bob, message_id), await shown(carol, message_id)
    await expect(member.root.locator(".survey-results")).to_have_count(0)  # creator only

    await member.click("respond")  # nothing chosen yet: the required question is marked
    await expect(member.root.locator('.survey-question[data-question="main"]')).to_have_class(
        re.compile(r"\bis-missing\b")
    )
    await member.root.get_by_label("Sushi").check()
    await member.root.get_by_label("Salad").check()
    await member.root.get_by_label("Cake").check()
    await member.root.locator("textarea").fill("no fish, thanks")
    await member.click("respond")
    await expect(member.button("respond")).to_have_text("Update answers", timeout=3000)
    await expect(member.root.locator(".card-info")).to_contain_text("you answered at")

    results = owner.root.locator(".survey-results")
    await expect(results).to_contain_text("1 response", timeout=3000)
    sushi = results.locator('.result-row[data-key="main-1"]')
    await expect(sushi).to_have_attribute("data-count", "1")
    await expect(results.locator(".survey-texts")).to_contain_text("Carol no fish, thanks")

    await owner.click("close")
    await member.expect_status("closed", 3000)
    await member.expect_no_buttons()
    await expect(member.root.locator(".survey-form")).to_have_count(0)
    await expect(member.root.locator(".survey-mine")).to_contain_text("Salad, Cake")
    await expect(member.outcome).to_have_text("Closed with 1 response")
    await owner.reveal()
    await member.reveal()


async def test_cards_created_from_the_page_form(ui: Ui) -> None:
    alice, bob = await alice_and_bob(ui)

    # Vote: anonymous, results hidden until it closes.
    form = await alice.new_card("vote")
    await form.locator('input[name="title"]').fill("Team motto")
    await form.locator('input[name="option-0"]').fill("Ship it")
    await form.locator('input[name="option-1"]').fill("Measure twice")
    await form.locator('[data-add="option"]').click()
    await form.locator('input[name="option-2"]').fill("Why not")
    await form.locator('input[name="anonymous"]').check()
    await form.locator('input[name="hidden"]').check()
    await form.locator('button[type="submit"]').click()
    await expect(form).to_be_hidden(timeout=alice.ms(5000))
    voted = bob.card_titled("Team motto")
    await expect(voted.root).to_be_visible(timeout=bob.ms(5000))
    await voted.option(1).click()
    await expect(voted.option(1)).to_have_attribute("data-mine", "1", timeout=3000)
    mine = alice.card_titled("Team motto")
    await expect(mine.root.locator(".card-info")).to_contain_text("1 voter", timeout=3000)
    assert await mine.tallies() == ["", "", ""]  # hidden until closed
    await expect(mine.root.locator(".vote-hidden")).to_be_visible()
    await mine.click("close")
    await voted.expect_tallies([0, 1, 0], timeout_ms=3000)
    await expect(voted.root.locator(".vote-voters")).to_have_count(0)  # anonymous: no names

    # Approval, task and survey: one each.
    form = await alice.new_card("approval")
    await form.locator('input[name="title"]').fill("Conference tickets")
    await form.locator('.pick-chip[data-uid="bob"]').click()
    await form.locator('button[type="submit"]').click()
    await expect(form).to_be_hidden(timeout=alice.ms(5000))
    approval = bob.card_titled("Conference tickets")
    await expect(approval.button("approve")).to_be_visible(timeout=bob.ms(5000))

    form = await alice.new_card("task")
    await form.locator('input[name="title"]').fill("Renew the domain")
    await form.locator('button[type="submit"]').click()
    await expect(form.locator(".form-error")).to_have_text("Pick at least one assignee.")
    await form.locator('.pick-chip[data-uid="bob"]').click()
    await form.locator('button[type="submit"]').click()
    await expect(form).to_be_hidden(timeout=alice.ms(5000))
    task = bob.card_titled("Renew the domain")
    await expect(task.button("accept")).to_be_visible(timeout=bob.ms(5000))
    await expect(task.root.locator(".card-deadline")).to_contain_text("Due tomorrow")

    form = await alice.new_card("survey")
    await form.locator('input[name="title"]').fill("Retro")
    await form.locator('input[name="question-0-prompt"]').fill("How was the sprint?")
    await form.locator('input[name="question-0-option-0"]').fill("Good")
    await form.locator('input[name="question-0-option-1"]').fill("Bad")
    await form.locator('[data-add="question"]').click()
    await form.locator('input[name="question-1-prompt"]').fill("Anything else?")
    await form.locator('select[name="question-1-kind"]').select_option("text")
    await form.locator('button[type="submit"]').click()
    await expect(form).to_be_hidden(timeout=alice.ms(5000))
    survey = bob.card_titled("Retro")
    await expect(survey.root.locator(".survey-question")).to_have_count(2, timeout=bob.ms(5000))
    await expect(survey.button("respond")).to_be_visible()
    await survey.reveal()
    await mine.reveal()


async def test_action_retry_reuses_the_action_id(ui: Ui, demo_node: Node) -> None:
    bob = await ui.login("bob")
    await bob.open(*GROUP)
    message_id = await create_card(
        demo_node, "alice", {"type": "vote@1", "title": "Snacks", "options": ["Chips", "Fruit"]}
    )
    card = await shown(bob, message_id)
    sent: list[dict[str, Any]] = []

    async def flaky(route: Route, request: Request) -> None:
        sent.append(json.loads(request.post_data or "{}"))
        if len(sent) == 1:
            await route.abort("connectionreset")  # no answer: the page retries
        else:
            await route.continue_()

    await bob.page.route(re.compile(r"/cards/\d+/actions$"), flaky)
    await card.option(0).click()
    await card.expect_tallies([1, 0], timeout_ms=5000)
    await expect(card.root).not_to_have_class(re.compile(r"\bis-pending\b"))
    assert len(sent) == 2 and sent[0]["action_id"] == sent[1]["action_id"], sent
    assert sent[0]["base_version"] == 1 and sent[0]["params"] == {"options": [0]}
    await card.option(1).click()  # a new click is a new action
    await card.expect_tallies([0, 1], timeout_ms=5000)
    assert len(sent) == 3 and sent[2]["action_id"] != sent[0]["action_id"]
    assert sent[2]["base_version"] == 2
    await card.reveal()

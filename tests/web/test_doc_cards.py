"""Card documents in real browsers (docs/cards.md sections 10-14): business-defined card
types drawn by the page's generic renderer (web/src/cards/document.js), in two browser
contexts against a real node, and the leave-request example of the walk-through with its
own business server (examples/leave/leave_server.py) deciding every click."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Route, expect

from magpie.app import Node
from tests.cards.business import Business, Call
from tests.support.nodes import API_KEY, api, time_scale
from tests.web.conftest import Ui
from tests.web.helpers import CLOCK, act, alice_and_bob, create_card, open_group, shown
from tests.web.pages import CardHandle

#: One Chromium per module (conftest ``browser``): the tests share the module's loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")


def _png(size: int = 8, rgb: tuple[int, int, int] = (79, 70, 229)) -> bytes:
    """A small solid PNG (the pages get it for the document's https images: no network)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    head = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", head)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = _png()
IMAGES = "https://img.example.com/"
#: A text block that tries markup: the page must show it as text, never run it.
HOSTILE = 'Bring <img src=x onerror="window.__pwned=1"> shoes <script>window.__pwned=2</script>'

OUTING_DOC: dict[str, Any] = {
    "version": 1,
    "blocks": [
        {"type": "header", "text": "Team outing ({{status}})"},
        {
            "type": "text",
            "text": "**Plan** the *outing*, see [the wiki](https://wiki.example.com/outing)\n"
            "- ~~Monday~~ any day\n- `shoes` on",
        },
        {"type": "text", "text": HOSTILE, "plain": True},
        {
            "type": "fields",
            "fields": [
                {"label": "Where", "value": "{{state.place}}"},
                {"label": "When", "value": "{{state.day}} {{state.time}}"},
                {"label": "Diet", "value": "{{state.diet}}"},
            ],
        },
        {"type": "divider"},
        {"type": "image", "url": IMAGES + "map.png", "alt": "The map", "width": 40, "height": 40},
        {
            "type": "context",
            "elements": [
                {"type": "image", "url": IMAGES + "logo.png", "alt": "logo"},
                {"type": "text", "text": "Organised by the team"},
            ],
        },
        {
            "type": "progress",
            "label": "Joined",
            "value": 0,
            "value_from": "counts.join",
            "max": 3,
            "style": "success",
        },
        {"type": "people", "label": "Invited", "people_from": "listed"},
        {
            "type": "form",
            "id": "plan",
            "elements": [
                {
                    "type": "select",
                    "name": "place",
                    "label": "Place",
                    "required": True,
                    "options": [
                        {"value": "lake", "label": "The lake"},
                        {"value": "hill", "label": "The hill"},
                    ],
                },
                {
                    "type": "select",
                    "name": "diet",
                    "label": "Diet",
                    "multiple": True,
                    "options": [
                        {"value": "vegan", "label": "Vegan"},
                        {"value": "halal", "label": "Halal"},
                        {"value": "none", "label": "Anything"},
                    ],
                },
                {"type": "date", "name": "day", "label": "Day", "required": True},
                {"type": "date", "name": "time", "label": "Start", "mode": "time"},
                {"type": "date", "name": "back", "label": "Back by", "mode": "datetime"},
                {"type": "input", "name": "note", "label": "Note", "multiline": True},
                {"type": "input", "name": "who", "label": "Contact", "min_length": 3},
                {"type": "checkbox", "name": "car", "label": "I can drive"},
                {"type": "button", "action": "plan", "label": "Plan it", "value": {"v": 1}},
            ],
        },
        {
            "type": "actions",
            "elements": [
                {"type": "button", "action": "join", "label": "Join", "style": "secondary"},
                {
                    "type": "button",
                    "action": "close",
                    "label": "Close",
                    "style": "danger",
                    "confirm": {
                        "title": "Close the outing?",
                        "text": "Nobody can join after that.",
                        "confirm": "Close it",
                        "deny": "Keep it open",
                    },
                },
            ],
        },
    ],
}


def outing(url: str) -> dict[str, Any]:
    """A registered type with every block and element type: ``plan`` decided by the business
    server (callback), ``join`` (each user once, an ephemeral answer) and ``close`` declared."""
    return {
        "name": "outing",
        "version": 1,
        "title": "Team outing",
        "initial_status": "open",
        "terminal": ["closed"],
        "state_schema": {"type": "object"},
        "initial_state": {},
        "actions": [
            {"name": "plan", "label": "Plan", "who": {"members": True}, "handler": "callback"},
            {"name": "join", "label": "Join", "who": {"members": True}},
            {"name": "close", "label": "Close", "who": {"roles": ["creator"]}},
        ],
        "transitions": [
            {
                "from": "open",
                "action": "join",
                "to": "open",
                "guard": "each_user_once",
                "ephemeral": "You are in!",
            },
            {"from": "open", "action": "close", "to": "closed", "guard": "first_wins"},
        ],
        "callback_url": url,
        "doc": OUTING_DOC,
    }


async def plan(call: Call) -> tuple[int, Any]:
    """The business server: a plan is stored and confirmed to the planner alone; a note
    saying "full" is refused."""
    p = call.json()["params"]
    if "full" in p.get("note", ""):
        return 200, {"refuse": {"reason": "full", "message": "the bus is full"}}
    diet = ", ".join(p.get("diet", [])) or "anything"
    state = {"place": p["place"], "day": p["day"], "time": p.get("time", ""), "diet": diet}
    note = {"type": "context", "elements": [{"type": "text", "text": f"Contact: {p.get('who')}"}]}
    form = {"type": "actions", "elements": [{"type": "button", "action": "join", "label": "Join"}]}
    text = f"Planned: {p['place']} on {p['day']}"
    # The answer's document is shown read-only: its buttons are left out.
    return 200, {"state": state, "ephemeral": {"text": text, "doc": doc_of(note, form)}}


def doc_of(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "blocks": list(blocks)}


@pytest_asyncio.fixture(loop_scope="module")
async def business(demo_node: Node) -> AsyncIterator[Business]:
    """The outing type registered, its business server on loopback."""
    async with Business(plan) as server:
        async with api(demo_node) as http:
            r = await http.post("/card-types", json=outing(server.url))
            assert r.status_code == 200, r.text
        yield server


TALL = {"width": 1280, "height": 1500}
ACTIONS = re.compile(r"/cards/\d+/actions$")


async def without_ephemeral(route: Route) -> None:
    """Pass an action on, and hand the page its answer with ``ephemeral`` taken out."""
    response = await route.fetch()
    body = await response.json()
    body["ephemeral"] = None
    await route.fulfill(response=response, json=body)


async def snapshot(ui: Ui, card: CardHandle, name: str) -> None:
    """A screenshot of the page with ``card`` in view (``artifacts/web``)."""
    await card.reveal()
    await card.owner.page.screenshot(path=str(ui.artifact(name)), animations="disabled")


async def serve_images(*pages: Any) -> None:
    async def png(route: Route) -> None:
        await route.fulfill(status=200, content_type="image/png", body=PNG)

    for page in pages:
        await page.page.route(re.compile(re.escape(IMAGES) + ".*"), png)


async def test_a_custom_card_type_with_every_element_in_two_browsers(
    ui: Ui, demo_node: Node, business: Business
) -> None:
    # Tall pages, so the whole card is in the screenshots.
    alice, bob = [await ui.login(uid, viewport=TALL) for uid in ("alice", "bob")]
    await serve_images(alice, bob)
    await open_group(alice, bob)
    card = {"type": "outing@1", "listed": ["bob", "carol"]}
    message_id = await create_card(demo_node, "alice", card)
    mine, theirs = await shown(alice, message_id), await shown(bob, message_id)

    # Every block is drawn; markup in a text is text; images are served, the header filled.
    for c in (mine, theirs):
        await expect(c.root.locator(".doc-header")).to_have_text("Team outing (open)")
        await c.expect_status("open")
        assert await c.tone() == "open"
    md = theirs.root.locator('.doc-text[data-block="text"]').first
    await expect(md.locator("strong")).to_have_text("Plan")
    await expect(md.locator("em")).to_have_text("outing")
    await expect(md.locator("del")).to_have_text("Monday")
    await expect(md.locator("code")).to_have_text("shoes")
    await expect(md.locator("li")).to_have_count(2)
    link = md.locator("a")
    await expect(link).to_have_attribute("href", "https://wiki.example.com/outing")
    await expect(link).to_have_attribute("rel", re.compile("noopener"))
    await expect(theirs.root.locator(".doc-text--plain")).to_have_text(HOSTILE)
    assert await bob.page.evaluate("() => window.__pwned") is None
    await expect(
        theirs.root.locator(".doc-text--plain img, .doc-text--plain script")
    ).to_have_count(0)
    await expect(theirs.root.locator("hr.doc-divider")).to_have_count(1)
    image = theirs.root.locator("img.doc-image")
    await expect(image).to_have_attribute("alt", "The map")
    await bob.page.wait_for_function(
        "id => document.querySelector(`.card[data-card-for='${id}'] img.doc-image`)"
        "?.naturalWidth === 8",
        arg=message_id,
        timeout=bob.ms(5000),
    )
    await expect(theirs.root.locator(".doc-context")).to_contain_text("Organised by the team")
    await expect(theirs.root.locator(".doc-context img")).to_have_attribute("alt", "logo")
    progress = theirs.root.locator(".doc-progress")
    await expect(progress).to_have_class(re.compile(r"doc-progress--success"))
    await expect(progress.locator(".doc-progress-count")).to_have_text("0 / 3")
    await expect(theirs.person("bob")).to_have_attribute("data-state", "pending")
    await expect(theirs.person("carol")).to_have_attribute("data-state", "pending")
    # Button styles; only the creator may close (bob's Close is disabled, saying why).
    await expect(theirs.doc_button("plan")).to_have_class(re.compile(r"\bbtn--primary\b"))
    await expect(theirs.doc_button("join")).to_have_class(re.compile(r"\bbtn--secondary\b"))
    await expect(theirs.doc_button("close")).to_have_class(re.compile(r"\bbtn--danger\b"))
    await expect(theirs.doc_button("close")).to_be_disabled()
    await expect(theirs.doc_button("close")).to_have_attribute("title", re.compile("creator"))
    await expect(mine.doc_button("close")).to_be_enabled()

    # Alice fills in every element; a required one missing is marked first.
    await mine.doc_button("plan").click()
    await expect(mine.doc_input("place")).to_have_class(re.compile(r"\bis-missing\b"))
    await expect(mine.doc_input("day")).to_have_class(re.compile(r"\bis-missing\b"))
    assert business.calls == []
    await mine.doc_input("place").locator("select").select_option("lake")
    await mine.doc_input("diet").get_by_label("Vegan").check()
    await mine.doc_input("diet").get_by_label("Halal").check()
    await mine.doc_input("day").locator("input").fill("2026-12-19")
    await mine.doc_input("time").locator("input").fill("09:30")
    await mine.doc_input("back").locator("input").fill("2026-12-19T18:00")
    await mine.doc_input("note").locator("textarea").fill("bring boots")
    await mine.doc_input("who").locator("input").fill("al")
    await mine.doc_input("car").locator("input").check()
    await snapshot(ui, mine, "alice-filled")
    await mine.doc_button("plan").click()
    await expect(mine.doc_input("who")).to_have_class(re.compile(r"\bis-missing\b"))
    await mine.doc_input("who").locator("input").fill("alice")
    # The answer reaches alice's page without its ephemeral part: the note she gets is the
    # cardEphemeral CMD the server sends to her devices.
    await alice.page.route(ACTIONS, without_ephemeral)
    await mine.doc_button("plan").click()
    await expect(mine.ephemeral).to_contain_text("Planned: lake on 2026-12-19", timeout=3000)
    (call,) = business.calls
    assert call.json()["params"] == {
        "v": 1,
        "place": "lake",
        "diet": ["vegan", "halal"],
        "day": "2026-12-19",
        "time": "09:30",
        "back": "2026-12-19T18:00",
        "note": "bring boots",
        "who": "alice",
        "car": True,
    }
    # Bob sees the change live; the answer was for alice alone (her other device too).
    fields = theirs.root.locator(".doc-fields")
    await expect(fields).to_contain_text("lake", timeout=3000)
    await expect(fields).to_contain_text("2026-12-19 09:30")
    await expect(fields).to_contain_text("vegan, halal")
    await expect(mine.ephemeral.locator(".doc-context")).to_have_text("Contact: alice")
    await expect(mine.ephemeral.locator("button.doc-button")).to_have_count(0)
    await expect(theirs.ephemeral).to_be_hidden()
    await alice.page.unroute(ACTIONS)

    # Bob joins: a declared transition with an ephemeral answer; alice's progress moves.
    await theirs.doc_button("join").click()
    await expect(theirs.ephemeral).to_contain_text("You are in!", timeout=3000)
    await expect(mine.root.locator(".doc-progress-count")).to_have_text("1 / 3", timeout=3000)
    await expect(mine.person("bob")).to_have_attribute("data-state", "join")
    await expect(mine.person("bob")).to_contain_text("Joined")
    await expect(mine.person("carol")).to_contain_text("Pending")
    await expect(mine.ephemeral).not_to_contain_text("You are in!")
    await expect(theirs.doc_button("join")).to_be_disabled()  # each user once

    # A refusal by the business server: rolled back, said, the input kept.
    await theirs.doc_input("place").locator("select").select_option("hill")
    await theirs.doc_input("day").locator("input").fill("2026-12-20")
    await theirs.doc_input("note").locator("textarea").fill("bus full?")
    await theirs.doc_button("plan").click()
    await expect(theirs.notice).to_contain_text("The bus is full", timeout=3000)
    await expect(theirs.notice).to_contain_text("your “Plan” was not applied")
    await expect(theirs.doc_input("note").locator("textarea")).to_have_value("bus full?")
    await expect(fields).to_contain_text("lake")

    # A stale click: bob's plan is held until carol joined (through the API); the 409 names
    # carol, and "Plan anyway" applies bob's plan on the new version.
    await theirs.doc_input("note").locator("textarea").fill("")
    held: list[Route] = []
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hold(route: Route) -> None:
        held.append(route)
        arrived.set()
        await release.wait()
        await route.continue_()

    await bob.page.route(ACTIONS, hold)
    await theirs.doc_button("plan").click()
    await asyncio.wait_for(arrived.wait(), 5 * time_scale())
    await expect(theirs.root).to_have_class(re.compile(r"\bis-pending\b"))
    await expect(theirs.doc_button("plan")).to_have_attribute("aria-busy", "true")
    await act(demo_node, "carol", message_id, "join")
    await expect(mine.root.locator(".doc-progress-count")).to_have_text("2 / 3", timeout=3000)
    await expect(mine.person("carol")).to_have_attribute("data-state", "join")
    release.set()
    await expect(theirs.notice).to_have_attribute("data-winner", "carol", timeout=5000)
    await expect(theirs.notice).to_contain_text(
        re.compile(rf"Carol joined at {CLOCK}, before your “Plan” went through")
    )
    await snapshot(ui, theirs, "bob-conflict")
    await bob.page.unroute(ACTIONS)
    await theirs.confirm_button.click()
    await expect(fields).to_contain_text("hill", timeout=3000)
    await expect(mine.root.locator(".doc-fields")).to_contain_text("2026-12-20", timeout=3000)
    await expect(theirs.ephemeral).to_contain_text("Planned: hill on 2026-12-20")
    await expect(theirs.notice).to_be_hidden()

    # Close asks first (the button's confirm dialog), then ends the card for everyone.
    await mine.doc_button("close").click()
    dialog = mine.root.locator(".doc-confirm")
    await expect(dialog).to_contain_text("Close the outing?")
    await expect(dialog).to_contain_text("Nobody can join after that.")
    await expect(dialog.locator("button[data-confirm-no]")).to_have_text("Keep it open")
    await snapshot(ui, mine, "alice-confirm")
    await dialog.locator("button[data-confirm-yes]").click()
    for c in (mine, theirs):
        await c.expect_status("closed", 3000)
        assert await c.tone() == "muted"
        await expect(c.root.locator(".doc-header")).to_have_text("Team outing (closed)")
        await expect(c.root.locator(".doc-button")).to_have_count(0)
    await expect(theirs.outcome).to_have_text(re.compile(rf"^Closed by Alice at {CLOCK}$"))
    await mine.open_history()
    # create, plan, join, the refused plan, carol's join, the stale plan, plan, close
    await expect(mine.history).to_have_count(8)
    for n in (3, 5):
        await expect(mine.history.nth(n)).to_contain_text("tried to plan")
        await expect(mine.history.nth(n)).to_have_attribute("data-result", "conflict")
    await expect(mine.history.nth(7)).to_contain_text("Open → Closed")
    await theirs.open_history()
    await mine.reveal()
    await theirs.reveal()


async def test_a_document_card_says_loading_until_its_projection_arrives(
    ui: Ui, demo_node: Node, business: Business
) -> None:
    bob = await ui.login("bob")
    await open_group(bob)
    release = asyncio.Event()

    async def slow(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await bob.page.route(re.compile(r"/cards/\d+$"), slow)
    message_id = await create_card(demo_node, "alice", {"type": "outing@1"})
    card = bob.card(message_id)
    await expect(card.root.locator(".card-fallback-note")).to_have_text(
        "Loading the card…", timeout=bob.ms(5000)
    )
    release.set()
    await expect(card.root.locator(".doc-header")).to_have_text(
        "Team outing (open)", timeout=bob.ms(5000)
    )
    await expect(card.root).not_to_have_class(re.compile(r"\bcard--placeholder\b"))
    await expect(card.doc_button("join")).to_be_enabled()


LEAVE_SERVER = Path(__file__).parents[2] / "examples" / "leave" / "leave_server.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def leave_server(demo_node: Node) -> Iterator[subprocess.Popen[str]]:
    """examples/leave/leave_server.py as the walk-through runs it: PORT and the demo group."""
    env = {**os.environ, "MAGPIE_API": f"http://127.0.0.1:{demo_node.api_port}"}
    env["MAGPIE_API_KEY"] = API_KEY
    proc = subprocess.Popen(
        [sys.executable, str(LEAVE_SERVER), str(_free_port()), "demo-group"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20 * time_scale())


async def test_the_leave_request_example_in_the_demo(
    ui: Ui, leave_server: subprocess.Popen[str]
) -> None:
    assert json.loads(await _line(leave_server))["tag"] == "leave@1"  # registered
    message_id = (await _line(leave_server)).strip()  # alice's request, posted in the group
    assert message_id.isdigit(), message_id
    alice, bob = await alice_and_bob(ui)
    mine, theirs = await shown(alice, message_id), await shown(bob, message_id)
    await mine.expect_status("draft")
    await expect(mine.root.locator(".doc-header")).to_have_text("Leave request")
    # Only the requester may submit: bob sees the form, disabled, with why.
    await expect(theirs.doc_button("submit")).to_be_disabled()
    await expect(theirs.doc_input("start").locator("input")).to_be_disabled()
    await expect(theirs.outcome).to_have_text("Only the requester may request")

    # A backwards range: the business server answers alice alone, nothing changes.
    await mine.doc_input("start").locator("input").fill("2026-12-10")
    await mine.doc_input("end").locator("input").fill("2026-12-08")
    await mine.doc_input("reason").locator("textarea").fill("skiing in the Alps")
    await mine.doc_button("submit").click()
    await expect(mine.ephemeral).to_contain_text("The end date is before the start date.")
    await mine.expect_status("draft")
    await expect(mine.doc_input("reason").locator("textarea")).to_have_value("skiing in the Alps")
    await expect(theirs.ephemeral).to_be_hidden()

    await mine.doc_input("end").locator("input").fill("2026-12-12")
    await mine.doc_button("submit").click()
    await mine.expect_status("pending", 5000)
    await expect(mine.ephemeral).to_contain_text("Sent to bob for approval.")
    await theirs.expect_status("pending", 5000)
    await expect(theirs.ephemeral).to_be_hidden()
    fields = theirs.root.locator(".doc-fields")
    await expect(fields).to_contain_text("2026-12-10")
    await expect(fields).to_contain_text("3")
    await expect(theirs.root.locator(".doc-text")).to_have_text("skiing in the Alps")
    await expect(mine.doc_button("approve")).to_be_disabled()  # alice is not the manager

    # Reject asks first (the document's confirm dialog); bob thinks again and approves.
    await theirs.doc_button("reject").click()
    dialog = theirs.root.locator(".doc-confirm")
    await expect(dialog).to_contain_text("Reject this request?")
    await dialog.locator("button[data-confirm-no]").click()
    await expect(dialog).to_have_count(0)
    await theirs.doc_input("comment").locator("input").fill("have fun")
    await theirs.doc_button("approve").click()
    for card in (mine, theirs):
        await card.expect_status("approved", 5000)
        assert await card.tone() == "good"
        await expect(card.root.locator(".doc-header")).to_have_text("Leave request: approved")
        await expect(card.root.locator('.person-row[data-uid="bob"]')).to_have_attribute(
            "data-state", "approved"
        )
    await expect(mine.outcome).to_have_text(re.compile(rf"^Approved by Bob at {CLOCK}$"))
    await expect(theirs.outcome).to_have_text(re.compile(rf"^Approved by you at {CLOCK}$"))
    await mine.open_history()
    await expect(mine.history).to_have_count(3)  # created, submitted, approved
    await expect(mine.history.nth(2)).to_contain_text("Bob approved “have fun”")
    await expect(mine.history.nth(2)).to_contain_text("Pending → Approved")
    await expect(mine.history.nth(2).locator(".card-history-time")).to_have_text(re.compile(CLOCK))
    await mine.reveal()
    await theirs.reveal()

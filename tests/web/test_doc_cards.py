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
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from magpie.app import Node
from tests.support.nodes import API_KEY, time_scale
from tests.web.conftest import Ui
from tests.web.helpers import CLOCK, alice_and_bob, shown

#: One Chromium per module (conftest ``browser``): the tests share the module's loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

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
    await expect(mine.outcome).to_have_text("The card is approved")
    await mine.open_history()
    await expect(mine.history).to_have_count(3)  # created, submitted, approved
    await expect(mine.history.nth(2)).to_contain_text("Bob approved “have fun”")
    await expect(mine.history.nth(2)).to_contain_text("Pending → Approved")
    await expect(mine.history.nth(2).locator(".card-history-time")).to_have_text(re.compile(CLOCK))
    await mine.reveal()
    await theirs.reveal()

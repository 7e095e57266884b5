"""Helpers of the card browser tests: the cards API with the business key, page shortcuts."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from playwright.async_api import expect

from magpie.app import Node
from tests.support.nodes import api
from tests.web.pages import CardHandle, DemoPage

if TYPE_CHECKING:
    from tests.web.conftest import Ui

GROUP = ("demo-group", 2)
#: "09:10:05" or "9:10:05 AM": the clock the conflict notice and the outcome lines show.
CLOCK = r"\d{1,2}:\d{2}:\d{2}(?:\s?[AP]M)?"


async def create_card(node: Node, creator: str, card: dict[str, Any]) -> str:
    """``POST /cards`` with the business key for ``creator`` in the demo group; the id."""
    async with api(node) as http:
        r = await http.post(
            "/cards",
            json={"uid": creator, "channel_id": GROUP[0], "channel_type": GROUP[1], "card": card},
        )
        assert r.status_code == 200, r.text
        return str(r.json()["message_id_str"])


async def act(node: Node, uid: str, message_id: str, action: str, **params: Any) -> None:
    """``uid`` acts on the current version through the API (the business key for the user)."""
    async with api(node) as http:
        view = await http.get(f"/cards/{message_id}", params={"uid": uid})
        assert view.status_code == 200, view.text
        body = {
            "uid": uid,
            "action": action,
            "params": params,
            "action_id": uuid.uuid4().hex,
            "base_version": view.json()["version"],
        }
        r = await http.post(f"/cards/{message_id}/actions", json=body)
        assert r.status_code == 200, r.text


async def open_group(*pages: DemoPage) -> None:
    """Open the demo group on every page."""
    await asyncio.gather(*(p.open(*GROUP) for p in pages))


async def alice_and_bob(ui: Ui) -> tuple[DemoPage, DemoPage]:
    """alice and bob logged in (two browser contexts), both with the demo group open."""
    alice = await ui.login("alice")
    bob = await ui.login("bob")
    await open_group(alice, bob)
    return alice, bob


async def shown(page: DemoPage, message_id: str) -> CardHandle:
    """The card once the page shows it with its server projection (version >= 1)."""
    card = page.card(message_id)
    await expect(card.root).to_be_visible(timeout=page.ms(5000))
    await expect(card.root).not_to_have_attribute("data-version", "0", timeout=page.ms(5000))
    return card

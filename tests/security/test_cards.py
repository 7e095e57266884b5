"""A user outside a card's chat learns nothing about the card and leaves no trace in it."""

from __future__ import annotations

import httpx

from tests.security.conftest import World
from tests.security.support import assert_no_data


async def test_outsider_cannot_view_a_card(world: World, outsider: httpx.AsyncClient) -> None:
    r = await outsider.get(f"/cards/{world.card_id}")
    assert r.status_code in (403, 404), r.text
    assert_no_data(world, r)


async def test_member_views_the_card(world: World, member: httpx.AsyncClient) -> None:
    """The same request by a member is answered with the card (the check above can fail)."""
    r = await member.get(f"/cards/{world.card_id}")
    assert r.status_code == 200, r.text
    assert r.json()["state"] or r.json()["definition"]

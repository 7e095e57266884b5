"""Route normalisation: a percent-escape in a path never selects another route (an escaped
``/`` would otherwise reach ``/cards/{id}/ops`` through ``/cards/{id}%2Fops``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from magpie.api.asgi import endpoints_of
from magpie.api.endpoint import Endpoint
from tests.security.conftest import World
from tests.security.support import assert_no_data


def _escaped_variants(ep: Endpoint[Any], card_id: int) -> list[str]:
    """The route's path with each ``/`` after the first, and one letter, percent-escaped."""
    path = ep.path.replace("{message_id}", str(card_id))
    out = [f"{path[:i]}%2F{path[i + 1 :]}" for i, ch in enumerate(path) if ch == "/" and i]
    out += [f"{path[:i]}%2f{path[i + 1 :]}" for i, ch in enumerate(path) if ch == "/" and i]
    letter = next((i for i, ch in enumerate(path) if ch.isalpha()), None)
    if letter is not None:
        out.append(f"{path[:letter]}%{ord(path[letter]):02X}{path[letter + 1 :]}")
    return out


async def test_an_escaped_slash_does_not_reach_the_card_history(
    world: World, member: httpx.AsyncClient
) -> None:
    assert (await member.get(f"/cards/{world.card_id}/ops")).status_code == 200
    for path in (f"/cards/{world.card_id}%2Fops", f"/cards/{world.card_id}%2fhistory"):
        r = await member.get(path)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text
        assert_no_data(world, r)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_no_escaped_path_selects_a_route(
    world: World, biz: httpx.AsyncClient, method: str
) -> None:
    checked = 0
    for ep in endpoints_of(world.node.api):
        for path in _escaped_variants(ep, world.card_id):
            r = await biz.request(method, path, json={})
            assert (r.status_code, r.json()["code"]) == (404, "not_found"), (path, r.text)
            checked += 1
    assert checked > 40

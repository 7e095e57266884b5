"""Auth before validation: whatever the input, a request without a valid credential is 401
— never a 400 that would tell an unauthenticated caller about the input rules. Generated
from the route table, so every authenticated endpoint is covered."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from magpie.api.asgi import endpoints_of
from magpie.api.endpoint import Access, Endpoint
from tests.security.conftest import World, client, token_of

#: Inputs that fail validation on every endpoint that takes one.
BAD_BODIES: list[Any] = [{}, {"login_uid": "", "uid": ""}, [], "x", {"uid": "a b\n"}]
BAD_CREDENTIALS = ["", "not-a-registered-token", "tok-nobody"]


def _guarded(world: World) -> list[Endpoint[Any]]:
    return [ep for ep in endpoints_of(world.node.api) if ep.access is not Access.PUBLIC]


def _url(ep: Endpoint[Any]) -> str:
    path = ep.path.replace("{message_id}", "not-a-number").replace("{file_id}", "not-a-file")
    return path.replace("{tag}", "no-such@1")


async def _call(c: httpx.AsyncClient, ep: Endpoint[Any], bad: Any) -> httpx.Response:
    if ep.method == "GET":
        return await c.get(_url(ep), params={"uid": "", "limit": "-1", "after_op_id": "x"})
    if isinstance(bad, str):
        return await c.post(_url(ep), content=b"{not json")
    return await c.post(_url(ep), json=bad)


@pytest.mark.parametrize("credential", BAD_CREDENTIALS)
async def test_a_bad_credential_is_401_before_any_input_check(
    world: World, credential: str
) -> None:
    endpoints = _guarded(world)
    assert len(endpoints) > 20  # the table was read
    async with client(world.node, credential or None) as c:
        for ep in endpoints:
            for bad in BAD_BODIES:
                r = await _call(c, ep, bad)
                assert (r.status_code, r.json()["code"]) == (401, "unauthorized"), (
                    ep.method,
                    ep.path,
                    bad,
                    r.text,
                )


async def test_a_user_token_on_a_business_endpoint_is_401(world: World) -> None:
    async with client(world.node, token_of("alice")) as c:
        for ep in _guarded(world):
            if ep.access is Access.BUSINESS:
                r = await _call(c, ep, {})
                assert r.status_code == 401, (ep.path, r.text)


async def test_with_a_valid_token_the_input_is_checked(world: World) -> None:
    """The counter-check: the same bad body with alice's token is 400 on a user endpoint
    (today's empty ``login_uid`` case of the issue)."""
    async with client(world.node, token_of("alice")) as c:
        r = await c.post("/channel/messagesync", json={"login_uid": "", "channel_type": 2})
        assert r.status_code == 400, r.text
    async with client(world.node, "bad-token") as c:
        r = await c.post("/channel/messagesync", json={"login_uid": "", "channel_type": 2})
        assert r.status_code == 401, r.text

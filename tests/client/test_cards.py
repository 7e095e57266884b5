"""``client.cards.act`` against a fake card service (httpx.MockTransport): the contract
``POST /cards/{message_id}/actions {action, params, action_id, base_version, confirm?}`` →
200 card state | 409 ``{winner, at, current, can_confirm}``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from magpie.client import (
    ApiRequestFailed,
    ApiUnavailable,
    CardConflict,
    Channel,
    Client,
    ClientOptions,
)
from magpie.client.model import Message
from magpie.domain.ext import ExtState

MID = 4242
Handler = Callable[[httpx.Request], httpx.Response]


class FakeCards:
    """Records requests; answers with the next scripted response (or the default)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[httpx.Response | Exception] = []

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step
        body = json.loads(request.content)
        version = body["base_version"] + 1
        return httpx.Response(200, json={"message_id": MID, "version": version, "status": "ok"})


@pytest.fixture
def fake() -> FakeCards:
    return FakeCards()


@pytest.fixture
async def client(fake: FakeCards) -> AsyncIterator[Client]:
    options = ClientOptions(card_retry_delay=0, card_attempts=3)
    c = Client(
        "ws://127.0.0.1:1",
        "alice",
        "tok-alice",
        api_url="http://cards.test",
        options=options,
        http_transport=httpx.MockTransport(fake),
    )
    await c.open(connect=False)
    yield c
    await c.close()


async def cache_card(client: Client, version: int) -> None:
    g = Channel.group("g1")
    await client.cache.put_messages([Message.of(g, MID, 1, "c", "bob", 1, b'{"type":7}')])
    await client.cache.apply_ext(g, [ExtState(MID, version=version, extra_version=version)])


async def test_act_sends_the_cached_base_version_and_returns_the_state(
    client: Client, fake: FakeCards
) -> None:
    await cache_card(client, 3)
    state = await client.cards.act(MID, "approve", {"comment": "ok"})
    (request,) = fake.requests
    assert request.method == "POST" and request.url.path == f"/cards/{MID}/actions"
    assert request.headers["authorization"] == "Bearer tok-alice"
    body = fake.bodies[0]
    assert body["action"] == "approve" and body["params"] == {"comment": "ok"}
    assert body["base_version"] == 3 and "confirm" not in body and body["uid"] == "alice"
    assert len(body["action_id"]) == 32 and int(body["action_id"], 16) >= 0
    assert (state.version, state.status, state.action_id) == (4, "ok", body["action_id"])
    assert state.data["message_id"] == MID


async def test_each_act_gets_a_fresh_action_id_and_base_zero_when_uncached(
    client: Client, fake: FakeCards
) -> None:
    await client.cards.act(MID, "approve")
    await client.cards.act(MID, "approve", base_version=9, confirm=True)
    first, second = fake.bodies
    assert first["base_version"] == 0 and first["params"] == {}
    assert second["base_version"] == 9 and second["confirm"] is True
    assert first["action_id"] != second["action_id"]


async def test_conflict(client: Client, fake: FakeCards) -> None:
    current = {"status": "rejected", "version": 5}
    answer = {
        "winner": {"uid": "carol"},
        "at": 1700000000123,
        "current": current,
        "can_confirm": True,
        "code": "conflict",
    }
    fake.script = [httpx.Response(409, json=answer)]
    with pytest.raises(CardConflict) as info:
        await client.cards.act(MID, "approve")
    err = info.value
    assert err.winner == {"uid": "carol"} and err.at == 1700000000123
    assert err.current == current and err.can_confirm is True and err.status == 409
    assert err.action_id == fake.bodies[0]["action_id"]


async def test_transport_errors_are_retried_with_the_same_action_id(
    client: Client, fake: FakeCards
) -> None:
    fake.script = [httpx.ConnectError("refused"), httpx.Response(503)]
    state = await client.cards.act(MID, "approve")
    ids = {b["action_id"] for b in fake.bodies}
    assert len(fake.requests) == 3 and len(ids) == 1 and state.action_id in ids


async def test_unavailable_after_every_attempt_keeps_the_action_id_for_a_later_retry(
    client: Client, fake: FakeCards
) -> None:
    fake.script = [httpx.ReadTimeout("slow"), httpx.Response(502), httpx.Response(504)]
    with pytest.raises(ApiUnavailable) as info:
        await client.cards.act(MID, "approve")
    assert len(fake.requests) == 3
    assert {b["action_id"] for b in fake.bodies} == {info.value.action_id}
    state = await client.cards.act(MID, "approve", action_id=info.value.action_id)
    assert state.action_id == info.value.action_id == fake.bodies[-1]["action_id"]


@pytest.mark.parametrize(("status", "code"), [(400, "bad_request"), (403, "forbidden")])
async def test_other_refusals(client: Client, fake: FakeCards, status: int, code: str) -> None:
    fake.script = [httpx.Response(status, json={"status": status, "code": code, "msg": "no"})]
    with pytest.raises(ApiRequestFailed) as info:
        await client.cards.act(MID, "approve")
    assert not isinstance(info.value, CardConflict)
    assert (info.value.status, info.value.error_code) == (status, code)
    assert len(fake.requests) == 1, "a refusal is not retried"

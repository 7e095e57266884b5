"""Callback card types on a real node with a real business server on loopback: the request
is signed like the webhooks, the answer applied by compare-and-set on the version it was
decided on; a slow, failing, timing-out, repeated, late or nonsensical business server never
overwrites newer state (the actor sees the conflict); ephemeral answers reach only the
actor's devices."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.api.webhooks import verify
from magpie.app import Node
from tests.api.conv_support import cmds, next_cmd
from tests.cards.business import Business, Call
from tests.cards.support import act, user
from tests.support.nodes import (
    API_KEY,
    add_user,
    api,
    connect,
    make_group,
    running_node,
    settle,
    time_scale,
)
from tests.support.postgres import new_schema

TIMEOUT = 1.0 * time_scale()
DOC = {"version": 1, "blocks": [{"type": "header", "text": "Asked"}]}


def registration(url: str) -> dict[str, Any]:
    return {
        "name": "ask",
        "version": 1,
        "initial_status": "open",
        "statuses": ["pending"],
        "terminal": ["closed"],
        "state_schema": {
            "type": "object",
            "properties": {"n": {"type": "integer"}, "note": {"type": "string"}},
            "required": ["n"],
        },
        "initial_state": {"n": 0},
        "actions": [
            {"name": "ask", "label": "Ask", "who": {"members": True}, "handler": "callback"},
            {"name": "close", "label": "Close", "who": {"roles": ["creator"]}},
        ],
        "transitions": [
            {"from": "open", "action": "close", "to": "closed", "ephemeral": "Closed for all"},
            {"from": "pending", "action": "close", "to": "closed"},
        ],
        "callback_url": url,
    }


async def by_params(call: Call) -> tuple[int, Any]:
    """The test says in the action's params how the business server answers."""
    params = call.json()["params"]
    await asyncio.sleep(params.get("delay", 0) * time_scale())
    return params.get("code", 200), params.get("reply", {})


@pytest.fixture
async def business() -> AsyncIterator[Business]:
    async with Business(by_params) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
async def node(
    tmp_path: Path, business: Business, request: pytest.FixtureRequest
) -> AsyncIterator[Node]:
    """A node on each store (the compare-and-set of an answer is the store's)."""
    options: dict[str, Any] = {}
    if request.param == "postgresql":
        schema = new_schema(request.getfixturevalue("pg_database"), "cards")
        options = {"store_url": schema, "store_pool_size": 4}
    async with running_node(
        tmp_path,
        card_callback_timeout=TIMEOUT,
        card_callback_attempts=3,
        card_callback_backoff=0.05,
        **options,
    ) as n:
        for uid in ("a", "b", "c"):
            await add_user(n, uid)
        await make_group(n, "g1", ["a", "b", "c"])
        async with api(n) as http:
            r = await http.post("/card-types", json=registration(business.url))
            assert r.status_code == 200, r.text
        yield n


@pytest.fixture
async def mid(node: Node) -> int:
    async with user(node, "c") as c:
        body = {"channel_id": "g1", "channel_type": 2, "card": {"type": "ask@1", "title": "Q"}}
        r = await c.post("/cards", json=body)
        assert r.status_code == 200, r.text
        return int(r.json()["message_id"])


async def ask(node: Node, uid: str, mid: int, base: int, **params: Any) -> httpx.Response:
    extra = {k: params.pop(k) for k in ("action_id", "confirm") if k in params}
    async with user(node, uid) as client:
        return await act(client, mid, "ask", params, base=base, **extra)


async def card(node: Node, mid: int) -> dict[str, Any]:
    async with user(node, "c") as c:
        out: dict[str, Any] = (await c.get(f"/cards/{mid}")).json()
        return out


async def test_the_callback_is_signed_and_its_answer_applied(
    node: Node, mid: int, business: Business
) -> None:
    reply = {"state": {"n": 1}, "status": "pending", "doc": DOC, "ephemeral": {"text": "hi"}}
    r = await ask(node, "a", mid, 1, reply=reply)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["status"], got["state"], got["document"]) == ("pending", {"n": 1}, DOC)
    assert got["ephemeral"] == {"text": "hi", "doc": None} and got["changed"] is True
    assert got["version"] == 2 and got["op_id"] > 0
    (call,) = business.calls
    h = call.headers
    assert verify(API_KEY.encode(), h["x-magpie-timestamp"], call.body, h["x-magpie-signature"])
    assert not verify(
        b"another secret", h["x-magpie-timestamp"], call.body, h["x-magpie-signature"]
    )
    body = call.json()
    assert body["callback_id"] == h["x-magpie-event-id"] and body["event"] == "card.callback"
    assert (body["type"], body["action"], body["actor"]["uid"]) == ("ask@1", "ask", "a")
    assert body["message_id"] == mid and body["channel_id"] == "g1"
    assert body["card"]["version"] == 1 and body["card"]["state"] == {"n": 0}
    assert body["card"]["status"] == "open" and body["card"]["creator"] == "c"
    seen = await card(node, mid)
    assert seen["state"] == {"n": 1} and seen["document"] == DOC and "ephemeral" not in seen
    async with user(node, "c") as c:
        ops = (await c.get(f"/cards/{mid}/ops")).json()["data"]
    assert [(o["action"], o["result"], o["actor_uid"]) for o in ops] == [
        ("create", "applied", "c"),
        ("ask", "applied", "a"),
    ]


async def test_retried_with_the_same_callback_id(node: Node, mid: int, business: Business) -> None:
    async def flaky(call: Call) -> tuple[int, Any]:
        return (500, {}) if len(business.calls) < 3 else (200, {"state": {"n": 3}})

    business.decide = flaky
    r = await ask(node, "a", mid, 1)
    assert r.status_code == 200 and r.json()["state"] == {"n": 3}, r.text
    ids = {c.headers["x-magpie-event-id"] for c in business.calls}
    assert len(business.calls) == 3 and len(ids) == 1


async def test_a_failing_business_server_changes_nothing(
    node: Node, mid: int, business: Business
) -> None:
    r = await ask(node, "a", mid, 1, code=500)
    assert r.status_code == 502, r.text
    assert (r.json()["code"], r.json()["reason"]) == ("bad_gateway", "callback_failed")
    assert len(business.calls) == 3
    r = await ask(node, "a", mid, 1, code=403)
    assert r.status_code == 502 and r.json()["reason"] == "callback_failed", r.text
    assert len(business.calls) == 4, "a 4xx is not tried again"
    seen = await card(node, mid)
    assert (seen["version"], seen["state"], seen["status"]) == (1, {"n": 0}, "open")


async def test_a_timing_out_business_server_changes_nothing(
    node: Node, mid: int, business: Business
) -> None:
    late = {"state": {"n": 99}, "status": "pending"}
    r = await ask(node, "a", mid, 1, delay=4 * TIMEOUT / time_scale(), reply=late)
    assert r.status_code == 502 and r.json()["reason"] == "callback_timeout", r.text
    assert len(business.calls) == 3
    await settle(4 * TIMEOUT)  # the late answers arrive on closed connections
    seen = await card(node, mid)
    assert (seen["version"], seen["state"]) == (1, {"n": 0})


async def test_a_slow_answer_never_overwrites_a_newer_state(
    node: Node, mid: int, business: Business
) -> None:
    slow = asyncio.create_task(ask(node, "a", mid, 1, delay=0.6, reply={"state": {"n": 100}}))
    while not business.calls:
        await asyncio.sleep(0.01)
    fast = await ask(node, "b", mid, 1, reply={"state": {"n": 7}, "status": "pending"})
    assert fast.status_code == 200 and fast.json()["version"] == 2, fast.text
    lost = await slow
    assert lost.status_code == 409, lost.text
    body = lost.json()
    assert body["reason"] == "stale" and body["can_confirm"] is True
    assert body["winner"]["uid"] == "b" and body["winner"]["action"] == "ask"
    assert body["current"]["state"] == {"n": 7} and body["current"]["version"] == 2
    assert (await card(node, mid))["state"] == {"n": 7}
    # the same click on the old version again: refused before the business server is asked
    calls = len(business.calls)
    again = await ask(node, "a", mid, 1, reply={"state": {"n": 100}})
    assert again.status_code == 409 and again.json()["reason"] == "stale", again.text
    assert len(business.calls) == calls
    # confirmed: asked again on the new version, applied
    confirmed = await ask(node, "a", mid, 1, confirm=True, reply={"state": {"n": 8}})
    assert confirmed.status_code == 200 and confirmed.json()["state"] == {"n": 8}, confirmed.text
    assert business.calls[-1].json()["card"]["version"] == 2


async def test_an_action_answered_twice_applies_once(
    node: Node, mid: int, business: Business
) -> None:
    answers = iter([{"state": {"n": 1}}, {"state": {"n": 2}, "status": "pending"}])

    async def twice(call: Call) -> tuple[int, Any]:
        answer = next(answers)
        await asyncio.sleep(0.2 * time_scale())
        return 200, answer

    business.decide = twice
    # the client sends its click again while the first is still with the business server
    first, second = await asyncio.gather(
        ask(node, "a", mid, 1, action_id="same"), ask(node, "a", mid, 1, action_id="same")
    )
    assert first.status_code == second.status_code == 200, second.text
    assert sorted([first.json()["duplicate"], second.json()["duplicate"]]) == [False, True]
    assert second.json()["op_id"] == first.json()["op_id"]
    ids = [c.headers["x-magpie-event-id"] for c in business.calls]
    assert len(ids) == 2 and ids[0] == ids[1], "the business server can tell the repeat"
    seen = await card(node, mid)
    assert seen["version"] == 2 and seen["state"]["n"] in (1, 2)
    assert seen["state"] == first.json()["state"] == second.json()["state"]
    # once applied, a repeat is answered from the log without asking again
    third = await ask(node, "a", mid, 1, action_id="same")
    assert third.status_code == 200 and third.json()["duplicate"] is True, third.text
    assert len(business.calls) == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"not json",
        [1, 2],
        {"status": "nope"},
        {"state": {"n": "x"}},
        {"state": [1]},
        {"doc": {"version": 1, "blocks": [{"type": "header"}]}},
        {"ephemeral": {"text": 5}},
        {"refuse": {"reason": "Bad Reason"}},
        {"refuse": {"reason": "no"}, "state": {"n": 1}},
    ],
    ids=["not-json", "array", "status", "schema", "patch", "doc", "ephemeral", "reason", "mixed"],
)
async def test_nonsense_answers_change_nothing(
    node: Node, mid: int, business: Business, reply: Any
) -> None:
    async def answer(_: Call) -> tuple[int, Any]:
        return 200, reply

    business.decide = answer
    r = await ask(node, "a", mid, 1)
    assert r.status_code == 502, r.text
    assert (r.json()["code"], r.json()["reason"]) == ("bad_gateway", "callback_invalid")
    assert (await card(node, mid))["version"] == 1


async def test_refusals_and_answers_without_a_change(node: Node, mid: int) -> None:
    refuse = {"refuse": {"reason": "not_today", "message": "Not today"}}
    r = await ask(node, "a", mid, 1, reply=refuse)
    assert r.status_code == 409, r.text
    body = r.json()
    assert (body["reason"], body["msg"], body["current"]["version"]) == (
        "not_today",
        "Not today",
        1,
    )
    r = await ask(node, "a", mid, 1, reply={"ephemeral": {"text": "You already asked"}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["changed"] is False and got["op_id"] == 0 and got["version"] == 1
    assert got["ephemeral"] == {"text": "You already asked", "doc": None}


async def test_ephemeral_answers_reach_only_the_actor(node: Node, mid: int) -> None:
    phone = await connect(node, "a", "tok-a", device_flag=0)
    laptop = await connect(node, "a", "tok-a", device_flag=1)
    other = await connect(node, "b", "tok-b")
    creator = await connect(node, "c", "tok-c")
    try:
        doc = {"version": 1, "blocks": [{"type": "text", "text": "only *you*"}]}
        r = await ask(node, "a", mid, 1, reply={"ephemeral": {"text": "psst", "doc": doc}})
        assert r.status_code == 200, r.text
        for device in (phone, laptop):
            _, cmd = await next_cmd(device, "cardEphemeral")
            param = cmd["param"]
            assert (param["text"], param["doc"], param["action"]) == ("psst", doc, "ask")
            assert param["message_id"] == mid and param["channel_id"] == "g1"
        async with user(node, "c") as c:
            closed = await act(c, mid, "close", base=1)
        assert closed.status_code == 200, closed.text
        assert closed.json()["ephemeral"] == {"text": "Closed for all", "doc": None}
        _, cmd = await next_cmd(creator, "cardEphemeral")
        assert cmd["param"]["text"] == "Closed for all"
        await settle(0.3)
        assert cmds(other, "cardEphemeral") == [], "another member hears nothing"
        assert cmds(phone, "cardEphemeral") == [], "the actor hears only their own"
        async with user(node, "b") as b:
            body = {"channel_id": "g1", "channel_type": 2, "start_message_seq": 0, "limit": 100}
            body |= {"login_uid": "b", "end_message_seq": 0, "pull_mode": 1}
            history = await b.post("/channel/messagesync", json=body)
        assert "psst" not in history.text and "cardEphemeral" not in history.text
    finally:
        for client in (phone, laptop, other, creator):
            await client.close()

"""The Python SDK's card calls against a real node: ``cards.create`` and the typed helpers,
``cards.get``, ``cards.records`` paging, the refusals it raises."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from magpie.app import Node
from magpie.client import Channel, Client, ClientOptions
from magpie.client.cardtext import render
from magpie.client.errors import ApiRequestFailed, InvalidArgument
from tests.support.nodes import API_KEY

G1 = Channel.group("g1")

Sdk = Callable[[str], Awaitable[Client]]


@pytest.fixture
async def sdk(node: Node, tmp_path: Path) -> AsyncIterator[Sdk]:
    opened: list[Client] = []

    async def make(uid: str) -> Client:
        client = Client(
            f"ws://127.0.0.1:{node.ws_port}",
            uid,
            f"tok-{uid}",
            cache_path=tmp_path / f"{uid}.db",
            api_url=f"http://127.0.0.1:{node.api_port}",
            options=ClientOptions(card_retry_delay=0),
        )
        await client.open(connect=False)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.close()


async def test_typed_helpers_create_each_built_in_card(sdk: Sdk) -> None:
    a = await sdk("a")
    vote = await a.cards.create_vote(G1, "Lunch", ["pizza", "sushi"], multiple=True)
    approval = await a.cards.create_approval(G1, "Expense", ["b", "c"], mode="all")
    survey = await a.cards.create_survey(G1, "Q", [{"prompt": "Why?", "kind": "text"}])
    task = await a.cards.create_task(G1, "Ship it", ["b"])
    made = {s.data["type_tag"]: s for s in (vote, approval, survey, task)}
    assert set(made) == {"vote@1", "approval@1", "survey@1", "task@1"}
    assert all(s.message_id > 0 and s.version == 1 for s in made.values())
    assert vote.data["state"]["multiple"] is True and approval.data["state"]["mode"] == "all"
    assert (await a.cards.get(task.message_id)).status == "todo"


async def test_create_is_idempotent_by_client_msg_no_and_refusals_raise(sdk: Sdk) -> None:
    a = await sdk("a")
    card = {"type": "vote@1", "title": "Once", "options": ["x", "y"]}
    first = await a.cards.create(G1, card, client_msg_no="once-1")
    again = await a.cards.create(G1, card, client_msg_no="once-1")
    assert first.message_id == again.message_id
    with pytest.raises(ApiRequestFailed) as info:
        await a.cards.create(G1, {"type": "vote@1", "title": "Bad", "options": ["only"]})
    assert info.value.status == 400
    with pytest.raises(ApiRequestFailed) as outsider:
        await a.cards.create(Channel.group("nowhere"), card)
    assert outsider.value.status == 403
    with pytest.raises(InvalidArgument):
        await a.cards.create(G1, {"title": "no type"})


async def test_act_get_and_page_the_records(sdk: Sdk) -> None:
    a, b, c = await sdk("a"), await sdk("b"), await sdk("c")
    vote = await a.cards.create_vote(G1, "Day", ["mon", "tue"])
    for n, voter in enumerate((a, b, c)):
        await voter.cards.act(vote.message_id, "vote", {"options": [n % 2]}, base_version=1)
    seen = await c.cards.get(vote.message_id)
    assert seen.data["state"]["tallies"] == [2, 1] and seen.data["my_vote"] == [0]
    first = await b.cards.records(vote.message_id, limit=2)
    rest = await b.cards.records(vote.message_id, after=str(first["next"]), limit=2)
    rows = [*first["records"], *rest["records"]]
    assert [(r["uid"], r["options"]) for r in rows] == [("a", [0]), ("b", [1]), ("c", [0])]
    assert rest["next"] is None
    with pytest.raises(ApiRequestFailed) as info:
        await (await sdk("out")).cards.get(vote.message_id)
    assert info.value.status == 404


def _leave_type() -> dict[str, Any]:
    form = {
        "type": "form",
        "id": "decide",
        "elements": [
            {"type": "input", "name": "note", "label": "Note"},
            {"type": "button", "action": "approve", "label": "Approve"},
        ],
    }
    return {
        "name": "leave",
        "version": 1,
        "title": "Leave request",
        "initial_status": "pending",
        "terminal": ["approved"],
        "state_schema": {"type": "object"},
        "initial_state": {},
        "actions": [
            {
                "name": "approve",
                "label": "Approve",
                "who": {"roles": ["listed"]},
                "params": {"type": "object", "properties": {"note": {"type": "string"}}},
            }
        ],
        "transitions": [
            {"from": "pending", "action": "approve", "to": "approved", "guard": "first_wins"}
        ],
        "doc": {"version": 1, "blocks": [{"type": "header", "text": "Leave"}, form]},
    }


async def test_register_type_and_a_custom_card_rendered_as_text(sdk: Sdk) -> None:
    a, b = await sdk("a"), await sdk("b")
    registered = await a.cards.register_type(_leave_type(), api_key=API_KEY)
    assert registered["tag"] == "leave@1" and registered["created"] is True
    assert (await a.cards.register_type(_leave_type(), api_key=API_KEY))["created"] is False
    with pytest.raises(ApiRequestFailed) as info:
        await a.cards.register_type({**_leave_type(), "title": "other"}, api_key=API_KEY)
    assert info.value.status == 409
    with pytest.raises(ApiRequestFailed) as wrong_key:
        await a.cards.register_type(_leave_type(), api_key="tok-a")
    assert wrong_key.value.status == 401
    card = await a.cards.create_custom(G1, "leave@1", title="Leave", listed=["b"])
    assert card.status == "pending" and card.data["document"]["blocks"][0]["text"] == "Leave"
    shown = render((await b.cards.get(card.message_id)).data)
    assert "== Leave ==" in shown.lines
    approve = shown.action(1)
    assert approve is not None and approve.enabled and list(approve.inputs) == ["note"]
    done = await b.cards.act(card.message_id, approve.action, {"note": "ok"}, base_version=1)
    assert done.status == "approved"
    after = render((await a.cards.get(card.message_id)).data)
    assert after.lines[0].endswith("— approved (v2)") and not any(x.enabled for x in after.actions)

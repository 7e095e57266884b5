"""Business-defined card types with declared transitions, on a real node (SQLite and
PostgreSQL): registration (validated, immutable, idempotent), creation with documents, and
each guard raced by 20 users — exactly the declared outcome."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.app import Node
from tests.cards.support import act, add_tokens, bearer, create, user
from tests.support.nodes import api, make_group, running_node, time_scale
from tests.support.postgres import new_schema

RACERS = [f"r{i:02d}" for i in range(20)]
DOC = {
    "version": 1,
    "blocks": [
        {"type": "header", "text": "Claim the task"},
        {"type": "actions", "elements": [{"type": "button", "action": "claim", "label": "Mine"}]},
    ],
}


def registration(name: str, guard: str, **extra: Any) -> dict[str, Any]:
    transition: dict[str, Any] = {"from": "open", "action": "go", "to": "done", "guard": guard}
    if guard == "each_user_once":
        transition["to"] = "open"
    transition.update(extra)
    return {
        "name": name,
        "version": 1,
        "title": f"{name} card",
        "initial_status": "open",
        "terminal": ["done"],
        "state_schema": {
            "type": "object",
            "properties": {"winner_note": {"type": "string"}},
            "additionalProperties": False,
        },
        "initial_state": {},
        "actions": [
            {"name": "go", "label": "Go", "who": {"members": True}},
            {"name": "stop", "label": "Stop", "style": "danger", "who": {"roles": ["creator"]}},
        ],
        "transitions": [
            transition,
            {"from": "open", "action": "stop", "to": "done", "set": {"winner_note": "stopped"}},
        ],
        "doc": DOC,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
async def node(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    """A node on each store (the registration and the races go through the store)."""
    options: dict[str, Any] = {}
    if request.param == "postgresql":
        schema = new_schema(request.getfixturevalue("pg_database"), "cards")
        options = {"store_url": schema, "store_pool_size": 4}
    async with running_node(tmp_path, **options) as n:
        await add_tokens(n, ["boss", *RACERS, "out"])
        await make_group(n, "g20", ["boss", *RACERS])
        yield n


@pytest.fixture
async def http(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with api(node) as client:
        yield client


def racer(node: Node) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}",
        timeout=30 * time_scale(),
        limits=httpx.Limits(max_connections=200),
    )


async def register(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await http.post("/card-types", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def new_card(node: Node, tag: str, **card: Any) -> dict[str, Any]:
    async with user(node, "boss") as boss:
        return await create(boss, "g20", type=tag, **card)


async def test_registration_is_validated_immutable_and_idempotent(
    http: httpx.AsyncClient, node: Node
) -> None:
    body = registration("claim", "first_wins")
    first = await register(http, body)
    assert (first["tag"], first["created"]) == ("claim@1", True)
    again = await register(http, body)
    assert (again["tag"], again["created"]) == ("claim@1", False)
    other = await http.post("/card-types", json={**body, "title": "another"})
    assert other.status_code == 409 and other.json()["reason"] == "type_exists"
    got = await http.get("/card-types/claim@1")
    assert got.status_code == 200 and got.json()["type"]["title"] == "claim card"
    assert (await http.get("/card-types/nope@1")).status_code == 404
    published = (await http.get("/openapi.json")).json()["components"]["schemas"]
    assert published["CardDocument"]["properties"]["version"] == {"const": 1}
    assert published["CardDocument"]["properties"]["blocks"]["maxItems"] == 50
    big = {**body, "name": "big", "title": "x", "initial_state": {"pad": "y" * 70_000}}
    r = await http.post("/card-types", json=big)
    assert r.status_code == 413 and r.json()["code"] == "too_large", r.text
    listed = (await http.get("/card-types")).json()["types"]
    assert [t["tag"] for t in listed] == ["claim@1"] and listed[0]["type"] == got.json()["type"]
    # a user token may not register
    async with user(node, "boss") as boss:
        assert (await boss.post("/card-types", json=body)).status_code == 401
    bad_cases: list[tuple[dict[str, Any], str]] = [
        ({**body, "name": "vote"}, "type/name"),
        ({**body, "name": "Bad Name"}, "type/name"),
        ({**body, "initial_state": {"winner_note": 3}}, "type/initial_state"),
        ({**body, "state_schema": {"type": "nonsense"}}, "type/state_schema"),
        ({**body, "state_schema": {"$ref": "https://example.com/s.json"}}, "type/state_schema"),
        (
            {**body, "transitions": [{"from": "open", "action": "nope", "to": "done"}]},
            "type/transitions/0/action",
        ),
        (
            {
                **body,
                "transitions": [
                    {"from": "done", "action": "go", "to": "open"},
                    body["transitions"][1],
                ],
            },
            "type/transitions",
        ),
        (
            {
                **body,
                "transitions": [
                    {"from": "open", "action": "go", "to": "done", "guard": "quorum"},
                    body["transitions"][1],
                ],
            },
            "type/transitions/0",
        ),
        (
            {
                **body,
                "actions": [
                    *body["actions"],
                    {"name": "ask", "who": {"members": True}, "handler": "callback"},
                ],
            },
            "type/callback_url",
        ),
        (
            {**body, "actions": [{"name": "go", "who": {}}, body["actions"][1]]},
            "type/actions/0/who",
        ),
        ({**body, "doc": {"version": 1, "blocks": [{"type": "header"}]}}, "type/doc/blocks/0"),
    ]
    for bad, field in bad_cases:
        r = await http.post(
            "/card-types",
            json={**bad, "name": bad.get("name", "x") if bad["name"] != "claim" else "other"},
        )
        assert r.status_code == 400, (field, r.text)
        answer = r.json()
        assert answer["code"] == "invalid" and answer["field"] == field, (field, answer)
        assert answer["reason"] in ("bad_type", "bad_document"), answer


async def test_cards_of_a_registered_type_validate_their_document_and_state(
    http: httpx.AsyncClient, node: Node
) -> None:
    await register(http, registration("claim", "first_wins"))
    async with user(node, "boss") as boss:
        bad_doc = {"version": 1, "blocks": [{"type": "text", "text": ""}]}
        base = {"channel_id": "g20", "channel_type": 2}
        r = await boss.post("/cards", json={**base, "card": {"type": "claim@1", "doc": bad_doc}})
        assert r.status_code == 400 and r.json()["field"] == "card.doc/blocks/0/text", r.text
        deep: Any = {}
        for _ in range(10):
            deep = {"a": deep}
        doc = {
            "version": 1,
            "blocks": [
                {
                    "type": "actions",
                    "elements": [{"type": "button", "action": "go", "label": "x", "value": deep}],
                }
            ],
        }
        r = await boss.post("/cards", json={**base, "card": {"type": "claim@1", "doc": doc}})
        assert r.status_code == 400 and r.json()["reason"] == "document_too_deep", r.text
        big = {"version": 1, "blocks": [{"type": "text", "text": "x" * 3000}] * 6}
        r = await boss.post("/cards", json={**base, "card": {"type": "claim@1", "doc": big}})
        assert r.status_code == 413 and r.json()["reason"] == "document_too_large", r.text
        r = await boss.post(
            "/cards", json={**base, "card": {"type": "claim@1", "state": {"winner_note": 1}}}
        )
        assert r.status_code == 400 and "state_schema" in r.json()["msg"], r.text
        r = await boss.post("/cards", json={**base, "card": {"type": "claim@2"}})
        assert r.status_code == 400 and r.json()["field"] == "card.type", r.text
        mine = {"version": 1, "blocks": [{"type": "header", "text": "mine"}]}
        card = await create(boss, "g20", type="claim@1", doc=mine)
    assert card["title"] == "claim card" and card["document"] == mine
    assert card["type_tag"] == "claim@1" and card["status"] == "open"
    assert [a["action"] for a in card["actions"]] == ["go", "stop"]
    assert card["state"] == {} and card["counts"] == {} and card["my_actions"] == []
    plain = await new_card(node, "claim@1", title="Default doc")
    assert plain["document"] == DOC
    async with user(node, "r00") as r00:
        seen = (await r00.get(f"/cards/{plain['message_id']}")).json()
    assert [a["action"] for a in seen["actions"]] == ["go"]
    assert seen["unavailable"]["stop"] == "only the creator may stop"


async def race(node: Node, mid: int, *, twice: bool = False) -> list[httpx.Response]:
    clicks = [(uid, n) for uid in RACERS for n in range(2 if twice else 1)]
    async with racer(node) as http:
        return await asyncio.gather(
            *(
                act(http, mid, "go", base=1, action_id=f"{uid}-{n}", headers=bearer(uid))
                for uid, n in clicks
            )
        )


async def ops(node: Node, mid: int) -> list[dict[str, Any]]:
    async with user(node, "boss") as boss:
        rows: list[dict[str, Any]] = (await boss.get(f"/cards/{mid}/ops")).json()["data"]
    return rows


async def test_first_wins_raced_by_twenty(http: httpx.AsyncClient, node: Node) -> None:
    await register(http, registration("claim", "first_wins"))
    mid = (await new_card(node, "claim@1"))["message_id"]
    answers = await race(node, mid)
    codes = Counter(r.status_code for r in answers)
    assert codes == {200: 1, 409: 19}, codes
    (won,) = [r for r in answers if r.status_code == 200]
    winner = won.json()["updated_by"]["uid"]
    assert won.json()["status"] == "done" and won.json()["terminal"] is True
    for r in answers:
        if r.status_code == 409:
            body = r.json()
            assert body["winner"]["uid"] == winner and body["winner"]["action"] == "go"
            assert body["reason"] in ("closed", "stale") and body["current"]["status"] == "done"
    results = Counter(o["result"] for o in (await ops(node, mid))[1:])
    assert results == {"applied": 1, "conflict": 19}, results


async def test_each_user_once_raced_by_twenty_clicking_twice(
    http: httpx.AsyncClient, node: Node
) -> None:
    await register(http, registration("join", "each_user_once"))
    mid = (await new_card(node, "join@1"))["message_id"]
    answers = await race(node, mid, twice=True)
    codes = Counter(r.status_code for r in answers)
    assert codes == {200: 20, 409: 20}, codes
    assert {r.json()["reason"] for r in answers if r.status_code == 409} == {"already_done"}
    async with user(node, "r05") as r05:
        seen = (await r05.get(f"/cards/{mid}")).json()
    assert seen["counts"] == {"go": 20} and seen["my_actions"] == ["go"]
    assert seen["status"] == "open" and "go" in seen["unavailable"]
    async with user(node, "boss") as boss:
        boss_view = (await boss.get(f"/cards/{mid}")).json()
    assert boss_view["my_actions"] == [] and "go" in [a["action"] for a in boss_view["actions"]]


async def test_quorum_raced_by_twenty(http: httpx.AsyncClient, node: Node) -> None:
    await register(http, registration("quorum", "quorum", quorum=5, set={"winner_note": "five"}))
    mid = (await new_card(node, "quorum@1"))["message_id"]
    answers = await race(node, mid)
    codes = Counter(r.status_code for r in answers)
    assert codes == {200: 5, 409: 15}, codes
    async with user(node, "boss") as boss:
        seen = (await boss.get(f"/cards/{mid}")).json()
    assert seen["status"] == "done" and seen["counts"] == {"go": 5}
    assert seen["state"] == {"winner_note": "five"}
    statuses = [r.json()["status"] for r in answers if r.status_code == 200]
    assert statuses.count("done") == 1 and statuses.count("open") == 4
    refusals = Counter(r.json()["reason"] for r in answers if r.status_code == 409)
    assert set(refusals) <= {"closed", "stale"}, refusals


async def test_declared_transition_with_set_and_outsider(
    http: httpx.AsyncClient, node: Node
) -> None:
    await register(http, registration("claim", "first_wins"))
    mid = (await new_card(node, "claim@1"))["message_id"]
    async with user(node, "r01") as r01:
        r = await act(r01, mid, "stop", base=1)
        assert r.status_code == 403 and r.json()["reason"] == "not_allowed", r.text
    async with user(node, "out") as out:
        assert (await act(out, mid, "go", base=1)).status_code == 404
    async with user(node, "boss") as boss:
        r = await act(boss, mid, "stop", base=1)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == {"winner_note": "stopped"} and r.json()["status"] == "done"


async def test_documents_follow_the_status_and_the_counts(
    http: httpx.AsyncClient, node: Node
) -> None:
    progress = {"type": "progress", "label": "{{counts.go}} of 5", "value": 0, "max": 5}
    body = registration("poll", "quorum", quorum=5, set={"winner_note": "five"})
    body["doc"] = {
        "version": 1,
        "blocks": [
            {"type": "header", "text": "{{title}} is {{status}}"},
            {**progress, "value_from": "counts.go"},
            {"type": "actions", "elements": [{"type": "button", "action": "go", "label": "Go"}]},
        ],
    }
    done = {"type": "header", "text": "Done: {{state.winner_note}}{{state.nothing}}"}
    body["status_docs"] = {"done": {"version": 1, "blocks": [done]}}
    await register(http, body)
    bad = {**body, "name": "poll2", "status_docs": {"nope": body["status_docs"]["done"]}}
    r = await http.post("/card-types", json=bad)
    assert r.status_code == 400 and r.json()["field"] == "type/status_docs/nope", r.text
    card = await new_card(node, "poll@1", title="Lunch")
    assert card["document"]["blocks"][0] == {"type": "header", "text": "Lunch is open"}
    assert card["document"]["blocks"][1] == {**progress, "label": "0 of 5"}
    async with user(node, "r00") as r00:
        r = await act(r00, card["message_id"], "go", base=1)
    assert r.json()["document"]["blocks"][1] == {**progress, "label": "1 of 5", "value": 1}
    await race(node, card["message_id"])
    async with user(node, "boss") as boss:
        seen = (await boss.get(f"/cards/{card['message_id']}")).json()
    assert seen["status"] == "done"
    assert seen["document"] == {"version": 1, "blocks": [{"type": "header", "text": "Done: five"}]}


async def test_actions_for_named_users(http: httpx.AsyncClient, node: Node) -> None:
    body = registration("named", "first_wins")
    body["actions"][0]["who"] = {"users": ["r01", "r02"], "roles": ["creator"]}
    body["actions"][0]["who_words"] = "the on-call pair or the creator"
    await register(http, body)
    mid = (await new_card(node, "named@1"))["message_id"]
    async with user(node, "r03") as r03:
        seen = (await r03.get(f"/cards/{mid}")).json()
        assert seen["unavailable"]["go"] == "only the on-call pair or the creator may go"
        r = await act(r03, mid, "go", base=1)
        assert r.status_code == 403 and r.json()["reason"] == "not_allowed", r.text
    async with user(node, "r02") as r02:
        assert [a["action"] for a in (await r02.get(f"/cards/{mid}")).json()["actions"]] == ["go"]
        r = await act(r02, mid, "go", base=1)
        assert r.status_code == 200 and r.json()["status"] == "done", r.text


async def test_a_people_block_follows_the_listed_users(http: httpx.AsyncClient, node: Node) -> None:
    body = registration("signoff", "quorum", quorum=3)
    body["actions"][0]["who"] = {"roles": ["listed"]}
    body["doc"] = {
        "version": 1,
        "blocks": [
            {"type": "people", "label": "Sign-off", "people_from": "listed"},
            {"type": "people", "people": [{"uid": "boss", "state": "waiting"}]},
        ],
    }
    await register(http, body)
    signers = ["r01", "r02", "r03"]
    card = await new_card(node, "signoff@1", listed=signers)
    pending = [{"uid": u, "state": "pending"} for u in signers]
    assert card["document"]["blocks"][0] == {
        "type": "people",
        "label": "Sign-off",
        "people": pending,
    }
    async with user(node, "r02") as r02:
        r = await act(r02, card["message_id"], "go", base=1)
    people = r.json()["document"]["blocks"][0]["people"]
    assert [p["state"] for p in people] == ["pending", "go", "pending"]
    nobody = await new_card(node, "signoff@1")
    assert nobody["document"]["blocks"] == [body["doc"]["blocks"][1]], "an empty list is left out"

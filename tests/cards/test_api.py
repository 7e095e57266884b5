"""The card endpoints over HTTP on a real node: creation, actions and their answers,
idempotency, refusals, per-viewer projections, the history panel, the sync hooks, the
business webhook, and the Python SDK's ``client.cards.act`` against the real thing."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.api.webhooks import verify
from magpie.app import Node
from magpie.cards import CARD_CONTENT_TYPE
from magpie.client import CardConflict, Client, ClientOptions
from tests.api.ext_support import ext_tables
from tests.api.test_webhooks import Receiver
from tests.cards.support import GROUP, act, add_tokens, create, now_ms, sync_rows, user
from tests.support.nodes import API_KEY, make_group, running_node, settle, time_scale

APPROVAL = {"type": "approval@1", "title": "Expense", "approvers": ["b", "c"], "mode": "all"}


async def messagesync(client: httpx.AsyncClient, uid: str) -> list[dict[str, Any]]:
    body = {"login_uid": uid, "channel_id": "g1", "channel_type": GROUP, "limit": 100}
    r = await client.post("/channel/messagesync", json=body)
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


async def test_a_member_creates_a_card_message_with_a_fallback_and_initial_state(
    a: httpx.AsyncClient, b: httpx.AsyncClient
) -> None:
    card = await create(a, **APPROVAL)
    assert (card["type"], card["type_tag"], card["status"], card["version"]) == (
        "approval",
        "approval@1",
        "pending",
        1,
    )
    assert card["creator"] == "a" and card["message_seq"] == 1 and card["extra_version"] == 1
    assert [x["action"] for x in card["actions"]] == ["withdraw"]
    (message,) = await messagesync(b, "b")
    payload = json.loads(base64.b64decode(message["payload"]))
    assert payload["type"] == CARD_CONTENT_TYPE == 3000
    assert payload["content"].startswith("[Approval] Expense")
    assert payload["card"] == card["definition"] and payload["card"]["type"] == "approval@1"
    view = message["message_extra"]["extra"]["card"]  # the sync hook: b's projection
    assert view["can_act"] and [x["action"] for x in view["actions"]] == ["approve", "reject"]
    assert "rev" not in view and "data" not in view
    assert message["message_extra"]["status"] == "pending"


async def test_creation_by_the_business_server_and_refusals(
    http: httpx.AsyncClient, a: httpx.AsyncClient, out: httpx.AsyncClient
) -> None:
    body: dict[str, Any] = {"channel_id": "g1", "channel_type": GROUP, "card": APPROVAL}
    r = await http.post("/cards", json={**body, "uid": "a", "client_msg_no": "c-1"})
    assert r.status_code == 200 and r.json()["creator"] == "a"
    again = await http.post("/cards", json={**body, "uid": "a", "client_msg_no": "c-1"})
    assert again.json()["message_id"] == r.json()["message_id"]  # idempotent creation
    assert (await http.post("/cards", json=body)).status_code == 400  # whose card?
    assert (await out.post("/cards", json=body)).status_code == 403  # not a member
    bad_people = {**APPROVAL, "approvers": ["b", "out"]}
    r = await a.post("/cards", json={**body, "card": bad_people})
    assert r.status_code == 403 and "out" in r.json()["msg"]
    for card, field in [
        ({"type": "poll@9", "title": "t"}, "card.type"),
        ({"type": "approval@1"}, "card"),
        ({**APPROVAL, "mode": "most"}, "card"),
        ({**APPROVAL, "expires_at": now_ms() - 1}, "card"),
        ({"type": "vote@1", "title": "t", "options": ["only one"]}, "card"),
    ]:
        r = await a.post("/cards", json={**body, "card": card})
        assert (r.status_code, r.json()["field"]) == (400, field), card


async def test_actions_answer_with_the_projection_and_conflicts_with_the_winner(
    a: httpx.AsyncClient, b: httpx.AsyncClient, c: httpx.AsyncClient
) -> None:
    card = await create(a, **{**APPROVAL, "mode": "single"})
    mid = card["message_id_str"]
    r = await act(b, mid, "approve", {"comment": "fine"}, base=1, action_id="b-1")
    assert r.status_code == 200, r.text
    won = r.json()
    assert (won["status"], won["version"], won["can_act"], won["duplicate"]) == (
        "approved",
        2,
        False,
        False,
    )
    assert won["action_id"] == "b-1" and won["my_decision"]["comment"] == "fine"
    assert won["outcome"] == "Approved by b: fine"
    lost = await act(c, mid, "reject", base=1)
    assert lost.status_code == 409
    body = lost.json()
    assert (body["code"], body["reason"], body["can_confirm"]) == ("conflict", "closed", False)
    assert body["winner"]["uid"] == "b" and body["winner"]["action"] == "approve"
    assert body["at"] == body["winner"]["at"] and body["at"] > 1.7e12
    assert body["current"]["status"] == "approved" and body["current"]["version"] == 2
    assert (
        body["current"]["can_act"] is False and "approved" in body["current"]["unavailable_reason"]
    )


async def test_a_stale_click_still_legal_is_applied_only_with_confirm(
    a: httpx.AsyncClient, b: httpx.AsyncClient
) -> None:
    card = await create(a, type="task@1", title="Fix it", assignees=["b", "c"])
    mid, seen = card["message_id"], card["version"]
    r = await act(a, mid, "reassign", {"assignees": ["b", "d"]}, base=seen)
    assert r.status_code == 200 and r.json()["status"] == "todo"
    stale = await act(b, mid, "accept", base=seen)
    assert stale.status_code == 409
    body = stale.json()
    assert (body["reason"], body["can_confirm"]) == ("stale", True)
    assert body["winner"]["uid"] == "a" and body["winner"]["action"] == "reassign"
    assert body["current"]["state"]["assignees"] == ["b", "d"]
    ok = await act(b, mid, "accept", base=seen, confirm=True)
    assert ok.status_code == 200 and ok.json()["status"] == "doing"


async def test_the_same_action_id_five_times_has_one_effect(
    node: Node, a: httpx.AsyncClient, b: httpx.AsyncClient, c: httpx.AsyncClient
) -> None:
    card = await create(a, **APPROVAL)
    mid = card["message_id"]
    first = await act(b, mid, "approve", base=1, action_id="same")
    rest = [await act(b, mid, "approve", base=1, action_id="same") for _ in range(2)]
    rest += await asyncio.gather(
        *(act(b, mid, "approve", base=1, action_id="same") for _ in range(2))
    )
    assert [r.status_code for r in [first, *rest]] == [200] * 5
    assert [r.json()["duplicate"] for r in [first, *rest]] == [False] + [True] * 4
    assert {r.json()["op_id"] for r in [first, *rest]} == {first.json()["op_id"]}
    assert {r.json()["version"] for r in rest} == {2}
    # The id is the user's own: c's "same" is another action.
    theirs = await act(c, mid, "approve", base=2, action_id="same")
    assert theirs.status_code == 200 and theirs.json()["duplicate"] is False
    ops = (await b.get(f"/cards/{mid}/ops")).json()["data"]
    assert [(o["action"], o["actor_uid"], o["result"]) for o in ops] == [
        ("create", "a", "applied"),
        ("approve", "b", "applied"),
        ("approve", "c", "applied"),
    ]
    view = (await a.get(f"/cards/{mid}")).json()
    assert view["status"] == "approved" and view["state"]["approvals"] == 2


async def test_non_members_and_non_approvers_are_refused_and_nothing_changes(
    node: Node, a: httpx.AsyncClient, out: httpx.AsyncClient
) -> None:
    card = await create(a, **APPROVAL)
    mid = card["message_id"]
    before = ext_tables(node)
    async with user(node, "x") as x:
        refused = await act(x, mid, "approve", base=1)
        assert (refused.status_code, refused.json()["reason"]) == (403, "not_allowed")
        assert refused.json()["current"]["status"] == "pending"
        assert (await act(x, mid, "withdraw", base=1)).status_code == 403
    outsider = await act(out, mid, "approve", base=1)
    assert (outsider.status_code, outsider.json()["code"]) == (404, "not_found")  # no data
    assert "current" not in outsider.json()
    assert (await out.get(f"/cards/{mid}")).status_code == 404
    assert (await out.get(f"/cards/{mid}/ops")).status_code == 404
    ops = (await a.get(f"/cards/{mid}/ops")).json()["data"]
    # members' refusals are in the history; the outsider's attempt left no trace
    assert [(o["actor_uid"], o["result"], o["code"]) for o in ops[1:]] == [
        ("x", "forbidden", "not_allowed"),
        ("x", "forbidden", "not_allowed"),
    ]
    assert ext_tables(node) == before, "a refusal changed the card"


async def test_input_errors(a: httpx.AsyncClient, b: httpx.AsyncClient) -> None:
    card = await create(a, **APPROVAL)
    mid = card["message_id"]
    assert (await b.get("/cards/123")).status_code == 404
    assert (await b.get("/cards/abc")).status_code == 400
    r = await b.post(f"/cards/{mid}/actions", json={"action": "approve", "action_id": "z"})
    assert (r.status_code, r.json()["field"]) == (400, "base_version")
    r = await act(b, mid, "approve", {"comment": ["no"]}, base=1)
    assert (r.status_code, r.json()["code"], r.json()["reason"]) == (400, "invalid", "bad_params")
    r = await act(b, mid, "approve", base=7)
    assert (r.status_code, r.json()["reason"]) == (400, "bad_base_version")
    anon = httpx.AsyncClient(base_url=str(b.base_url))
    async with anon:
        assert (await anon.get(f"/cards/{mid}")).status_code == 401


async def test_projections_differ_per_viewer(
    node: Node, a: httpx.AsyncClient, b: httpx.AsyncClient, c: httpx.AsyncClient
) -> None:
    vote = await create(
        a, type="vote@1", title="Lunch", options=["pizza", "sushi"], results="closed"
    )
    mid = vote["message_id"]
    assert (await act(b, mid, "vote", {"options": [1]}, base=1)).status_code == 200
    mine, theirs = (await b.get(f"/cards/{mid}")).json(), (await c.get(f"/cards/{mid}")).json()
    assert mine["my_vote"] == [1] and theirs["my_vote"] is None
    assert mine["state"]["tallies"] is None and mine["state"]["voters"] == 1
    assert [x["action"] for x in theirs["actions"]] == ["vote"]
    assert "close" in theirs["unavailable"]
    assert [x["action"] for x in vote["actions"]] == ["vote", "close"]
    r = await act(a, mid, "close", base=2)
    assert r.status_code == 200 and r.json()["state"]["tallies"] == [0, 1]
    assert r.json()["state"]["voters_by_option"] == [[], ["b"]]
    survey = await create(
        a, type="survey@1", title="Q", questions=[{"prompt": "Why?", "kind": "text"}]
    )
    sid = survey["message_id"]
    assert (await act(b, sid, "respond", {"answers": {"q1": "because"}}, base=1)).status_code == 200
    owner, member = (await a.get(f"/cards/{sid}")).json(), (await c.get(f"/cards/{sid}")).json()
    assert owner["state"]["results"] == [
        {"id": "q1", "kind": "text", "answers": [{"uid": "b", "text": "because"}]}
    ]
    assert member["state"]["results"] is None and member["state"]["respondents"] == 1
    assert (await b.get(f"/cards/{sid}")).json()["my_response"]["answers"] == {"q1": "because"}


async def test_history_panel(a: httpx.AsyncClient, b: httpx.AsyncClient) -> None:
    card = await create(a, **APPROVAL)
    mid = card["message_id"]
    await act(b, mid, "approve", {"comment": "ok"}, base=1)
    ops = (await b.get(f"/cards/{mid}/ops")).json()
    history = (await b.get(f"/cards/{mid}/history", params={"after_op_id": 1})).json()
    assert ops["status"] == 200 and history["data"] == ops["data"][1:]
    row = ops["data"][1]
    assert {k: row[k] for k in ("action", "actor", "params", "status_before", "result")} == {
        "action": "approve",
        "actor": {"uid": "b"},
        "params": {"comment": "ok"},
        "status_before": "pending",
        "result": "applied",
    }
    assert "action_id" not in row and row["version_after"] == 2


async def test_sync_rows_carry_the_askers_projection(
    a: httpx.AsyncClient, b: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    card = await create(a, **APPROVAL)
    (row,) = await sync_rows(b)
    view = row["extra"]["card"]
    assert view["message_id_str"] == card["message_id_str"] and view["can_act"] is True
    assert view["version"] == row["version"] == 1
    (owner_row,) = await sync_rows(a)
    assert [x["action"] for x in owner_row["extra"]["card"]["actions"]] == ["withdraw"]
    (business,) = await sync_rows(http)  # business, nobody in particular: no actions
    assert business["extra"]["card"]["can_act"] is False


async def test_the_python_sdk_acts_on_real_cards(
    node: Node, a: httpx.AsyncClient, tmp_path: Path
) -> None:
    card = await create(a, **{**APPROVAL, "mode": "single"})
    mid = card["message_id"]

    async def sdk(uid: str) -> Client:
        client = Client(
            f"ws://127.0.0.1:{node.ws_port}",
            uid,
            f"tok-{uid}",
            cache_path=tmp_path / f"{uid}.db",
            api_url=f"http://127.0.0.1:{node.api_port}",
            options=ClientOptions(card_retry_delay=0),
        )
        await client.open(connect=False)
        return client

    b, c = await sdk("b"), await sdk("c")
    try:
        state = await b.cards.act(mid, "approve", {"comment": "sdk"}, base_version=1)
        assert (state.version, state.status) == (2, "approved")
        with pytest.raises(CardConflict) as info:
            await c.cards.act(mid, "reject", base_version=1)
        err = info.value
        assert err.winner["uid"] == "b" and err.can_confirm is False
        assert err.current["status"] == "approved" and isinstance(err.at, int)
    finally:
        await b.close()
        await c.close()


@pytest.fixture
async def hooked(tmp_path: Path) -> AsyncIterator[tuple[Node, Receiver]]:
    receiver = Receiver()
    await receiver.start()
    try:
        async with running_node(
            tmp_path, webhook_url=receiver.url, webhook_batch_interval=0.05
        ) as n:
            await add_tokens(n, ["a", "b"])
            await make_group(n, "g1", ["a", "b"])
            yield n, receiver
    finally:
        await receiver.stop()


async def test_every_applied_action_raises_a_signed_card_action_webhook(
    hooked: tuple[Node, Receiver],
) -> None:
    node, receiver = hooked
    async with user(node, "a") as a, user(node, "b") as b:
        card = await create(a, type="approval@1", title="Hook", approvers=["b"])
        await act(b, card["message_id"], "reject", {"comment": "no"}, base=1)
        await act(b, card["message_id"], "approve", base=1)  # refused: no event
    events: list[Any] = []
    deadline = asyncio.get_running_loop().time() + 5 * time_scale()
    while len(events) < 2 and asyncio.get_running_loop().time() < deadline:
        hit = await asyncio.wait_for(receiver.hits.get(), 5 * time_scale())
        if hit.event == "card.action":
            headers = hit.headers
            ok = verify(
                API_KEY.encode(),
                headers["x-magpie-timestamp"],
                hit.body,
                headers["x-magpie-signature"],
            )
            assert ok, "unsigned card.action"
            events.append(hit.json())
    assert [(e["action"], e["actor"]["uid"], e["status_after"]) for e in events] == [
        ("create", "a", "pending"),
        ("reject", "b", "rejected"),
    ]
    assert events[1]["params"] == {"comment": "no"} and events[1]["card_type"] == "approval@1"
    await settle(0.3)
    rest = [receiver.hits.get_nowait() for _ in range(receiver.hits.qsize())]
    assert not [h for h in rest if h.event == "card.action"]


async def test_params_are_bounded_and_oversized_ones_are_not_logged(
    a: httpx.AsyncClient, b: httpx.AsyncClient
) -> None:
    card = await create(a, **APPROVAL)
    mid = card["message_id"]
    big = await act(b, mid, "approve", {"comment": "x" * 70_000}, base=1)
    assert (big.status_code, big.json()["field"]) == (413, "params")
    nan = await b.post(
        f"/cards/{mid}/actions",
        content=b'{"action":"approve","params":{"c":NaN},"action_id":"n","base_version":1}',
        headers={"Content-Type": "application/json"},
    )
    assert (nan.status_code, nan.json()["field"]) == (400, "params")
    junk = await act(b, mid, "approve", {"comment": "y" * 9000}, base=1)  # logged, refused
    assert junk.json()["reason"] == "bad_params"
    ops = (await b.get(f"/cards/{mid}/ops")).json()["data"]
    assert ops[-1]["params"] == {"omitted": "too large"} and len(ops) == 2


async def test_a_card_whose_initialisation_was_lost_still_works(
    http: httpx.AsyncClient, a: httpx.AsyncClient, b: httpx.AsyncClient
) -> None:
    """A crash between the send and the state's initialisation: the message exists without
    state. Members can act (the state starts from the definition), and the creator's retry
    with the same client_msg_no answers with the card."""
    definition = {"type": "vote@1", "title": "Lost", "options": ["x", "y"], "creator": "mallory"}
    payload = {"type": 3000, "content": "[Vote] Lost", "card": definition}
    body = {
        "from_uid": "a",
        "channel_id": "g1",
        "channel_type": GROUP,
        "client_msg_no": "lost-1",
        "payload": base64.b64encode(json.dumps(payload).encode()).decode(),
    }
    mid = (await http.post("/message/send", json=body)).json()["data"]["message_id"]
    view = (await b.get(f"/cards/{mid}")).json()
    assert (view["status"], view["version"], view["creator"]) == ("open", 0, "a")  # the sender
    assert (await act(b, mid, "vote", {"options": [1]}, base=0)).status_code == 200
    retry = await a.post(
        "/cards",
        json={
            "channel_id": "g1",
            "channel_type": GROUP,
            "card": definition,
            "client_msg_no": "lost-1",
        },
    )
    assert retry.status_code == 200 and retry.json()["message_id"] == mid
    assert retry.json()["state"]["tallies"] == [0, 1]


async def test_reassigning_a_task_to_a_non_member_is_refused_and_nothing_changes(
    a: httpx.AsyncClient,
) -> None:
    card = await create(a, type="task@1", title="Fix it", assignees=["b"])
    mid, seen = card["message_id"], card["version"]
    r = await act(a, mid, "reassign", {"assignees": ["c", "out"]}, base=seen)
    assert r.status_code == 403 and "out" in r.json()["msg"]
    now = (await a.get(f"/cards/{mid}")).json()
    assert now["version"] == seen and now["state"]["assignees"] == ["b"]
    ok = await act(a, mid, "reassign", {"assignees": ["c"]}, base=seen)
    assert ok.status_code == 200 and ok.json()["state"]["assignees"] == ["c"]


async def test_an_admin_withdrawal_names_the_admin(
    a: httpx.AsyncClient, c: httpx.AsyncClient
) -> None:
    card = await create(a, type="approval@1", title="Budget", approvers=["b"], admins=["c"])
    r = await act(c, card["message_id"], "withdraw", base=card["version"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "withdrawn" and r.json()["outcome"] == "Withdrawn by c"


async def _pages(client: httpx.AsyncClient, mid: int, limit: int) -> list[dict[str, Any]]:
    """Every page of ``GET /cards/{mid}/records``, ``limit`` rows each."""
    pages, after = [], ""
    while True:
        r = await client.get(f"/cards/{mid}/records", params={"after": after, "limit": limit})
        assert r.status_code == 200, r.text
        pages.append(r.json())
        if r.json()["next"] is None:
            return pages
        after = r.json()["next"]


async def test_records_are_paged_and_projected_per_viewer(
    a: httpx.AsyncClient, b: httpx.AsyncClient, c: httpx.AsyncClient
) -> None:
    vote = await create(a, type="vote@1", title="Lunch", options=["x", "y"], results="closed")
    mid = vote["message_id"]
    for n, voter in enumerate((a, b, c)):
        assert (await act(voter, mid, "vote", {"options": [n % 2]}, base=1)).status_code == 200
    hidden = (await b.get(f"/cards/{mid}/records")).json()
    assert hidden["visible"] is False and hidden["records"] == [] and hidden["next"] is None
    assert (await act(a, mid, "close", base=4)).status_code == 200
    pages = await _pages(b, mid, 2)
    assert [len(p["records"]) for p in pages] == [2, 1] and pages[0]["next"] == "b"
    rows = [row for p in pages for row in p["records"]]
    assert rows == [
        {"uid": "a", "options": [0]},
        {"uid": "b", "options": [1]},
        {"uid": "c", "options": [0]},
    ]
    secret = await create(a, type="vote@1", title="S", options=["x", "y"], anonymous=True)
    await act(b, secret["message_id"], "vote", {"options": [1]}, base=1)
    await act(a, secret["message_id"], "close", base=2)
    page = (await b.get(f"/cards/{secret['message_id']}/records")).json()
    assert page["visible"] is False and page["records"] == [], "anonymous ballots never listed"
    question = {"id": "q1", "kind": "text", "prompt": "Why?"}
    survey = await create(a, type="survey@1", title="Q", questions=[question])
    sid = survey["message_id"]
    await act(b, sid, "respond", {"answers": {"q1": "because"}}, base=1)
    await act(c, sid, "respond", {"answers": {"q1": "why not"}}, base=1)
    assert (await c.get(f"/cards/{sid}/records")).json()["visible"] is False
    owner = [row for p in await _pages(a, sid, 1) for row in p["records"]]
    assert [(r["uid"], r["answers"]) for r in owner] == [
        ("b", {"q1": "because"}),
        ("c", {"q1": "why not"}),
    ]
    bad = await a.get(f"/cards/{sid}/records", params={"limit": 0})
    assert bad.status_code == 400 and bad.json()["code"] == "bad_request"

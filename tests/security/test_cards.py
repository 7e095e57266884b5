"""Defect 1: a user outside a card's chat learns nothing about the card and leaves no trace
in it — not in the answer, not in the history members read, not in the stored state."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.api.helpers import db_dump
from tests.security.conftest import OUTSIDER, World
from tests.security.support import assert_no_data

VOTE = {"action": "vote", "params": {"option": 0}, "base_version": 1}


def _history_tables(world: World) -> dict[str, object]:
    dump = db_dump(world.node)
    return {t: dump[t] for t in ("message_ext", "message_ext_ops", "ext_channel_clock")}


async def test_outsider_cannot_view_a_card(world: World, outsider: httpx.AsyncClient) -> None:
    for path in ("", "/ops", "/history", "/records"):
        r = await outsider.get(f"/cards/{world.card_id}{path}")
        assert r.status_code == 404, r.text
        assert_no_data(world, r)


async def test_member_views_the_card(world: World, member: httpx.AsyncClient) -> None:
    """The same requests by a member are answered with the card (the checks can fail)."""
    r = await member.get(f"/cards/{world.card_id}")
    assert r.status_code == 200, r.text
    assert r.json()["title"]
    ops = await member.get(f"/cards/{world.card_id}/ops")
    assert ops.status_code == 200 and ops.json()["data"], ops.text
    records = await member.get(f"/cards/{world.card_id}/records")
    assert records.status_code == 200 and "visible" in records.json(), records.text


async def test_an_outsiders_action_gets_no_card_and_leaves_no_trace(
    world: World,
    outsider: httpx.AsyncClient,
    member: httpx.AsyncClient,
    biz: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = _history_tables(world)
    history = (await member.get(f"/cards/{world.card_id}/ops")).json()["data"]
    with caplog.at_level(logging.INFO, logger="magpie.cards.service"):
        for attempt in range(2):  # a repeat of the same action id too
            r = await outsider.post(
                f"/cards/{world.card_id}/actions", json={**VOTE, "action_id": "probe"}
            )
            assert r.status_code == 404, (attempt, r.text)
            assert_no_data(world, r)
    assert _history_tables(world) == before, "the refused attempt was stored"
    assert (await member.get(f"/cards/{world.card_id}/ops")).json()["data"] == history
    ops = await biz.post("/message/extra/ops", json={"message_id": world.card_id})
    assert OUTSIDER not in ops.text
    assert any("audit" in m and OUTSIDER in m for m in caplog.messages), caplog.messages


async def test_a_members_refusal_still_carries_the_card(
    world: World, member: httpx.AsyncClient
) -> None:
    """Members keep their refusals with ``current`` (the outsider rule is no blanket gag)."""
    ahead = await member.post(
        f"/cards/{world.card_id}/actions", json={**VOTE, "action_id": "a1", "base_version": 9}
    )
    assert ahead.status_code == 400 and ahead.json()["current"]["title"], ahead.text


async def test_the_business_key_acting_for_an_outsider(
    world: World, biz: httpx.AsyncClient
) -> None:
    before = _history_tables(world)
    r = await biz.post(
        f"/cards/{world.card_id}/actions", json={**VOTE, "uid": OUTSIDER, "action_id": "b1"}
    )
    assert (r.status_code, r.json()["reason"]) == (403, "not_member"), r.text
    assert "current" not in r.json()
    assert _history_tables(world) == before


async def test_outsider_probing_members_through_params_learns_nothing(
    world: World, outsider: httpx.AsyncClient
) -> None:
    """Naming people in ``params`` (a task's reassignment) must not tell an outsider who is a
    member: the answer is the same 404 whoever is named."""
    answers = set()
    for named in ("alice", "nobody-at-all"):
        r = await outsider.post(
            f"/cards/{world.card_id}/actions",
            json={**VOTE, "action_id": f"p-{named}", "params": {"assignees": [named]}},
        )
        answers.add((r.status_code, r.text))
    assert len(answers) == 1, answers

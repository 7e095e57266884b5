"""Cards under concurrency on a real node: one decision among 20 racing approvers, exact
tallies from 200 racing voters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from magpie.app import Node
from tests.cards.support import act, add_tokens, bearer, create, user
from tests.support.nodes import make_group, running_node, time_scale


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path) as n:
        yield n


def racer(node: Node) -> httpx.AsyncClient:
    """One client for many users (each request carries its user's token)."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}",
        timeout=30 * time_scale(),
        limits=httpx.Limits(max_connections=200),
    )


async def test_twenty_approvers_at_once_make_exactly_one_decision(node: Node) -> None:
    approvers = [f"ap{i:02d}" for i in range(20)]
    await add_tokens(node, ["boss", *approvers])
    await make_group(node, "g20", ["boss", *approvers])
    async with user(node, "boss") as boss:
        card = await create(
            boss, "g20", type="approval@1", title="Go?", approvers=approvers, mode="single"
        )
    mid = card["message_id"]
    async with racer(node) as http:
        answers = await asyncio.gather(
            *(
                act(http, mid, "approve" if i % 2 else "reject", base=1, headers=bearer(uid))
                for i, uid in enumerate(approvers)
            )
        )
        codes = [r.status_code for r in answers]
        assert sorted(codes) == [200] + [409] * 19, codes
        (won,) = [r.json() for r in answers if r.status_code == 200]
        (decision,) = won["state"]["decisions"]
        assert won["status"] == {"approve": "approved", "reject": "rejected"}[decision["decision"]]
        for r in answers:
            if r.status_code == 409:
                body = r.json()
                assert body["winner"]["uid"] == decision["uid"] and body["can_confirm"] is False
                assert body["reason"] == "closed" and body["current"]["status"] == won["status"]
        ops = (await http.get(f"/cards/{mid}/ops", headers=bearer("boss"))).json()["data"]
    results = sorted(o["result"] for o in ops[1:])
    assert results == ["applied"] + ["conflict"] * 19


async def test_two_hundred_concurrent_voters_give_exact_tallies(node: Node) -> None:
    voters = [f"v{i:03d}" for i in range(200)]
    await add_tokens(node, ["host", *voters])
    await make_group(node, "g200", ["host", *voters])
    async with user(node, "host") as host:
        card = await create(
            host,
            "g200",
            type="vote@1",
            title="Which days?",
            options=["mon", "tue", "wed", "thu"],
            multiple=True,
            max_selections=2,
        )
    mid = card["message_id"]
    final: dict[str, list[int]] = {}

    def ballot(uid: str, choice: list[int]) -> tuple[str, list[int]]:
        final[uid] = choice
        return uid, choice

    first = [ballot(v, sorted({i % 4, (i * 7 + 1) % 4})) for i, v in enumerate(voters[:150])]
    second = [ballot(v, sorted({i % 3})) for i, v in enumerate(voters[150:])]
    revotes = [ballot(v, [3]) for v in voters[:50]]  # replace their first ballots
    for wave in (first, second + revotes):
        # A fresh client per wave: httpx's pool is slow to reuse 150 idle connections at once.
        async with racer(node) as http:
            answers = await asyncio.gather(
                *(
                    act(http, mid, "vote", {"options": c}, base=1, headers=bearer(u))
                    for u, c in wave
                )
            )
        assert {r.status_code for r in answers} == {200}, [r.text for r in answers[:3]]
    async with user(node, "host") as host:
        view = (await host.get(f"/cards/{mid}")).json()
    expected = [0, 0, 0, 0]
    for choice in final.values():
        for i in choice:
            expected[i] += 1
    assert view["state"]["tallies"] == expected
    assert view["state"]["voters"] == 200 and view["version"] == 1 + 250
    for i, preview in enumerate(view["state"]["voters_by_option"]):  # the first 20 voters
        assert len(preview) == min(20, expected[i])
        assert {u for u in preview if i in final[u]} == set(preview)

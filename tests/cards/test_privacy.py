"""Anonymous votes never reveal voters: no voter id in anything the node serves — sync rows,
``/channel/messagesync``, ``GET /cards``, action answers, the history panel, CMDs, webhooks,
the business op log — nor in the extension tables themselves. A named vote, run the same
way, does show its voters: the check can see ids when they are there."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from magpie.app import Node
from tests.api.helpers import db_dump
from tests.api.test_webhooks import Receiver
from tests.cards.support import GROUP, act, add_tokens, create, sync_rows, user
from tests.support.nodes import api, connect, make_group, running_node, settle, time_scale

VOTERS = ["voter-alpha-7f3a", "voter-beta-91c2", "voter-gamma-c0de"]
OTHERS = ["host", "watcher"]


@pytest.fixture
async def hooked(tmp_path: Path) -> AsyncIterator[tuple[Node, Receiver]]:
    receiver = Receiver()
    await receiver.start()
    try:
        async with running_node(
            tmp_path, webhook_url=receiver.url, webhook_batch_interval=0.05, ext_coalesce_ms=0
        ) as n:
            await add_tokens(n, [*OTHERS, *VOTERS])
            await make_group(n, "g1", [*OTHERS, *VOTERS])
            yield n, receiver
    finally:
        await receiver.stop()


async def served_to_users(node: Node, mid: int, answers: list[str]) -> dict[str, str]:
    """Everything a member can read about the card, by source, as JSON text."""
    seen: dict[str, str] = {"answers": "\n".join(answers)}
    for uid in [*OTHERS, *VOTERS]:
        async with user(node, uid) as me:
            seen[f"sync {uid}"] = json.dumps(await sync_rows(me))
            seen[f"sync-after {uid}"] = json.dumps(await sync_rows(me, after=1))
            seen[f"view {uid}"] = (await me.get(f"/cards/{mid}")).text
            seen[f"ops {uid}"] = (await me.get(f"/cards/{mid}/ops")).text
            body = {"login_uid": uid, "channel_id": "g1", "channel_type": GROUP}
            seen[f"messagesync {uid}"] = (await me.post("/channel/messagesync", json=body)).text
    return seen


async def run_vote(node: Node, receiver: Receiver, *, anonymous: bool) -> dict[str, str]:
    """A vote with three voters (one revotes), closed by the host; what was served."""
    watcher = await connect(node, "watcher", "tok-watcher")
    answers: list[str] = []
    try:
        async with user(node, "host") as host:
            card = await create(
                host, type="vote@1", title="Secret", options=["x", "y"], anonymous=anonymous
            )
            mid = card["message_id"]
            for n, uid in enumerate(VOTERS):
                async with user(node, uid) as me:
                    r = await act(me, mid, "vote", {"options": [n % 2]}, base=1)
                    assert r.status_code == 200, r.text
                    answers.append(r.text)
            async with user(node, VOTERS[0]) as me:
                answers.append((await act(me, mid, "vote", {"options": [1]}, base=2)).text)
            answers.append((await act(host, mid, "close", base=5)).text)
            async with user(node, VOTERS[1]) as me:
                late = await act(me, mid, "vote", {"options": [0]}, base=6)
                assert late.status_code == 409
                answers.append(late.text)
        seen = await served_to_users(node, mid, answers)
        # create + 4 ballots + close: six card.action events, and the watcher's CMDs.
        hooks = await card_events(receiver, 6)
        await settle(0.2)  # the watcher's last CMDs
    finally:
        cmds = [watcher.messages.get_nowait().payload for _ in range(watcher.messages.qsize())]
        await watcher.close()
    seen["cmds"] = "\n".join(p.decode() for p in cmds)
    seen["webhooks"] = "\n".join(hooks)
    async with api(node) as http:
        seen["business ops"] = (
            await http.post("/message/extra/ops", json={"message_id": str(mid)})
        ).text
    dump = db_dump(node)
    seen["tables"] = repr(dump["message_ext"]) + repr(dump["message_ext_ops"])
    async with user(node, VOTERS[2]) as me:
        seen["final"] = (await me.get(f"/cards/{mid}")).text
    return seen


async def card_events(receiver: Receiver, n: int) -> list[str]:
    """The bodies of the first ``n`` ``card.action`` webhooks (other events skipped)."""
    bodies: list[str] = []
    while len(bodies) < n:
        hit = await asyncio.wait_for(receiver.hits.get(), 5 * time_scale())
        if hit.event == "card.action":
            bodies.append(hit.body.decode())
    return bodies


def leaks(seen: dict[str, str]) -> dict[str, list[str]]:
    return {
        source: [v for v in VOTERS if v in text]
        for source, text in seen.items()
        if any(v in text for v in VOTERS)
    }


async def test_an_anonymous_vote_serves_no_voter_ids(hooked: tuple[Node, Receiver]) -> None:
    node, receiver = hooked
    seen = await run_vote(node, receiver, anonymous=True)
    assert leaks(seen) == {}
    final = json.loads(seen["final"])
    assert final["state"]["tallies"] == [1, 2] and final["state"]["voters"] == 3
    assert final["my_vote"] == [0] and final["state"]["voters_by_option"] is None
    assert "syncMessageExtra" in seen["cmds"] and '"action":"vote"' in seen["webhooks"]
    ops = json.loads(seen[f"ops {VOTERS[0]}"])["data"]
    ballots = [o for o in ops if o["action"] == "vote" and o["result"] == "applied"]
    assert len(ballots) == 4
    assert all(o["actor_uid"] == "" and o["anonymous"] and o["params"] == {} for o in ballots)


async def test_a_named_vote_shows_its_voters(hooked: tuple[Node, Receiver]) -> None:
    node, receiver = hooked
    seen = await run_vote(node, receiver, anonymous=False)
    found = leaks(seen)
    assert set(found[f"view {OTHERS[1]}"]) == set(VOTERS)  # voters_by_option, op actors
    assert "webhooks" in found and "tables" in found
    final: dict[str, Any] = json.loads(seen["final"])
    assert final["state"]["voters_by_option"] == [[VOTERS[2]], [VOTERS[0], VOTERS[1]]]


async def test_business_and_unknown_viewers_get_a_neutral_projection(
    hooked: tuple[Node, Receiver],
) -> None:
    node, _ = hooked
    async with user(node, "host") as host:
        card = await create(host, type="vote@1", title="S", options=["x", "y"], anonymous=True)
    async with user(node, VOTERS[0]) as me:
        await act(me, card["message_id"], "vote", {"options": [0]}, base=1)
    async with api(node) as http:
        r = await http.get(f"/cards/{card['message_id']}")  # business, for nobody
        assert r.status_code == 200 and r.json()["my_vote"] is None
        assert r.json()["can_act"] is False
        body = {"channel_id": "g1", "channel_type": GROUP, "extra_version": 0}
        rows = (await http.post("/message/extra/sync", json=body)).json()
        assert "ballots" not in json.dumps(rows) and VOTERS[0] not in json.dumps(rows)

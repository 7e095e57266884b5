"""``magpie demo`` seeds one card of each type in the demo group (idempotently)."""

from __future__ import annotations

from pathlib import Path

import pytest

from magpie.cli import _seed_demo
from magpie.web import DEMO_GROUP
from tests.cards.support import user
from tests.support.nodes import running_node


async def test_the_demo_seeds_one_card_of_each_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_node(tmp_path) as node:
        await _seed_demo(node)
        await _seed_demo(node)  # a restarted demo seeds nothing twice
        async with user(node, "bob") as bob:
            bob.headers["Authorization"] = "Bearer demo-bob"
            body = {"channel_id": DEMO_GROUP, "channel_type": 2, "limit": 100}
            rows = (await bob.post("/message/extra/sync", json=body)).json()
    views = {row["extra"]["card"]["type"]: row["extra"]["card"] for row in rows}
    assert sorted(views) == ["approval", "survey", "task", "vote"] and len(rows) == 4
    assert [a["action"] for a in views["approval"]["actions"]] == ["approve", "reject"]
    assert views["vote"]["can_act"] and views["survey"]["can_act"]
    assert "cards (approval, survey, task, vote)" in capsys.readouterr().out

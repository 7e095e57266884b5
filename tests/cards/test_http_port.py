"""The card service as a *separate business server*: :class:`CardService` over
:class:`HttpImPort`, talking to a real node through the business HTTP API only."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.app import Node
from magpie.cards import ActionRequest, CardService, CreateRequest, default_types
from magpie.cards.http_port import HttpImPort
from magpie.errors import Conflict, Forbidden
from tests.cards.support import GROUP, now_ms
from tests.support.nodes import API_KEY, api, time_scale

APPROVAL = {"type": "approval@1", "title": "Remote", "approvers": ["b", "c"], "mode": "all"}


class Interfere(httpx.AsyncBaseTransport):
    """Forwards to the node, but first changes the extension behind the port's back before
    the next ``armed`` commits — so they miss their compare-and-set."""

    def __init__(self, node: Node) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._node = node
        self.armed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/message/extra/commit" and self.armed:
            self.armed -= 1
            body = json.loads(request.content)
            async with api(self._node) as http:
                noise = {"mode": "lww", "extra_patch": {"noise": self.armed}}
                r = await http.post(
                    "/message/extra/update",
                    json={"message_id": body["message_id"], "action_id": uuid.uuid4().hex, **noise},
                )
                assert r.status_code == 200, r.text
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class Remote:
    """A card service over HTTP, with the events it raised."""

    def __init__(self, node: Node, tmp_path: Path, **port: Any) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.transport = Interfere(node)
        self.port = HttpImPort(
            f"http://127.0.0.1:{node.api_port}",
            API_KEY,
            transport=self.transport,
            timeout=20 * time_scale(),
            on_event=lambda event, data: self.events.append((event, dict(data))),
            **port,
        )
        self.service = CardService(
            self.port,
            default_types(),
            tmp_path / "remote-cards.db",
            clock_ms=now_ms,
            max_state_bytes=64 * 1024,
        )

    async def create(self, creator: str = "a", **card: Any) -> dict[str, Any]:
        req = CreateRequest(creator, "g1", GROUP, card, "", uuid.uuid4().hex)
        return await self.service.create(req)

    async def act(self, mid: int, uid: str, action: str, base: int, **kw: Any) -> Any:
        params = kw.pop("params", {})
        action_id = kw.pop("action_id", uuid.uuid4().hex)
        req = ActionRequest(mid, uid, action, params, action_id, base, **kw)
        return await self.service.act(req)


@pytest.fixture
async def remote(node: Node, tmp_path: Path) -> AsyncIterator[Remote]:
    r = Remote(node, tmp_path)
    await r.service.start()
    yield r
    await r.service.stop()
    await r.port.aclose()


async def node_view(node: Node, mid: int) -> dict[str, Any]:
    async with api(node) as http:
        view: dict[str, Any] = (await http.get(f"/cards/{mid}")).json()
        return view


async def business_ops(node: Node, mid: int) -> list[dict[str, Any]]:
    async with api(node) as http:
        r = await http.post("/message/extra/ops", json={"message_id": str(mid)})
        ops: list[dict[str, Any]] = r.json()["data"]
        return ops


async def test_the_approval_flow_over_http(node: Node, remote: Remote) -> None:
    card = await remote.create(**APPROVAL)
    mid = card["message_id"]
    assert (card["status"], card["version"]) == ("pending", 1)
    first = await remote.act(mid, "b", "approve", 1, params={"comment": "ok"}, action_id="b1")
    assert (first.view["status"], first.view["version"], first.duplicate) == ("pending", 2, False)
    again = await remote.act(mid, "b", "approve", 1, action_id="b1")
    assert again.duplicate and again.op.op_id == first.op.op_id
    with pytest.raises(Forbidden) as refused:
        await remote.act(mid, "x", "approve", 2)
    assert refused.value.detail["reason"] == "not_allowed"
    last = await remote.act(mid, "c", "reject", 2, params={"comment": "no"})
    assert last.view["status"] == "rejected" and last.view["outcome"] == "Rejected by c: no"
    with pytest.raises(Conflict) as lost:
        await remote.act(mid, "c", "approve", 2)
    assert lost.value.detail["winner"]["uid"] == "c" and lost.value.detail["can_confirm"] is False
    # The node holds the very same state, and its log has every attempt.
    seen = await node_view(node, mid)
    assert (seen["status"], seen["version"], seen["state"]["approvals"]) == ("rejected", 3, 1)
    ops = await business_ops(node, mid)
    assert [(o["operation"], o["actor"]["uid"], o["result"]) for o in ops] == [
        ("card.create", "a", "applied"),
        ("card.approve", "b", "applied"),
        ("card.approve", "x", "forbidden"),
        ("card.reject", "c", "applied"),
        ("card.approve", "c", "conflict"),
    ]
    assert [e[1]["action"] for e in remote.events] == ["create", "approve", "reject"]
    assert all(e[0] == "card.action" for e in remote.events)


async def test_a_version_miss_is_retried_and_a_repeat_walks_the_same_chain(
    node: Node, remote: Remote
) -> None:
    card = await remote.create(**APPROVAL)
    mid = card["message_id"]
    remote.transport.armed = 2
    won = await remote.act(mid, "b", "approve", 1, action_id="chain")
    assert not won.duplicate and won.view["state"]["approvals"] == 1
    ops = await business_ops(node, mid)
    mine = [(o["result"], o["code"]) for o in ops if o["operation"] == "card.approve"]
    assert mine == [("conflict", "cas_conflict"), ("conflict", "cas_conflict"), ("applied", "")]
    replay = await remote.act(mid, "b", "approve", 1, action_id="chain")
    assert replay.duplicate and replay.op.op_id == won.op.op_id
    assert len(await business_ops(node, mid)) == len(ops)
    seen = await node_view(node, mid)
    assert seen["state"]["approvals"] == 1 and seen["version"] == won.view["version"]


async def test_racing_approvers_over_http_make_one_decision(node: Node, remote: Remote) -> None:
    card = await remote.create(**{**APPROVAL, "approvers": ["b", "c", "d"], "mode": "single"})
    mid = card["message_id"]

    async def attempt(uid: str) -> str:
        try:
            await remote.act(mid, uid, "approve", 1)
        except Conflict:
            return "409"
        return "200"

    answers = await asyncio.gather(*(attempt(u) for u in ("b", "c", "d", "b", "c", "d")))
    assert sorted(answers) == ["200"] + ["409"] * 5
    seen = await node_view(node, mid)
    assert seen["status"] == "approved" and len(seen["state"]["decisions"]) == 1


async def test_racing_voters_over_http_give_exact_tallies(node: Node, tmp_path: Path) -> None:
    remote = Remote(node, tmp_path, attempts=40)
    await remote.service.start()
    try:
        card = await remote.create(type="vote@1", title="v", options=["x", "y"])
        mid = card["message_id"]
        voters = ["a", "b", "c", "d", "x"]
        await asyncio.gather(
            *(
                remote.act(mid, u, "vote", 1, params={"options": [n % 2]})
                for n, u in enumerate(voters)
            )
        )
        seen = await node_view(node, mid)
        assert seen["state"]["tallies"] == [3, 2] and seen["state"]["voters"] == 5
    finally:
        await remote.service.stop()
        await remote.port.aclose()


async def test_a_deadline_fires_over_http(node: Node, remote: Remote) -> None:
    card = await remote.create(
        type="vote@1", title="v", options=["x", "y"], closes_at=now_ms() + 300
    )
    mid = card["message_id"]
    deadline = asyncio.get_running_loop().time() + 5 * time_scale()
    while (await node_view(node, mid))["status"] != "closed":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    ops = await business_ops(node, mid)
    assert (ops[-1]["operation"], ops[-1]["actor"]["uid"]) == ("card.close", "system")

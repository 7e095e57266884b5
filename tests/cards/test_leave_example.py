"""The leave-request example of docs/cards.md ("Make your own card"), run as it is: its
business server (examples/leave/leave_server.py) in a process of its own against a real
node — it registers the type, then decides every click over the signed callback."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie.app import Node
from tests.cards.support import act, add_tokens, user
from tests.support.nodes import API_KEY, make_group, running_node, time_scale

EXAMPLE = Path(__file__).parents[2] / "examples" / "leave" / "leave_server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path) as n:
        await add_tokens(n, ["alice", "bob", "carol"])
        await make_group(n, "team", ["alice", "bob", "carol"])
        yield n


@pytest.fixture
def example(node: Node) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = {**os.environ, "MAGPIE_API": f"http://127.0.0.1:{node.api_port}"}
    env["MAGPIE_API_KEY"] = API_KEY
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), str(port), "team"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def registered(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20 * time_scale())
    answer: dict[str, Any] = json.loads(line)
    return answer


async def listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError("the example server does not listen")


def names(view: dict[str, Any]) -> list[str]:
    return [a["action"] for a in view["actions"]]


def buttons(view: dict[str, Any]) -> list[str]:
    found = []
    for block in view["document"]["blocks"]:
        found += [e["action"] for e in block.get("elements", []) if e["type"] == "button"]
    return found


async def test_the_leave_request_example(
    node: Node, example: tuple[subprocess.Popen[str], int]
) -> None:
    proc, port = example
    answer = await registered(proc)
    assert answer["tag"] == "leave@1" and answer["created"] is True
    assert proc.stdout is not None
    posted = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20 * time_scale())
    await listening(port)
    async with user(node, "bob") as bob:
        first = (await bob.get(f"/cards/{posted.strip()}")).json()
    assert (first["type_tag"], first["creator"], first["status"]) == ("leave@1", "alice", "draft")
    async with user(node, "alice") as alice, user(node, "bob") as bob, user(node, "carol") as carol:
        body = {"channel_id": "team", "channel_type": 2}
        r = await alice.post(
            "/cards", json={**body, "card": {"type": "leave@1", "listed": ["bob"]}}
        )
        assert r.status_code == 200, r.text
        card = r.json()
        mid, version = card["message_id"], card["version"]
        assert card["status"] == "draft" and names(card) == ["submit"]
        assert buttons(card) == ["submit"]
        assert names((await bob.get(f"/cards/{mid}")).json()) == []

        backwards = {"start": "2026-12-10", "end": "2026-12-08", "reason": "skiing"}
        r = await act(alice, mid, "submit", backwards, base=version)
        assert r.status_code == 200 and r.json()["changed"] is False, r.text
        assert r.json()["ephemeral"]["text"] == "The end date is before the start date."
        r = await act(alice, mid, "submit", {"start": "10 Dec"}, base=version)
        assert r.status_code == 400 and r.json()["reason"] == "bad_params", r.text

        good = {"start": "2026-12-10", "end": "2026-12-12", "reason": "skiing"}
        r = await act(bob, mid, "submit", good, base=version)
        assert r.status_code == 403 and r.json()["msg"] == "only the requester may request"
        r = await act(alice, mid, "submit", good, base=version)
        assert r.status_code == 200, r.text
        pending = r.json()
        assert pending["status"] == "pending" and pending["state"]["days"] == 3
        assert pending["ephemeral"]["text"] == "Sent to bob for approval."
        assert buttons(pending) == ["approve", "reject"] and names(pending) == []

        seen = (await bob.get(f"/cards/{mid}")).json()
        assert names(seen) == ["approve", "reject"]
        r = await act(carol, mid, "approve", base=seen["version"])
        assert r.status_code == 403 and r.json()["msg"] == "only the manager may approve"
        r = await act(bob, mid, "approve", {"comment": "have fun"}, base=seen["version"])
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["status"] == "approved" and done["terminal"] is True
        assert done["state"]["comment"] == "have fun" and done["state"]["days"] == 3
        people = [b for b in done["document"]["blocks"] if b["type"] == "people"]
        assert people[0]["people"] == [{"uid": "bob", "state": "approved"}]
        r = await act(bob, mid, "reject", base=seen["version"])
        assert r.status_code == 409 and r.json()["reason"] == "closed", r.text
        assert r.json()["winner"]["uid"] == "bob"

    # the example refuses a request Magpie did not sign
    async with httpx.AsyncClient() as raw:
        forged = await raw.post(f"http://127.0.0.1:{port}/leave", json={"action": "approve"})
        assert forged.status_code == 401
    assert proc.poll() is None

"""``magpie admin`` against a real node: users and tokens, channels and members, a message with
its extension, op log and delivery trace; clear one-line failures. The command runs in a
thread (it is a blocking HTTP client) while the node serves in the test's event loop."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from magpie import cli
from magpie.app import Node
from magpie.gateway.trace import DeliveryTrace
from tests.support.nodes import (
    API_KEY,
    add_user,
    api,
    connect,
    make_group,
    running_node,
    time_scale,
)

T = 10 * time_scale()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path / "node", ext_coalesce_ms=0) as n:
        yield n


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_text(API_KEY + "\n")
    return path


class Admin:
    """``magpie admin --url … --api-key-file …`` in a thread; stdout, stderr, status."""

    def __init__(self, node: Node, key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.base = ["admin", "--url", f"http://127.0.0.1:{node.api_port}",
                     "--api-key-file", str(key_file)]  # fmt: skip
        self.capsys = capsys

    async def __call__(self, *args: str, ok: bool = True) -> tuple[str, str, int]:
        self.capsys.readouterr()
        status = await asyncio.to_thread(cli.main, [*self.base, *args])
        out, err = self.capsys.readouterr()
        if ok:
            assert status == 0, (args, out, err)
        return out, err, status

    async def json(self, *args: str) -> Any:
        out, _, _ = await self(*args, "--json")
        return json.loads(out)


@pytest.fixture
def admin(node: Node, key_file: Path, capsys: pytest.CaptureFixture[str]) -> Admin:
    return Admin(node, key_file, capsys)


async def test_users_and_tokens(node: Node, admin: Admin) -> None:
    out, _, _ = await admin("users", "create", "alice")
    token = re.search(r"^token: (\S+)$", out, re.M)
    assert token, out
    client = await connect(node, "alice", token[1], device_flag=1)  # the token works
    await client.close()
    await admin("users", "create", "bob", "--token", "bobs-own", "--device-flag", "0", "--master")
    out, _, _ = await admin("users", "list")
    assert re.search(r"^alice\s+app, web, pc$", out, re.M), out
    assert re.search(r"^bob\s+app \(master\)$", out, re.M), out
    assert "bobs-own" not in out and token[1] not in out, "tokens are never listed"
    page = await admin.json("users", "list", "--limit", "1")
    assert [u["uid"] for u in page["users"]] == ["alice"] and page["next"] == "alice"
    await admin("tokens", "revoke", "alice", "--device-flag", "1")
    devices = await admin.json("tokens", "list", "alice")
    assert [d["device_flag"] for d in devices["devices"]] == [0, 2]
    _, err, status = await admin("tokens", "list", "nobody", ok=False)
    assert status == 1 and err.startswith("magpie: /admin/users: this uid holds no token")


async def test_channels_and_members(admin: Admin) -> None:
    await admin("channels", "create", "team", "--members", "alice,bob")
    await admin("channels", "add", "team", "carol")
    await admin("channels", "remove", "team", "bob")
    out, _, _ = await admin("channels", "show", "team")
    assert "members (2): alice, carol" in out
    listed = await admin.json("channels", "list")
    assert {"channel_id": "team", "channel_type": 2, "large": False, "ban": False} in listed[
        "channels"
    ]
    _, err, status = await admin("channels", "show", "nope", ok=False)
    assert status == 1 and "no such channel" in err and err.count("\n") == 1


async def _ext_update(node: Node, message_id: int) -> None:
    async with api(node) as http:
        body = {"message_id": message_id, "action_id": uuid.uuid4().hex, "mode": "lww",
                "status": "done", "important": 1}  # fmt: skip
        r = await http.post("/message/extra/update", json=body)
        assert r.status_code == 200, r.text


async def test_a_message_with_extension_op_log_and_delivery_trace(node: Node, admin: Admin) -> None:
    tokens = {u: await add_user(node, u) for u in ("alice", "bob", "carol")}
    await make_group(node, "g", ["alice", "bob", "carol"])
    alice = await connect(node, "alice", tokens["alice"])
    bob = await connect(node, "bob", tokens["bob"])
    ack = await alice.send("g", 2, json.dumps({"type": 1, "content": "hello"}).encode())
    await asyncio.wait_for(bob.messages.get(), T)  # bob's client acknowledges it
    await _ext_update(node, ack.message_id)
    cmd = await asyncio.wait_for(bob.messages.get(), T)  # the syncMessageExtra CMD, acked
    assert b"syncMessageExtra" in cmd.payload
    found: dict[str, Any] = {}
    for _ in range(int(50 * time_scale())):  # acknowledgements reach the node asynchronously
        found = await admin.json("message", str(ack.message_id))
        change = found["trace"]["change"]
        if found["trace"]["message_acks"] and change and change["acks"]:
            break
        await asyncio.sleep(0.05)
    assert found["message"]["from_uid"] == "alice" and found["storage_channel_id"] == "g"
    assert found["extension"]["status"] == "done" and found["extension"]["version"] == 1
    assert [op["result"] for op in found["ops"]] == ["applied"]
    trace = found["trace"]
    assert [(a["uid"], a["device_flag"]) for a in trace["message_acks"]] == [("bob", 1)]
    assert trace["message_acks"][0]["at_ms"] > 0
    assert {a["uid"] for a in trace["change"]["acks"]} >= {"bob"}
    members = {m["uid"]: m for m in trace["members"]}
    assert members["bob"]["acked"] and members["bob"]["change_acked"]
    assert not members["carol"]["acked"] and not members["carol"]["change_acked"]
    assert not members["alice"]["acked"], "the sender's own connection gets no RECV"
    out, _, _ = await admin("message", str(ack.message_id))
    assert f"delivery trace of node {node.node_id}" in out
    assert re.search(r"^\s*bob\s+web\s+message\s+\d{4}-", out, re.M), out
    assert re.search(r"^\s*bob\s+web\s+latest change\s+\d{4}-", out, re.M), out
    assert "members not seen acknowledging on this node: alice, carol" in out
    _, err, status = await admin("message", "42", ok=False)
    assert status == 1 and "no such message" in err
    await alice.close()
    await bob.close()


def test_the_trace_keeps_the_newest_capacity_acknowledgements() -> None:
    trace = DeliveryTrace(3, clock_ms=lambda: 7)
    for message_id in (1, 2, 3):
        trace.ack(message_id, "u", 1, "d")
    assert [a.message_id for a in trace.acks_of([1, 2, 3])] == [1, 2, 3]  # N kept
    trace.ack(4, "u", 1, "d")
    assert [a.message_id for a in trace.acks_of([1, 2, 3, 4])] == [2, 3, 4]  # N+1: oldest out
    assert len(trace) == 3 and trace.oldest_ms == 7


async def test_a_wrong_key_is_one_line(node: Node, tmp_path: Path, capsys: Any) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-key")
    _, err, status = await Admin(node, wrong, capsys)("users", "list", ok=False)
    assert status == 1
    assert err == f"magpie: the node at http://127.0.0.1:{node.api_port} refused the API key; " \
        "pass the node's key with --api-key-file or MAGPIE_API_KEY\n"  # fmt: skip


def test_an_unreachable_node_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "api_key").write_text("k")
    proc = subprocess.run(
        [sys.executable, "-m", "magpie.cli", "admin", "--url", "http://127.0.0.1:9",
         "users", "list"],
        env={"MAGPIE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60 * time_scale(),
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("magpie: cannot reach the node at http://127.0.0.1:9 (")
    assert "is it running?" in proc.stderr and proc.stderr.count("\n") == 1


def test_no_key_anywhere_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "magpie.cli", "admin", "users", "list"],
        env={"MAGPIE_DATA_DIR": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60 * time_scale(),
    )  # fmt: skip
    assert proc.returncode == 1 and "cannot read the API key" in proc.stderr
    assert "--api-key-file" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "none").exists(), "admin never creates a data dir or key"

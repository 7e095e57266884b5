"""The official JS SDK follows extension changes the way spec §5/§7 describes: a change made
through the business API pushes CMD ``syncMessageExtra``; the app answers it with
``chatManager.syncMessageExtras``, whose provider pulls ``/message/extra/sync`` with the user's
token, and the app sees the new ``status`` / ``extra`` on the message."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from magpie.app import Node
from tests.support.nodes import add_user, api, make_group, running_node

from .sdk import SdkFactory

pytestmark = pytest.mark.interop

GROUP = 2


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path / "node", ext_coalesce_ms=10) as n:
        yield n


async def test_sdk_pulls_changed_extension_after_sync_message_extra(
    node: Node, sdk_factory: SdkFactory
) -> None:
    tok = {uid: await add_user(node, uid) for uid in ("alice", "bob")}
    await make_group(node, "team", ["alice", "bob"])
    bob = await sdk_factory(
        f"ws://127.0.0.1:{node.ws_port}",
        f"http://127.0.0.1:{node.api_port}",
        "bob",
        tok["bob"],
    )
    assert (await bob.connect())["status"] == 1
    async with api(node) as http:
        text = {"type": 1, "content": "please approve"}
        sent = await http.post(
            "/message/send",
            json={
                "from_uid": "alice",
                "channel_id": "team",
                "channel_type": GROUP,
                "payload": base64.b64encode(json.dumps(text).encode()).decode(),
            },
        )
        message_id = sent.json()["data"]["message_id"]
        await bob.wait_for("message")
        r = await http.post(
            "/message/extra/update",
            json={
                "message_id": str(message_id),
                "status": "approved",
                "extra_patch": {"approver": "bob", "comment": "ok"},
                "expected_version": 0,
                "action_id": uuid.uuid4().hex,
                "actor_uid": "bob",
            },
        )
        assert r.status_code == 200, r.text
        extra_version = r.json()["data"]["extra_version"]

    cmd = await bob.wait_for("cmd")
    assert cmd["cmd"] == "syncMessageExtra"
    assert cmd["param"]["channel_id"] == "team" and cmd["param"]["extra_version"] >= extra_version
    # The app answers the CMD the way the TangSengDaoDao web client does: sync from the
    # highest extra_version it knows for the channel (0: nothing yet).
    pulled = await bob.sync_extras("team", GROUP, 0)
    rows = [row for row in pulled["rows"] if str(row["message_id_str"]) == str(message_id)]
    assert len(rows) == 1
    assert rows[0]["status"] == "approved" and rows[0]["extra"]["approver"] == "bob"
    # ... and the SDK's MessageExtra objects built by the provider carry it.
    extras = [e for e in pulled["extras"] if str(e["message_id"]) == str(message_id)]
    assert extras and extras[0]["extra"]["status"] == "approved"
    assert extras[0]["extra_version"] == rows[0]["extra_version"]
    # A sync from the newest cursor returns nothing more.
    again = await bob.sync_extras("team", GROUP, rows[0]["extra_version"])
    assert again["rows"] == []
    assert not bob.errors

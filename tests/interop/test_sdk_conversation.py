"""The official JS SDK's own providers of the conversation features work against Magpie
(``docs/conversation.md``): receipts (``messageReadedCallback`` from the receipt manager),
reminders (``syncRemindersCallback`` / ``reminderDoneCallback`` through the reminder manager)
and uploads (``messageUploadTaskCallback``: the SDK holds a media message until the task has
uploaded the file, then sends it)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from magpie.app import Node
from tests.support.nodes import add_user, api, make_group, running_node

from .sdk import SdkFactory

pytestmark = pytest.mark.interop

GROUP = 2
RECEIPT = 0x80


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path / "node", ext_coalesce_ms=10) as n:
        yield n


async def _clients(node: Node, sdk_factory: SdkFactory, *uids: str) -> list:  # type: ignore[type-arg]
    tokens = {uid: await add_user(node, uid) for uid in uids}
    out = []
    for uid in uids:
        client = await sdk_factory(
            f"ws://127.0.0.1:{node.ws_port}", f"http://127.0.0.1:{node.api_port}", uid, tokens[uid]
        )
        assert (await client.connect())["status"] == 1
        out.append(client)
    return out


def b64(content: dict[str, object]) -> str:
    return base64.b64encode(json.dumps(content).encode()).decode()


async def test_receipts_through_the_receipt_manager(node: Node, sdk_factory: SdkFactory) -> None:
    alice, bob = await _clients(node, sdk_factory, "alice", "bob")
    await make_group(node, "team", ["alice", "bob", "carol"])
    async with api(node) as http:
        body = {
            "from_uid": "alice",
            "channel_id": "team",
            "channel_type": GROUP,
            "setting": RECEIPT,
        }
        sent = await http.post(
            "/message/send", json={**body, "payload": b64({"type": 1, "content": "read me"})}
        )
        mid = str(sent.json()["data"]["message_id"])
        got = await bob.wait_for({"event": "message", "message_id": mid})
        assert got["setting"] & RECEIPT, "the SDK sees the receipt setting"
        await bob.request(
            {"cmd": "mark_read", "channel_id": "team", "channel_type": GROUP, "message_ids": [mid]},
            "done",
        )
        readed = await bob.wait_for("readed", timeout=10)
        assert readed["answer"] == {"status": 200, "data": {"applied": [mid], "skipped": []}}
        cmd = await alice.wait_for({"event": "cmd", "cmd": "syncMessageExtra"})
        assert cmd["param"]["channel_id"] == "team"
        synced = await alice.request(
            {"cmd": "sync_extras", "channel_id": "team", "channel_type": GROUP, "extra_version": 0},
            "extras",
        )
        (extra,) = [e for e in synced["extras"] if e["message_id"] == mid]
        assert (extra["readed_count"], extra["unread_count"]) == (1, 1)  # carol has not
        listed = await http.get(f"/messages/{mid}/receipt")
        assert [r["uid"] for r in listed.json()["data"]] == ["bob"]


async def test_reminders_through_the_reminder_manager(node: Node, sdk_factory: SdkFactory) -> None:
    alice, bob = await _clients(node, sdk_factory, "alice", "bob")
    await make_group(node, "team", ["alice", "bob"])
    async with api(node) as http:
        body = {"from_uid": "alice", "channel_id": "team", "channel_type": GROUP}
        content = {"type": 1, "content": "@bob look", "mention": {"uids": ["bob"]}}
        sent = await http.post("/message/send", json={**body, "payload": b64(content)})
        mid = str(sent.json()["data"]["message_id"])
    await bob.wait_for({"event": "cmd", "cmd": "syncReminders"})
    synced = await bob.request({"cmd": "sync_reminders"}, "reminders")
    (reminder,) = synced["reminders"]
    assert reminder["message_id"] == mid and reminder["channel_id"] == "team"
    assert reminder["reminder_type"] == 1 and reminder["done"] is False
    done = await bob.request({"cmd": "reminders_done", "ids": [reminder["id"]]}, "reminders")
    assert done["reminders"][0]["done"] is True
    again = await bob.request({"cmd": "sync_reminders"}, "reminders")  # from its max version
    (after,) = again["reminders"]
    assert after["done"] is True and after["version"] > reminder["version"], "the server's done"
    del alice


async def test_an_image_is_uploaded_by_the_sdks_task_before_it_is_sent(
    node: Node, sdk_factory: SdkFactory
) -> None:
    alice, bob = await _clients(node, sdk_factory, "alice", "bob")
    await make_group(node, "team", ["alice", "bob"])
    picture = io.BytesIO()
    Image.new("RGB", (6, 4), (0, 128, 255)).save(picture, "PNG")
    data = picture.getvalue()
    sent = await alice.request(
        {
            "cmd": "send_image",
            "channel_id": "team",
            "channel_type": GROUP,
            "data_b64": base64.b64encode(data).decode(),
            "name": "blue.png",
        },
        "sent",
    )
    uploaded = await alice.wait_for({"event": "uploaded", "client_msg_no": sent["client_msg_no"]})
    assert "error" not in uploaded, uploaded
    assert uploaded["file"]["content_type"] == "image/png"
    ack = await alice.wait_for({"event": "sendack", "client_seq": sent["client_seq"]})
    assert ack["reason"] == 1
    got = await bob.wait_for({"event": "message", "message_id": ack["message_id"]})
    assert got["content_type"] == 2
    assert got["content"] == {
        "type": 2,
        "url": uploaded["file"]["url"],
        "width": 6,
        "height": 4,
        "size": len(data),
        "name": "blue.png",
    }
    async with api(node) as http:
        downloaded = await http.get(got["content"]["url"])
    assert downloaded.content == data

"""``/conversation/sync`` and ``/channel/messagesync``: shapes, paging, and who may read."""

from __future__ import annotations

import httpx
import pytest

from magpie.app import Node
from tests.api.helpers import as_user, text
from tests.support.nodes import API_KEY, add_user, make_group

#: Run on both stores (tests.api.conftest).
BOTH_STORES = True


async def send(http: httpx.AsyncClient, frm: str, channel: str, kind: int, n: int = 1) -> list[int]:
    ids = []
    for i in range(n):
        body = {
            "header": {"red_dot": 1},
            "from_uid": frm,
            "channel_id": channel,
            "channel_type": kind,
            "payload": text(f"m{i}"),
        }
        r = await http.post("/message/send", json=body)
        assert r.status_code == 200, r.text
        ids.append(r.json()["data"]["message_id"])
    return ids


async def test_conversation_sync_unread_and_recents(node: Node, http: httpx.AsyncClient) -> None:
    await make_group(node, "g1", ["a", "b"])
    await send(http, "a", "g1", 2, 3)
    await send(http, "a", "b", 1, 1)
    r = await http.post("/conversation/sync", json={"uid": "b", "msg_count": 2})
    assert r.status_code == 200
    convs = {(c["channel_id"], c["channel_type"]): c for c in r.json()}
    assert set(convs) == {("g1", 2), ("a", 1)}, "person channel shows the peer"
    group = convs[("g1", 2)]
    assert group["unread"] == 3 and group["last_msg_seq"] == 3
    assert [m["message_seq"] for m in group["recents"]] == [2, 3]
    assert set(group) >= {"timestamp", "last_client_msg_no", "offset_msg_seq", "version"}
    person = convs[("a", 1)]
    assert person["unread"] == 1 and person["recents"][0]["channel_id"] == "a"
    sender_view = (await http.post("/conversation/sync", json={"uid": "a"})).json()
    assert {(c["channel_id"], c["unread"]) for c in sender_view} == {("g1", 0), ("b", 0)}
    assert all(c["recents"] == [] for c in sender_view), "msg_count 0 -> no recents"


async def test_conversation_sync_last_msg_seqs_and_version(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_group(node, "g1", ["a", "b"])
    await send(http, "a", "g1", 2, 3)
    body = {"uid": "b", "msg_count": 10, "last_msg_seqs": "g1:2:2|other:1:5"}
    (conv,) = (await http.post("/conversation/sync", json=body)).json()
    assert [m["message_seq"] for m in conv["recents"]] == [3]
    later = await http.post("/conversation/sync", json={"uid": "b", "version": conv["version"]})
    assert later.json() == []


async def test_messagesync_pages_with_more(node: Node, http: httpx.AsyncClient) -> None:
    await make_group(node, "g1", ["a", "b"])
    await send(http, "a", "g1", 2, 5)
    base = {"login_uid": "b", "channel_id": "g1", "channel_type": 2}
    latest = (await http.post("/channel/messagesync", json={**base, "limit": 2})).json()
    assert [m["message_seq"] for m in latest["messages"]] == [4, 5] and latest["more"] == 1
    older = {**base, "start_message_seq": 3, "limit": 5, "pull_mode": 0}
    page = (await http.post("/channel/messagesync", json=older)).json()
    assert [m["message_seq"] for m in page["messages"]] == [1, 2, 3] and page["more"] == 0
    newer = {**base, "start_message_seq": 2, "limit": 2, "pull_mode": 1}
    page = (await http.post("/channel/messagesync", json=newer)).json()
    assert [m["message_seq"] for m in page["messages"]] == [2, 3] and page["more"] == 1
    assert (page["start_message_seq"], page["end_message_seq"]) == (2, 0)
    bounded = {**newer, "end_message_seq": 4}
    page = (await http.post("/channel/messagesync", json=bounded)).json()
    assert [m["message_seq"] for m in page["messages"]] == [2, 3] and page["more"] == 0


async def test_user_token_reads_own_history(node: Node) -> None:
    token = await add_user(node, "b")
    await make_group(node, "g1", ["a", "b"])
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}", headers={"token": API_KEY}
    ) as http:
        await send(http, "a", "g1", 2, 1)
        await send(http, "a", "b", 1, 1)
    async with as_user(node, token) as user:
        r = await user.post("/conversation/sync", json={"uid": "b", "msg_count": 1})
        assert r.status_code == 200 and len(r.json()) == 2
        body = {"login_uid": "b", "channel_id": "a", "channel_type": 1}
        r = await user.post("/channel/messagesync", json=body)
        assert r.status_code == 200
        (msg,) = r.json()["messages"]
        assert msg["channel_id"] == "a" and msg["from_uid"] == "a"
        body = {"login_uid": "b", "channel_id": "g1", "channel_type": 2}
        assert (await user.post("/channel/messagesync", json=body)).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/conversation/sync", {"uid": "a"}),
        ("/channel/messagesync", {"login_uid": "a", "channel_id": "b", "channel_type": 1}),
    ],
)
async def test_user_token_cannot_act_for_someone_else(
    node: Node, anon: httpx.AsyncClient, path: str, body: dict[str, object]
) -> None:
    token = await add_user(node, "b")
    await add_user(node, "a")
    async with as_user(node, token) as user:
        r = await user.post(path, json=body)
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    r = await anon.post(path, json=body)
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    async with as_user(node, "made-up") as stranger:  # no user's token: not a credential
        r = await stranger.post(path, json=body)
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")


async def test_non_member_cannot_sync_group(node: Node, http: httpx.AsyncClient) -> None:
    token = await add_user(node, "c")
    await make_group(node, "g1", ["a", "b"])
    await send(http, "a", "g1", 2, 1)
    body = {"login_uid": "c", "channel_id": "g1", "channel_type": 2}
    async with as_user(node, token) as user:
        r = await user.post("/channel/messagesync", json=body)
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (
            403,
            "forbidden",
            "channel_id",
        )
        unknown = {**body, "channel_id": "nope"}
        assert (await user.post("/channel/messagesync", json=unknown)).status_code == 403
        no_uid = {"channel_id": "g1", "channel_type": 2}
        r = await user.post("/channel/messagesync", json=no_uid)
        assert (r.status_code, r.json()["field"]) == (400, "login_uid")
    business = await http.post("/channel/messagesync", json=body)
    assert business.status_code == 200 and len(business.json()["messages"]) == 1


async def test_person_messagesync_needs_login_uid(http: httpx.AsyncClient) -> None:
    r = await http.post("/channel/messagesync", json={"channel_id": "a", "channel_type": 1})
    assert (r.status_code, r.json()["field"]) == (400, "login_uid")

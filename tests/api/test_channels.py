"""``/channel*``: create/update, attributes, delete, subscribers."""

from __future__ import annotations

import httpx

from magpie.app import Node
from magpie.store.interface import ChannelInfo
from tests.api.helpers import db_dump


async def test_channel_creates_then_replaces_subscribers(
    node: Node, http: httpx.AsyncClient
) -> None:
    body = {"channel_id": "g1", "channel_type": 2, "large": 1, "subscribers": ["a", "b", "a"]}
    r = await http.post("/channel", json=body)
    assert (r.status_code, r.json()) == (200, {"status": 200})
    assert await node.store.get_channel("g1", 2) == ChannelInfo("g1", 2, large=True, ban=False)
    assert await node.store.get_subscribers("g1", 2) == ["a", "b"]
    body = {"channel_id": "g1", "channel_type": 2, "ban": 1, "subscribers": ["c"]}
    assert (await http.post("/channel", json=body)).status_code == 200
    assert await node.store.get_channel("g1", 2) == ChannelInfo("g1", 2, large=False, ban=True)
    assert await node.store.get_subscribers("g1", 2) == ["c"]


async def test_channel_info_sets_attributes_only(node: Node, http: httpx.AsyncClient) -> None:
    await http.post("/channel", json={"channel_id": "g1", "channel_type": 2, "subscribers": ["a"]})
    r = await http.post("/channel/info", json={"channel_id": "g1", "channel_type": 2, "ban": True})
    assert r.status_code == 200
    assert await node.store.get_channel("g1", 2) == ChannelInfo("g1", 2, large=False, ban=True)
    assert await node.store.get_subscribers("g1", 2) == ["a"]


async def test_delete_is_idempotent(node: Node, http: httpx.AsyncClient) -> None:
    await http.post("/channel", json={"channel_id": "g1", "channel_type": 2, "subscribers": ["a"]})
    for _ in range(2):
        r = await http.post("/channel/delete", json={"channel_id": "g1", "channel_type": 2})
        assert (r.status_code, r.json()) == (200, {"status": 200})
    assert await node.store.get_channel("g1", 2) is None
    assert await node.store.get_subscribers("g1", 2) == []


async def test_subscriber_add_reset_and_remove(node: Node, http: httpx.AsyncClient) -> None:
    key = {"channel_id": "g1", "channel_type": 2}
    r = await http.post("/channel/subscriber_add", json={**key, "subscribers": ["a", "b"]})
    assert r.status_code == 200, "adding creates the channel"
    assert await node.store.get_channel("g1", 2) is not None
    await http.post("/channel/subscriber_add", json={**key, "subscribers": ["c"]})
    assert await node.store.get_subscribers("g1", 2) == ["a", "b", "c"]
    await http.post("/channel/subscriber_add", json={**key, "reset": 1, "subscribers": ["d"]})
    assert await node.store.get_subscribers("g1", 2) == ["d"]
    r = await http.post("/channel/subscriber_remove", json={**key, "subscribers": ["d", "zz"]})
    assert r.status_code == 200
    assert await node.store.get_subscribers("g1", 2) == []


async def test_remove_from_unknown_channel_is_404(node: Node, http: httpx.AsyncClient) -> None:
    before = db_dump(node)
    body = {"channel_id": "nope", "channel_type": 2, "subscribers": ["a"]}
    r = await http.post("/channel/subscriber_remove", json=body)
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (404, "not_found", "channel_id")
    assert db_dump(node) == before

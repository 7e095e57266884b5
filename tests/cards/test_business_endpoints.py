"""The business primitives: ``/message/get`` and ``/channel/member`` (business key only)."""

from __future__ import annotations

import httpx

from magpie.app import Node
from tests.api.ext_support import send
from tests.api.helpers import text
from tests.cards.support import act, create


async def test_message_get(http: httpx.AsyncClient, a: httpx.AsyncClient) -> None:
    mid = await send(http, "a", "g1")
    r = await http.post("/message/get", json={"message_id": str(mid)})
    data = r.json()["data"]
    assert (data["message"]["message_id"], data["storage_channel_id"], data["extra"]) == (
        mid,
        "g1",
        None,
    )
    card = await create(a, type="vote@1", title="v", options=["x", "y"])
    data = (await http.post("/message/get", json={"message_id": card["message_id"]})).json()
    assert data["data"]["extra"]["extra"]["card"]["type"] == "vote@1"  # raw, business view
    assert (await http.post("/message/get", json={"message_id": 1})).status_code == 404
    assert (await a.post("/message/get", json={"message_id": mid})).status_code == 401
    body = {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": text("hi")}
    pmid = (await http.post("/message/send", json=body)).json()["data"]["message_id"]
    data = (await http.post("/message/get", json={"message_id": pmid})).json()["data"]
    assert "@" in data["storage_channel_id"] and data["message"]["channel_id"] == "b"


async def test_channel_member(http: httpx.AsyncClient, node: Node) -> None:
    async def member(channel: str, kind: int, uid: str) -> bool:
        body = {"channel_id": channel, "channel_type": kind, "uid": uid}
        r = await http.post("/channel/member", json=body)
        assert r.status_code == 200, r.text
        return bool(r.json()["data"]["member"])

    assert await member("g1", 2, "a") and not await member("g1", 2, "out")
    assert await member("a@b", 1, "b") and not await member("a@b", 1, "c")
    assert not await member("b", 1, "b")  # a person channel by its storage id only


async def test_cards_in_a_person_chat_and_revoked_cards(
    http: httpx.AsyncClient, a: httpx.AsyncClient, b: httpx.AsyncClient, c: httpx.AsyncClient
) -> None:
    card = await create(a, "b", 1, type="approval@1", title="Just us", approvers=["b"])
    mid = card["message_id"]
    assert (await c.get(f"/cards/{mid}")).status_code == 404  # outsiders: as if no card
    assert (await act(c, mid, "approve", base=1)).status_code == 404
    rows = (await b.post("/message/extra/sync", json={"channel_id": "a", "channel_type": 1})).json()
    assert rows[0]["channel_id"] == "a" and rows[0]["extra"]["card"]["can_act"] is True
    r = await http.post("/message/revoke", json={"message_id": mid, "revoker": "a"})
    assert r.status_code == 200
    late = await act(b, mid, "approve", base=2)
    assert (late.status_code, late.json()["reason"]) == (400, "revoked")
    stranger = {"type": "approval@1", "title": "x", "approvers": ["b"]}  # b: not in a–c
    r = await a.post("/cards", json={"channel_id": "c", "channel_type": 1, "card": stranger})
    assert r.status_code == 403

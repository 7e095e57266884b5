"""Edit and revoke by users with their own token (``docs/conversation.md``, item 6): through
the extension primitive (operation log, ``syncMessageExtra``), own messages only, group admins
may revoke any; outsiders get 404 and nothing changes."""

from __future__ import annotations

from typing import Any

import httpx

from magpie.app import Node
from tests.api.conv_support import GROUP, PERSON, group, next_cmd, online, user_client, users
from tests.api.ext_support import full_sync, send

BOTH_STORES = True


async def untouched(http: httpx.AsyncClient, *message_ids: int) -> bool:
    """No change was even attempted on the messages (their operation logs are empty)."""
    for mid in message_ids:
        r = await http.post("/message/extra/ops", json={"message_id": mid})
        if r.json()["data"]:
            return False
    return True


async def test_a_sender_edits_and_revokes_their_own_message(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "bob")
    await group(node, "g1", "alice", "bob")
    m1, m2 = await send(http, "alice", "g1"), await send(http, "alice", "g1")
    async with online(node, tokens, "bob") as (bob,), user_client(node, tokens["alice"]) as me:
        content = {"type": 1, "content": "fixed"}
        body = {"message_id": str(m1), "channel_id": "g1", "channel_type": GROUP}
        r = await me.post("/message/edit", json={**body, "content_edit": content})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["content_edit"] == content
        _, cmd = await next_cmd(bob, "syncMessageExtra")
        assert cmd["param"]["channel_id"] == "g1"
        r = await me.post("/message/revoke", json={"message_id": m2})
        assert r.status_code == 200 and r.json()["data"]["revoker"] == "alice"
        again = await me.post("/message/revoke", json={"message_id": m2})
        assert (again.status_code, again.json()["rejection"]) == (400, "revoked")
    ops = (await http.post("/message/extra/ops", json={"message_id": m1})).json()["data"]
    assert [(o["operation"], o["actor"]["uid"]) for o in ops] == [("edit", "alice")]
    async with user_client(node, tokens["bob"]) as reader:
        rows = (await full_sync(reader, "g1")).rows
    assert rows[m2].fields.revoke and rows[m2].fields.revoker == "alice"


async def test_a_user_may_not_change_others_messages_or_pose_as_others(
    node: Node, http: httpx.AsyncClient
) -> None:
    tokens = await users(node, "alice", "bob")
    await group(node, "g1", "alice", "bob")
    mid = await send(http, "alice", "g1")
    async with user_client(node, tokens["bob"]) as bob:
        r = await bob.post("/message/revoke", json={"message_id": mid})
        assert (r.status_code, r.json()["code"]) == (403, "forbidden")
        edit = {"message_id": mid, "content_edit": {"type": 1, "content": "x"}}
        r = await bob.post("/message/edit", json=edit)
        assert r.status_code == 403
        r = await bob.post("/message/revoke", json={"message_id": mid, "revoker": "alice"})
        assert r.status_code == 403, "a token of bob cannot revoke as alice"
        r = await bob.post("/message/edit", json={**edit, "actor_uid": "alice"})
        assert r.status_code == 403
    assert await untouched(http, mid)


async def test_an_edit_keeps_the_content_type(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice")
    await group(node, "g1", "alice")
    mid = await send(http, "alice", "g1")
    async with user_client(node, tokens["alice"]) as me:
        r = await me.post(
            "/message/edit", json={"message_id": mid, "content_edit": {"type": 2, "url": "x"}}
        )
    assert (r.status_code, r.json()["field"]) == (400, "content_edit")
    assert await untouched(http, mid)


async def test_a_group_admin_revokes_any_message(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob", "carol")
    await group(node, "g1", "alice", "bob", "carol")
    mid = await send(http, "alice", "g1")
    role = {"channel_id": "g1", "channel_type": GROUP, "uids": ["bob"], "role": 2}
    assert (await http.post("/channel/subscriber_role", json=role)).status_code == 200
    async with user_client(node, tokens["carol"]) as carol:
        assert (await carol.post("/message/revoke", json={"message_id": mid})).status_code == 403
    async with user_client(node, tokens["bob"]) as bob:
        r = await bob.post("/message/revoke", json={"message_id": mid})
        assert r.status_code == 200 and r.json()["data"]["revoker"] == "bob"
        edit = {"message_id": mid, "content_edit": {"type": 1, "content": "x"}}
        assert (await bob.post("/message/edit", json=edit)).status_code == 403


async def test_outsiders_and_wrong_channels_get_404(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob", "eve")
    await group(node, "g1", "alice", "bob")
    await group(node, "g2", "alice", "eve")
    mid = await send(http, "alice", "g1")
    pm = await send(http, "alice", "bob", PERSON)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("eve", {"message_id": mid}),  # not a member
        ("eve", {"message_id": pm}),  # somebody else's person channel
        ("alice", {"message_id": mid, "channel_id": "g2", "channel_type": GROUP}),
        ("alice", {"message_id": 123456789}),
    ]
    for uid, body in cases:
        async with user_client(node, tokens[uid]) as c:
            for path, extra in (
                ("/message/revoke", {}),
                ("/message/edit", {"content_edit": {"type": 1, "content": "x"}}),
            ):
                r = await c.post(path, json={**body, **extra})
                assert (r.status_code, r.json()["code"]) == (404, "not_found"), (uid, body, path)
                assert "from_uid" not in r.text and "payload" not in r.text
    assert await untouched(http, mid, pm)


async def test_person_channel_sender_revokes(node: Node, http: httpx.AsyncClient) -> None:
    tokens = await users(node, "alice", "bob")
    pm = await send(http, "alice", "bob", PERSON)
    async with user_client(node, tokens["bob"]) as bob:
        assert (await bob.post("/message/revoke", json={"message_id": pm})).status_code == 403
    async with user_client(node, tokens["alice"]) as alice:
        body = {"message_id": pm, "channel_id": "bob", "channel_type": PERSON}
        assert (await alice.post("/message/revoke", json=body)).status_code == 200


async def test_the_business_key_still_needs_a_revoker(http: httpx.AsyncClient, node: Node) -> None:
    await group(node, "g1", "alice")
    mid = await send(http, "alice", "g1")
    r = await http.post("/message/revoke", json={"message_id": mid})
    assert (r.status_code, r.json()["field"]) == (400, "revoker")

"""The authorisation matrix: every route of the route table × {business key, no credential,
a member (alice's token), an outsider (eve's token, a member of nothing)}, with the status
each must get and no data in any refusal.

The routes come from the node's own route table (``endpoints_of``) with every optional part
on (the demo page and login), and the test fails when a route has no entry in
:data:`MATRIX` — a new endpoint cannot be forgotten — or an entry names no route."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from magpie.api.asgi import endpoints_of
from magpie.api.endpoint import Access
from tests.security.conftest import OUTSIDER, World, b64_json, client, populate, token_of
from tests.security.support import assert_no_data
from tests.support.nodes import API_KEY, running_node

BIZ, ANON, MEMBER, OUT = "business key", "no credential", "member", "outsider"
#: The uid each caller acts as (the business key acts for alice).
ACTS_AS = {BIZ: "alice", ANON: "alice", MEMBER: "alice", OUT: OUTSIDER}


@dataclass(frozen=True, slots=True)
class Ids:
    """What the requests refer to."""

    card: int
    message: int
    to_edit: int
    to_revoke: int
    file: str


Body = Callable[[str, Ids], Any]  # (the uid the caller acts as, ids) -> JSON body / query


@dataclass(frozen=True, slots=True)
class Case:
    """A request of one route (``body`` is the query of a GET) and the status each caller
    gets."""

    body: Body | None
    expect: dict[str, int]
    #: A raw request body (an upload): ``body`` is then the query string.
    content: bytes | None = None


def business(body: Body, ok: int = 200) -> Case:
    """A business-key route: only the key gets in."""
    return Case(body, {BIZ: ok, ANON: 401, MEMBER: 401, OUT: 401})


def public(body: Body | None = None) -> Case:
    """A route anybody may call."""
    return Case(body, dict.fromkeys((BIZ, ANON, MEMBER, OUT), 200))


def ops() -> Case:
    """``/metrics`` and ``/openapi.json``: the business key only (``ops_public`` is off by
    default)."""
    return Case(None, {BIZ: 200, ANON: 401, MEMBER: 401, OUT: 401})


def user(body: Body, outsider: int) -> Case:
    """A route for the business key or a user's own token; an outsider gets ``outsider``."""
    return Case(body, {BIZ: 200, ANON: 401, MEMBER: 200, OUT: outsider})


#: A card type the business key registers (``GET /card-types/{tag}`` reads it back).
_CARD_TYPE = {
    "name": "matrix",
    "version": 1,
    "initial_status": "open",
    "terminal": ["done"],
    "actions": [{"name": "go", "who": {"members": True}}],
    "transitions": [{"from": "open", "action": "go", "to": "done"}],
}


def _send(uid: str, _: Ids) -> dict[str, Any]:
    return {
        "from_uid": uid,
        "channel_id": "g1",
        "channel_type": 2,
        "payload": b64_json({"type": 1}),
    }


MATRIX: dict[tuple[str, str], Case] = {
    ("GET", "/health"): public(),
    ("GET", "/ready"): public(),
    ("GET", "/metrics"): ops(),
    ("GET", "/openapi.json"): ops(),
    ("GET", "/route"): public(lambda u, _: {"uid": u}),
    ("GET", "/"): public(),
    ("GET", "/demo/users"): public(),
    ("POST", "/demo/login"): public(lambda u, _: {"uid": "bob"}),
    ("POST", "/user/token"): business(lambda u, _: {"uid": "zed", "token": "t"}),
    ("POST", "/user/device_quit"): business(lambda u, _: {"uid": "zed", "device_flag": -1}),
    ("POST", "/user/onlinestatus"): business(lambda u, _: ["alice"]),
    ("POST", "/channel"): business(
        lambda u, _: {"channel_id": "g2", "channel_type": 2, "subscribers": ["alice"]}
    ),
    ("POST", "/channel/info"): business(lambda u, _: {"channel_id": "g2", "channel_type": 2}),
    ("POST", "/channel/delete"): business(lambda u, _: {"channel_id": "g3", "channel_type": 2}),
    ("POST", "/channel/subscriber_add"): business(
        lambda u, _: {"channel_id": "g1", "channel_type": 2, "subscribers": ["bob"]}
    ),
    ("POST", "/channel/subscriber_remove"): business(
        lambda u, _: {"channel_id": "g1", "channel_type": 2, "subscribers": ["nobody"]}
    ),
    ("POST", "/message/send"): business(_send),
    ("POST", "/message/sendbatch"): business(
        lambda u, _: {"from_uid": u, "subscribers": ["bob"], "payload": b64_json({"type": 1})}
    ),
    ("POST", "/message/sync"): business(lambda u, _: {"uid": "bob"}),
    ("POST", "/message/syncack"): business(lambda u, _: {"uid": "bob", "last_message_seq": 1}),
    ("POST", "/message/extra/update"): business(
        lambda u, ids: {"message_id": ids.message, "action_id": "m1", "mode": "lww", "status": "s"}
    ),
    ("POST", "/message/revoke"): user(  # the sender's own message; an outsider: no message
        lambda u, ids: {"message_id": ids.to_revoke, "revoker": u}, 404
    ),
    ("POST", "/message/edit"): user(
        lambda u, ids: {
            "message_id": ids.to_edit,
            "actor_uid": u,
            "content_edit": {"type": 1, "content": "e"},
        },
        404,
    ),
    ("POST", "/channel/subscriber_role"): business(
        lambda u, _: {"channel_id": "g1", "channel_type": 2, "uids": ["alice"], "role": 2}
    ),
    ("POST", "/channel/members"): user(
        lambda u, _: {"login_uid": u, "channel_id": "g1", "channel_type": 2}, 403
    ),
    ("POST", "/channel/online"): user(
        lambda u, _: {"login_uid": u, "channel_id": "g1", "channel_type": 2}, 403
    ),
    ("POST", "/reactions"): user(
        lambda u, ids: {
            "login_uid": u,
            "channel_id": "g1",
            "channel_type": 2,
            "message_id": ids.message,
            "emoji": "ok",
        },
        403,
    ),
    ("POST", "/reaction/sync"): user(
        lambda u, _: {"login_uid": u, "channel_id": "g1", "channel_type": 2}, 403
    ),
    ("POST", "/message/readed"): user(
        lambda u, ids: {
            "login_uid": u,
            "channel_id": "g1",
            "channel_type": 2,
            "message_ids": [str(ids.message)],
        },
        403,
    ),
    ("GET", "/messages/{message_id}/receipt"): user(lambda u, _: {"login_uid": u}, 404),
    ("POST", "/conversations/clearUnread"): user(
        lambda u, _: {"uid": u, "channel_id": "g1", "channel_type": 2},
        404,  # eve has none
    ),
    ("POST", "/conversation/extra/sync"): user(lambda u, _: {"uid": u}, 200),  # eve's: empty
    ("POST", "/message/reminder/sync"): user(lambda u, _: {"uid": u}, 200),  # eve's: empty
    # nobody has reminders in this world: every credential gets 404 for an id, and no data
    ("POST", "/message/reminder/done"): Case(
        lambda u, _: {"uid": u, "ids": [1]}, {BIZ: 404, ANON: 401, MEMBER: 404, OUT: 404}
    ),
    ("POST", "/message/replies"): user(
        lambda u, ids: {
            "login_uid": u,
            "channel_id": "g1",
            "channel_type": 2,
            "message_id": ids.message,
        },
        403,
    ),
    ("POST", "/file/upload"): Case(
        lambda u, _: {"login_uid": u, "channel_id": "g1", "channel_type": "2"},
        {BIZ: 200, ANON: 401, MEMBER: 200, OUT: 403},
        content=b"some bytes",
    ),
    ("GET", "/file/{file_id}"): user(lambda u, _: {"login_uid": u}, 404),
    ("POST", "/message/search"): user(
        lambda u, _: {"login_uid": u, "keyword": "secret"},
        200,  # eve's: nothing readable
    ),
    ("POST", "/message/typing"): user(
        lambda u, _: {"login_uid": u, "channel_id": "g1", "channel_type": 2}, 403
    ),
    ("POST", "/message/extra/ops"): business(lambda u, ids: {"message_id": ids.message}),
    ("POST", "/message/get"): business(lambda u, ids: {"message_id": ids.message}),
    ("POST", "/channel/member"): business(
        lambda u, _: {"channel_id": "g1", "channel_type": 2, "uid": "alice"}
    ),
    ("GET", "/jobs/dead"): business(lambda u, _: {"kind": "webhook"}),
    ("POST", "/jobs/dead/retry"): business(lambda u, _: {"job_ids": [1]}),
    ("POST", "/conversation/sync"): user(lambda u, _: {"uid": u}, 200),  # eve's own: empty
    ("POST", "/channel/messagesync"): user(
        lambda u, _: {"login_uid": u, "channel_id": "g1", "channel_type": 2}, 403
    ),
    ("POST", "/message/extra/sync"): user(
        lambda u, _: {"login_uid": u, "channel_id": "g1", "channel_type": 2}, 403
    ),
    ("POST", "/cards"): user(
        lambda u, _: {
            "uid": u,
            "channel_id": "g1",
            "channel_type": 2,
            "card": {"type": "vote@1", "title": "m", "options": ["a", "b"]},
        },
        403,  # the creator must be in the chat (the answer names only the caller)
    ),
    ("GET", "/cards/{message_id}"): user(lambda u, _: {"uid": u}, 404),
    ("POST", "/cards/{message_id}/actions"): user(
        lambda u, _: {
            "uid": u,
            "action": "vote",
            "params": {"option": 0},
            "action_id": f"v-{u}",
            "base_version": 1,
        },
        404,
    ),
    ("GET", "/cards/{message_id}/ops"): user(lambda u, _: {"uid": u}, 404),
    ("GET", "/cards/{message_id}/history"): user(lambda u, _: {"uid": u}, 404),
    ("POST", "/card-types"): business(lambda u, _: _CARD_TYPE),
    ("GET", "/card-types/{tag}"): business(lambda u, _: {}),
    ("GET", "/card-types"): business(lambda u, _: {}),
    ("GET", "/cards/{message_id}/records"): user(lambda u, _: {"uid": u}, 404),
    ("GET", "/admin/users"): business(lambda u, _: {"limit": 5}),
    ("GET", "/admin/channels"): business(lambda u, _: {"limit": 5}),
    ("GET", "/admin/channel"): business(lambda u, _: {"channel_id": "g1", "channel_type": 2}),
    ("GET", "/admin/messages/{message_id}"): business(lambda u, _: {"ops_limit": 5}),
}

CREDENTIALS = {BIZ: API_KEY, ANON: None, MEMBER: token_of("alice"), OUT: token_of(OUTSIDER)}


@pytest.fixture
async def full(tmp_path: Path) -> AsyncIterator[tuple[World, Ids]]:
    """The security world with every optional route on, and messages to edit and revoke."""
    async with running_node(tmp_path, demo_ui=True, demo_login=True) as node:
        world = await populate(node)
        async with client(node, API_KEY) as http:
            body = {"from_uid": "alice", "channel_id": "g1", "channel_type": 2}
            body["payload"] = b64_json({"type": 1, "content": "to change"})
            extra = [await http.post("/message/send", json=body) for _ in range(2)]
            params = {"login_uid": "alice", "channel_id": "g1", "channel_type": "2"}
            up = await http.post("/file/upload", params=params, content=b"attached")
            assert up.status_code == 200, up.text
        edit, revoke = (int(r.json()["data"]["message_id"]) for r in extra)
        file_id = up.json()["data"]["file_id"]
        yield world, Ids(world.card_id, world.message_id, edit, revoke, file_id)


def test_every_route_has_a_matrix_entry(full: tuple[World, Ids]) -> None:
    world, _ = full
    assert world.node.api is not None
    routes = {(ep.method, ep.path): ep for ep in endpoints_of(world.node.api)}
    missing = sorted(set(routes) - set(MATRIX))
    assert not missing, f"routes without an authorisation-matrix entry: {missing}"
    stale = sorted(set(MATRIX) - set(routes))
    assert not stale, f"matrix entries naming no route: {stale}"
    for key, case in MATRIX.items():  # the table's access level agrees with the entry
        access = routes[key].access
        assert (case.expect[ANON] == 401) == (access is not Access.PUBLIC), key
        assert (case.expect[MEMBER] == 401) == (access is Access.BUSINESS), key


@pytest.mark.parametrize("caller", [ANON, OUT, MEMBER, BIZ])
async def test_each_caller_gets_its_status_and_outsiders_no_data(
    full: tuple[World, Ids], caller: str
) -> None:
    world, ids = full
    async with client(world.node, CREDENTIALS[caller]) as c:
        for (method, path), case in MATRIX.items():
            url = path.replace("{message_id}", str(ids.card)).replace("{file_id}", ids.file)
            url = url.replace("{tag}", "matrix@1")
            body = None if case.body is None else case.body(ACTS_AS[caller], ids)
            if method == "GET":
                r = await c.get(url, params=body)
            elif case.content is not None:
                r = await c.post(url, params=body, content=case.content)
            else:
                r = await c.post(url, json=body)
            want = case.expect[caller]
            assert r.status_code == want, (caller, method, path, r.status_code, r.text[:300])
            if want >= 400:
                assert_no_data(world, r)

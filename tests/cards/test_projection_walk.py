"""Projection by construction: no unprojected card state reaches a client, on any route.

The walk covers every client-facing endpoint of the route table (user and public access) —
a new one fails :func:`test_every_client_route_is_walked` until it is added to
:data:`CALLS` — and the CMDs pushed to a member's connection. The secrets are what the
stored card state holds and no projection for a plain member shows: the pseudonymous ballot
keys of an anonymous vote, another member's survey answer, and the stored state's own shape
(an object with ``data`` and ``rev``). They are read from the business view first, so the
test fails if they were absent from the store (it could not fail otherwise).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from magpie.api.endpoint import Access
from magpie.api.routes import all_endpoints
from magpie.app import Node
from magpie.cards.model import CARD_CONTENT_TYPE
from magpie.config import Settings
from tests.cards.support import act, bearer, create, user
from tests.support.nodes import api, connect, settle

SURVEY_SECRET = "survey-answer-of-b-5e1d"
#: The viewer: a member of g1 who created nothing, administers nothing, and has not acted.
VIEWER = "c"

Call = Callable[[httpx.AsyncClient, dict[str, int]], Awaitable[httpx.Response]]


def _post(path: str, body: dict[str, Any]) -> Call:
    async def call(http: httpx.AsyncClient, _: dict[str, int]) -> httpx.Response:
        return await http.post(path, json=body)

    return call


def _get(path: str) -> Call:
    async def call(http: httpx.AsyncClient, ids: dict[str, int]) -> httpx.Response:
        return await http.get(path.format(message_id=ids["vote"]))

    return call


def _each_card(path: str) -> Call:
    """GET ``path`` of every card; one response holding all answers."""

    async def call(http: httpx.AsyncClient, ids: dict[str, int]) -> httpx.Response:
        texts = [(await http.get(path.format(message_id=mid))).text for mid in ids.values()]
        return httpx.Response(200, text="\n".join(texts))

    return call


async def _create(http: httpx.AsyncClient, _: dict[str, int]) -> httpx.Response:
    card = {"type": "vote@1", "title": "Lunch", "options": ["x", "y"]}
    body = {"channel_id": "g1", "channel_type": 2, "card": card}
    return await http.post("/cards", json=body)


async def _actions(http: httpx.AsyncClient, ids: dict[str, int]) -> httpx.Response:
    """An applied ballot, a refused close (not the creator) and a refused survey answer
    after closing: each answer carries the viewer's projection (``current`` on refusal)."""
    vote = await act(http, ids["vote"], "vote", {"options": [1]}, base=2)
    refused = await act(http, ids["survey"], "close", base=2)
    stale = await act(http, ids["vote"], "vote", {"options": [0]}, base=1)
    return httpx.Response(200, text="\n".join(r.text for r in (vote, refused, stale)))


def _as_creator(path: str, body: dict[str, Any], times: int = 1) -> Call:
    """POST ``body`` (its ``message_id`` the anonymous vote) ``times`` as the cards' creator
    ``a``, who may revoke and edit them: the answers carry a's projection (``current`` on a
    refusal), never the stored state."""

    async def call(http: httpx.AsyncClient, ids: dict[str, int]) -> httpx.Response:
        texts = []
        async with httpx.AsyncClient(base_url=http.base_url, headers=bearer("a")) as creator:
            for _ in range(times):
                r = await creator.post(path, json={**body, "message_id": ids["vote"]})
                texts.append(r.text)
        return httpx.Response(200, text="\n".join(texts))

    return call


async def _react_to_vote(http: httpx.AsyncClient, ids: dict[str, int]) -> httpx.Response:
    body = {"channel_id": "g1", "channel_type": 2, "message_id": ids["vote"], "emoji": "ok"}
    return await http.post("/reactions", json=body)


async def _read_vote(http: httpx.AsyncClient, ids: dict[str, int]) -> httpx.Response:
    body = {"channel_id": "g1", "channel_type": 2, "message_ids": [str(ids["vote"])]}
    return await http.post("/message/readed", json=body)


async def _replies_to_vote(http: httpx.AsyncClient, ids: dict[str, int]) -> httpx.Response:
    body = {"channel_id": "g1", "channel_type": 2, "message_id": ids["vote"]}
    return await http.post("/message/replies", json=body)


async def _upload(http: httpx.AsyncClient, _: dict[str, int]) -> httpx.Response:
    params = {"channel_id": "g1", "channel_type": "2", "name": "n.txt"}
    return await http.post("/file/upload", params=params, content=b"plain bytes")


async def _download(http: httpx.AsyncClient, ids: dict[str, int]) -> httpx.Response:
    up = await _upload(http, ids)
    return await http.get(up.json()["data"]["url"])


#: How the walk calls each client-facing endpoint, as the viewer.
CALLS: dict[tuple[str, str], Call] = {
    ("GET", "/"): _get("/"),
    ("GET", "/route"): _get("/route"),
    ("GET", "/health"): _get("/health"),
    ("GET", "/ready"): _get("/ready"),
    ("GET", "/metrics"): _get("/metrics"),
    ("GET", "/demo/users"): _get("/demo/users"),
    ("POST", "/demo/login"): _post("/demo/login", {"uid": VIEWER}),
    ("POST", "/conversation/sync"): _post("/conversation/sync", {"uid": VIEWER, "msg_count": 50}),
    ("POST", "/channel/messagesync"): _post(
        "/channel/messagesync", {"login_uid": VIEWER, "channel_id": "g1", "channel_type": 2}
    ),
    ("POST", "/message/extra/sync"): _post(
        "/message/extra/sync", {"channel_id": "g1", "channel_type": 2, "envelope": 1}
    ),
    ("POST", "/channel/members"): _post(
        "/channel/members", {"channel_id": "g1", "channel_type": 2}
    ),
    ("POST", "/channel/online"): _post("/channel/online", {"channel_id": "g1", "channel_type": 2}),
    ("POST", "/message/typing"): _post("/message/typing", {"channel_id": "g1", "channel_type": 2}),
    ("POST", "/message/edit"): _as_creator(
        "/message/edit", {"content_edit": {"type": CARD_CONTENT_TYPE, "content": "edited"}}
    ),
    ("POST", "/message/revoke"): _as_creator("/message/revoke", {}, times=2),
    ("POST", "/reactions"): _react_to_vote,
    ("POST", "/reaction/sync"): _post("/reaction/sync", {"channel_id": "g1", "channel_type": 2}),
    ("POST", "/message/readed"): _read_vote,
    ("GET", "/messages/{message_id}/receipt"): _get("/messages/{message_id}/receipt"),
    ("POST", "/conversations/clearUnread"): _post(
        "/conversations/clearUnread", {"channel_id": "g1", "channel_type": 2}
    ),
    ("POST", "/conversation/extra/sync"): _post("/conversation/extra/sync", {"version": 0}),
    ("POST", "/message/reminder/sync"): _post("/message/reminder/sync", {"version": 0}),
    ("POST", "/message/reminder/done"): _post("/message/reminder/done", {"ids": [1]}),
    ("POST", "/message/replies"): _replies_to_vote,
    ("POST", "/file/upload"): _upload,
    ("GET", "/file/{file_id}"): _download,
    ("POST", "/message/search"): _post("/message/search", {"keyword": "secret poll lunch"}),
    ("POST", "/cards"): _create,
    ("GET", "/cards/{message_id}"): _each_card("/cards/{message_id}"),
    ("POST", "/cards/{message_id}/actions"): _actions,
    ("GET", "/cards/{message_id}/ops"): _each_card("/cards/{message_id}/ops"),
    ("GET", "/cards/{message_id}/history"): _each_card("/cards/{message_id}/history"),
    ("GET", "/cards/{message_id}/records"): _each_card("/cards/{message_id}/records"),
}


def _client_routes(node: Node) -> set[tuple[str, str]]:
    return {
        (ep.method, ep.path)
        for ep in all_endpoints(node.settings)
        if ep.access in (Access.USER, Access.PUBLIC)
    }


def test_every_client_route_is_walked() -> None:
    """The walk knows every user or public route of the table (demo routes included)."""
    settings = Settings().replace(demo_login=True, demo_ui=True)
    routes = {
        (ep.method, ep.path)
        for ep in all_endpoints(settings)
        if ep.access in (Access.USER, Access.PUBLIC)
    }
    assert routes - set(CALLS) == set(), "add a call for the new client-facing route"


def _stored_shapes(value: Any) -> list[Any]:
    """Every JSON object inside ``value`` shaped like stored card state (data + rev)."""
    found = []
    if isinstance(value, dict):
        if {"data", "rev"} <= value.keys():
            found.append(value)
        for item in value.values():
            found += _stored_shapes(item)
    elif isinstance(value, list):
        for item in value:
            found += _stored_shapes(item)
    return found


async def _secrets_in_store(node: Node, vote_id: int) -> list[str]:
    """The ballot keys of the stored anonymous vote (its ``b:<pseudonym>`` records)."""
    return [r.key[2:] for r in await node.store.list_records(vote_id, "b:", "", 100)]


async def _setup(node: Node) -> tuple[dict[str, int], list[str]]:
    """An anonymous vote with b's ballot and a survey with b's private text answer; the
    secrets the store holds."""
    async with user(node, "a") as a, user(node, "b") as b, api(node) as biz:
        vote = await create(a, type="vote@1", title="Secret", options=["x", "y"], anonymous=True)
        question = {"id": "q1", "kind": "text", "prompt": "Why?"}
        survey = await create(a, type="survey@1", title="Poll", questions=[question])
        ids = {"vote": vote["message_id"], "survey": survey["message_id"]}
        voted = await act(b, ids["vote"], "vote", {"options": [0]}, base=1)
        answers = {"answers": {"q1": SURVEY_SECRET}}
        responded = await act(b, ids["survey"], "respond", answers, base=1)
        assert voted.status_code == 200 and responded.status_code == 200
        raw_vote = (await biz.post("/message/get", json={"message_id": ids["vote"]})).json()
        raw_survey = (await biz.post("/message/get", json={"message_id": ids["survey"]})).json()
    keys = await _secrets_in_store(node, ids["vote"])
    stored = json.dumps([r.value for r in await node.store.list_records(ids["survey"], "", "", 9)])
    assert len(keys) == 1 and len(keys[0]) >= 16 and SURVEY_SECRET in stored, "secrets stored"
    assert _stored_shapes(raw_vote["data"]["extra"]), "the business view is the raw state"
    assert _stored_shapes(raw_survey["data"]["extra"])
    return ids, [*keys, SURVEY_SECRET]


async def test_no_route_and_no_cmd_serves_unprojected_card_state(node: Node) -> None:
    watcher = await connect(node, VIEWER, f"tok-{VIEWER}")
    try:
        ids, secrets = await _setup(node)
        served: dict[str, str] = {}
        async with user(node, VIEWER) as viewer, user(node, "out") as outsider:
            for route in sorted(_client_routes(node)):
                served[f"{route} viewer"] = (await CALLS[route](viewer, ids)).text
                if route[1].startswith(("/cards", "/message", "/channel")):
                    served[f"{route} outsider"] = (await CALLS[route](outsider, ids)).text
        await settle(0.3)  # the coalesced CMDs of the last changes
    finally:
        cmds = [watcher.messages.get_nowait() for _ in range(watcher.messages.qsize())]
        await watcher.close()
    served |= {f"cmd {n}": m.payload.decode() for n, m in enumerate(cmds)}
    acted = served["('POST', '/cards/{message_id}/actions') viewer"]
    assert '"op_id"' in acted and '"current"' in acted, "an applied and a refused action"
    revoked = served["('POST', '/message/revoke') viewer"]
    assert '"revoker":"a"' in revoked and '"rejection":"revoked"' in revoked, "both answers"
    assert '"content_edit":{' in served["('POST', '/message/edit') viewer"]
    assert any('"syncMessageExtra"' in text for key, text in served.items() if "cmd" in key)
    assert any(str(ids["vote"]) in text for text in served.values()), "the walk saw the cards"
    leaked = {key: [s for s in secrets if s in text] for key, text in served.items()}
    assert {key: found for key, found in leaked.items() if found} == {}
    shaped = {}
    for key, text in served.items():
        try:
            shapes = _stored_shapes(json.loads(text))
        except ValueError:
            shapes = [text] if '"rev"' in text else []
        if shapes:
            shaped[key] = shapes
    assert shaped == {}, "stored card state (data + rev) left the server"


async def test_the_walk_would_see_a_leak(node: Node) -> None:
    """The detectors fire on the business view, which is the raw state."""
    ids, secrets = await _setup(node)
    async with api(node) as biz:
        raw = await biz.post("/message/get", json={"message_id": ids["survey"]})
    assert _stored_shapes(raw.json())
    records = await node.store.list_records(ids["vote"], "", "", 100)
    assert all(any(s in r.key for r in records) for s in secrets[:-1])
    answers = await node.store.list_records(ids["survey"], "r:", "", 100)
    assert secrets[-1] in json.dumps([r.value for r in answers])

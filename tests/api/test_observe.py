"""Request ids, the HTTP access log and JSON log lines, over a real node."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import httpx
import pytest

from magpie.app import Node
from magpie.logs import configure_logging, key_id
from tests.api.helpers import as_user
from tests.support.nodes import API_KEY, add_user, api, running_node

ACCESS = "magpie.api.access"


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS]


async def test_a_valid_request_id_is_kept_and_echoed(http: httpx.AsyncClient) -> None:
    r = await http.get("/health", headers={"X-Request-Id": "edge-42.a:b_c"})
    assert r.headers["x-request-id"] == "edge-42.a:b_c"


@pytest.mark.parametrize(
    "sent", [None, "", "x" * 129, "two words", "semi;colon", "\xfc".encode("latin-1")]
)
async def test_a_missing_or_unusable_request_id_is_replaced(
    http: httpx.AsyncClient, sent: str | bytes | None
) -> None:
    headers = {} if sent is None else {"X-Request-Id": sent}
    r = await http.get("/health", headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


async def test_errors_carry_the_request_id_too(anon: httpx.AsyncClient) -> None:
    r = await anon.post("/user/token", json={}, headers={"X-Request-Id": "r-401"})
    assert r.status_code == 401 and r.headers["x-request-id"] == "r-401"
    r = await anon.get("/no/such/path", headers={"X-Request-Id": "r-404"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "r-404"


async def test_access_line_names_route_template_status_caller_and_request_id(
    node: Node, http: httpx.AsyncClient, anon: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = await add_user(node, "alice")
    caplog.set_level(logging.INFO, logger=ACCESS)
    caplog.clear()
    await http.get("/cards/123456789", params={"uid": "alice"}, headers={"X-Request-Id": "k1"})
    async with as_user(node, token) as alice:
        await alice.post(
            "/conversation/sync", json={"uid": "alice"}, headers={"X-Request-Id": "u1"}
        )
    await anon.post("/user/token", json={"uid": "x"}, headers={"X-Request-Id": "a1"})
    lines = {r.request_id: r for r in _access_lines(caplog)}  # type: ignore[attr-defined]
    business, user, nobody = lines["k1"], lines["u1"], lines["a1"]
    assert business.route == "/cards/{message_id}"  # type: ignore[attr-defined]
    text = business.getMessage()
    assert text.startswith("GET /cards/{message_id} 404 ")
    assert "123456789" not in text and "alice" not in text, "no raw path, no query"
    assert f"caller={key_id(API_KEY)}" in text and API_KEY not in text
    assert "request_id=k1" in text and "remote=127.0.0.1:" in text
    assert user.getMessage().startswith("POST /conversation/sync 200 ")
    assert user.caller == "uid:alice" and token not in user.getMessage()  # type: ignore[attr-defined]
    assert nobody.status == 401 and nobody.caller == "-"  # type: ignore[attr-defined]
    assert float(business.latency_ms) >= 0  # type: ignore[attr-defined]


async def test_the_access_log_can_be_turned_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    async with running_node(tmp_path, access_log=False) as node, api(node) as http:
        assert (await http.get("/health")).status_code == 200
    assert not _access_lines(caplog)


async def test_json_lines_carry_the_structured_fields(tmp_path: Path) -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO", "json", stream=out)
    try:
        async with running_node(tmp_path) as node, api(node) as http:
            r = await http.post(
                "/conversation/sync", json={"uid": "bob"}, headers={"X-Request-Id": "j1"}
            )
            assert r.status_code == 200, r.text
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records, "nothing was logged"
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    (line,) = [r for r in records if r["logger"] == ACCESS and r.get("request_id") == "j1"]
    assert line["level"] == "INFO" and line["method"] == "POST"
    assert line["route"] == "/conversation/sync"
    assert line["status"] == 200 and line["caller"] == key_id(API_KEY)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*", line["time"])


async def _card(http: httpx.AsyncClient) -> str:
    """A vote card by alice in the group ``g`` (alice, bob); its message id."""
    r = await http.post(
        "/channel", json={"channel_id": "g", "channel_type": 2, "subscribers": ["alice", "bob"]}
    )
    assert r.status_code == 200, r.text
    card = {"type": "vote@1", "title": "lunch", "options": ["a", "b"]}
    r = await http.post(
        "/cards", json={"uid": "alice", "channel_id": "g", "channel_type": 2, "card": card}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["message_id_str"])


async def test_log_lines_inside_a_request_carry_its_id(tmp_path: Path) -> None:
    """A line logged while a request is handled (the audit line of a card action by a
    non-member) carries that request's id."""
    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO", "json", stream=out)
    try:
        async with running_node(tmp_path) as node, api(node) as http:
            message_id = await _card(http)
            body = {"uid": "mallory", "action": "vote", "params": {"options": [0]},
                    "action_id": "x1", "base_version": 1}  # fmt: skip
            r = await http.post(
                f"/cards/{message_id}/actions", json=body, headers={"X-Request-Id": "inner-7"}
            )
            assert r.status_code == 403, r.text
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    tagged = [r for r in records if r.get("request_id") == "inner-7"]
    assert {r["logger"] for r in tagged} == {"magpie.cards.service", ACCESS}, tagged
    audit = next(r for r in tagged if r["logger"] == "magpie.cards.service")
    assert "non-member" in audit["message"]
    assert all("request_id" not in r for r in records if r not in tagged and "route" not in r)

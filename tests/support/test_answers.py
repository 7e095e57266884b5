"""The check of API answers against the OpenAPI document (``tests.support.answers``): it finds
each kind of disagreement, and it sees the real answers of a running node."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.support.answers import ANSWERS, DocumentedApi, closed, document_of
from tests.support.nodes import api, running_node

_JSON = "application/json"
DOC: dict[str, Any] = {
    "paths": {
        "/things/{thing_id}": {
            "get": {
                "responses": {
                    "200": {
                        "content": {
                            _JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "n": {"type": "integer"},
                                        "blob": {"type": "object"},
                                        "err": {"$ref": "#/components/schemas/Error"},
                                    },
                                    "required": ["n"],
                                }
                            }
                        }
                    },
                    "4XX": {"content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "204": {"description": "no body"},
                }
            }
        },
        "/metrics": {"get": {"responses": {"200": {"content": {"text/plain; v=1": {}}}}}},
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {"code": {"type": "string"}},
                "required": ["code"],
            }
        }
    },
}


def problems(method: str, path: str, status: int, body: object, media: str = _JSON) -> list[str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return DocumentedApi(DOC).problems(method, path, status, media, raw)


def test_a_documented_answer_passes() -> None:
    assert problems("GET", "/things/7", 200, {"n": 1, "blob": {"anything": [1]}}) == []
    assert problems("GET", "/things/7", 404, {"code": "not_found"}) == []  # via 4XX
    assert problems("GET", "/things/7", 204, b"") == []
    assert problems("GET", "/metrics", 200, b"# text", "text/plain; v=1; charset=utf-8") == []


def test_each_kind_of_disagreement_is_found() -> None:
    [extra] = problems("GET", "/things/7", 200, {"n": 1, "surprise": True})
    assert "surprise" in extra, "a listed object is closed"
    [kind] = problems("GET", "/things/7", 200, {"n": "1"})
    assert "GET /things/7 -> 200: n:" in kind
    assert problems("GET", "/things/7", 200, {"n": 1, "err": {}}) != [], "refs are followed"
    [status] = problems("GET", "/things/7", 500, {"code": "x"})
    assert "status 500 is not documented" in status
    assert "media type" in problems("GET", "/things/7", 200, b"<p>", "text/html")[0]
    assert "not JSON" in problems("GET", "/things/7", 200, b"{", _JSON)[0]
    assert "none is documented" in problems("GET", "/things/7", 204, b"x")[0]


def test_undocumented_routes_may_only_be_the_routers_errors() -> None:
    assert problems("POST", "/things/7", 405, {"code": "method_not_allowed"}) == []
    assert problems("GET", "/nope", 404, {"code": "not_found"}) == []
    assert "expected 405" in problems("POST", "/things/7", 404, {"code": "not_found"})[0]
    assert "expected 404" in problems("GET", "/nope", 200, {"code": "x"})[0]
    assert problems("GET", "/things%2F7", 404, {"code": "not_found"}) == [], "escapes match none"
    assert problems("GET", "/", 200, b"<html>", "text/html") == [], "the demo page"


def test_closed_respects_an_explicit_choice() -> None:
    schema = {"properties": {"a": {"properties": {}}}, "additionalProperties": True}
    assert closed(schema) == {
        "properties": {"a": {"properties": {}, "additionalProperties": False}},
        "additionalProperties": True,
    }


async def test_a_running_nodes_answers_are_checked(tmp_path: Path) -> None:
    """The autouse hook sees real answers; a document that lacks a field the node sends makes
    the very same answer a problem."""
    async with running_node(tmp_path) as node, api(node) as http:
        before = ANSWERS.checked
        assert (await http.get("/route", params={"uid": "alice"})).status_code == 200
        assert ANSWERS.checked == before + 1 and ANSWERS.take() == []

        document = copy.deepcopy(document_of(node))
        route = document["paths"]["/route"]["get"]["responses"]["200"]["content"][_JSON]
        del route["schema"]["properties"]["wss_addr"]
        ANSWERS.apis[node.api_port] = DocumentedApi(document)
        assert (await http.get("/route", params={"uid": "alice"})).status_code == 200
        [problem] = ANSWERS.take()
        assert "GET /route -> 200" in problem and "wss_addr" in problem

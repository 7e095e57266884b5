"""Every answer the test suite gets from a node's HTTP API must match its documentation.

``running_node`` registers each node's OpenAPI document (built in-process from the same route
table that serves it) under its API port; an autouse fixture (``tests/conftest.py``) wraps
``httpx.AsyncClient.send`` for the test, so every answer from a registered port — the tests'
own calls and the Python SDK's alike — is checked here:

* the route and method must be documented (else it must be the router's JSON 404/405 error);
* the status must be listed for that operation (exactly, or as ``4XX``/``5XX``);
* a JSON answer must validate against the documented schema, read strictly: an object schema
  that lists ``properties`` is closed (an undocumented field is a disagreement too) unless it
  says otherwise with ``additionalProperties``.

Problems are collected (never raised inside the code under test, which may retry) and fail
the test at teardown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from magpie import __version__
from magpie.api.asgi import endpoints_of
from magpie.api.openapi import build_document
from magpie.app import Node

__all__ = ["ANSWERS", "AnswerLog", "DocumentedApi", "closed", "document_of"]

_JSON = "application/json"


def document_of(node: Node) -> dict[str, Any]:
    """The OpenAPI document ``node`` serves at ``/openapi.json``."""
    assert node.api is not None, "the node is not started"
    return build_document(endpoints_of(node.api), __version__)


def closed(schema: Any) -> Any:
    """``schema`` with every object that lists ``properties`` closed to other keys (unless it
    states ``additionalProperties`` itself)."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed(value) for key, value in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _mime(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


@dataclass
class _Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    responses: dict[str, Any]


class DocumentedApi:
    """One node's OpenAPI document, ready to judge answers."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.components = closed(dict(document.get("components", {})))
        self.operations: list[_Operation] = []
        for template, item in document["paths"].items():
            regex = re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template))
            for method, operation in item.items():
                pattern = re.compile(regex)
                self.operations.append(
                    _Operation(method.upper(), template, pattern, operation["responses"])
                )
        self._validators: dict[tuple[str, str, str], Draft202012Validator] = {}

    def problems(
        self, method: str, path: str, status: int, content_type: str, body: bytes
    ) -> list[str]:
        """What is wrong with this answer (nothing: an empty list)."""
        where = f"{method} {path} -> {status}"
        # An escaped path (``%2F``) selects no route: only the router's 404 may answer it.
        matching = [op for op in self.operations if "%" not in path and op.pattern.fullmatch(path)]
        operation = next((op for op in matching if op.method == method), None)
        if operation is None:
            return self._router_error(where, matching, status, content_type, body)
        key = self._status_key(operation, status)
        if key is None:
            listed = ", ".join(operation.responses)
            return [f"{where}: status {status} is not documented (documented: {listed})"]
        content = {
            _mime(media): v for media, v in operation.responses[key].get("content", {}).items()
        }
        mime = _mime(content_type)
        if not content:
            return [] if not body else [f"{where}: a body where none is documented"]
        if mime not in content:
            return [f"{where}: media type {mime!r}, documented {sorted(content)}"]
        if mime != _JSON:
            return []
        validator = self._validator(operation, key, content[mime]["schema"])
        return self._validate(where, validator, body)

    def _router_error(
        self, where: str, matching: list[_Operation], status: int, content_type: str, body: bytes
    ) -> list[str]:
        """An undocumented route or method: the router's JSON 404 / 405, or a page of the
        demo (not part of the API, so not in the document)."""
        if _mime(content_type) != _JSON:
            return []
        expected = 405 if matching else 404
        if status != expected:
            return [f"{where}: undocumented route answered {status}, expected {expected}"]
        schema = {"$ref": "#/components/schemas/Error"}
        return self._validate(where, self._validator(None, "error", schema), body)

    @staticmethod
    def _status_key(operation: _Operation, status: int) -> str | None:
        for key in (str(status), f"{status // 100}XX", "default"):
            if key in operation.responses:
                return key
        return None

    def _validator(
        self, operation: _Operation | None, key: str, schema: Mapping[str, Any]
    ) -> Draft202012Validator:
        cache_key = (
            ("", "", key) if operation is None else (operation.method, operation.template, key)
        )
        validator = self._validators.get(cache_key)
        if validator is None:
            root = {**closed(dict(schema)), "components": self.components}
            validator = Draft202012Validator(root)
            self._validators[cache_key] = validator
        return validator

    @staticmethod
    def _validate(where: str, validator: Draft202012Validator, body: bytes) -> list[str]:
        try:
            instance = json.loads(body)
        except ValueError:
            return [f"{where}: the body is not JSON: {body[:200]!r}"]
        return [
            f"{where}: {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
            for error in validator.iter_errors(instance)
        ]


@dataclass
class AnswerLog:
    """The documents of the nodes running now (by API port) and the problems found."""

    apis: dict[int, DocumentedApi] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)
    checked: int = 0

    def serve(self, node: Node) -> None:
        """Judge answers from ``node``'s API port from now on."""
        self.apis[node.api_port] = DocumentedApi(document_of(node))

    def forget(self, node: Node) -> None:
        """``node`` stopped: its port may be reused by anything."""
        self.apis.pop(node.api_port, None)

    def check(self, request: httpx.Request, response: httpx.Response) -> None:
        """Record what is wrong with ``response`` if it came from a registered node."""
        api = self.apis.get(request.url.port or 0)
        if api is None or request.url.host not in ("127.0.0.1", "localhost"):
            return
        try:
            body = response.content
        except httpx.ResponseNotRead:  # a streamed answer: the caller reads it
            return
        self.checked += 1
        content_type = response.headers.get("content-type", "")
        # As sent: an escaped path (``%2F``) must not be judged as the route it decodes to.
        path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        self.found += api.problems(request.method, path, response.status_code, content_type, body)

    def take(self) -> list[str]:
        """The problems found since the last call."""
        found, self.found = self.found, []
        return found


#: The one log of the test process (``running_node`` registers nodes in it).
ANSWERS = AnswerLog()

"""Declarative card documents: the versioned JSON schema of what a card shows.

A document is ``{"version": 1, "blocks": [...]}``: layout blocks (header, text in a Markdown
subset, fields, divider, image, context, progress, a list of people with their state) and
interactive elements (buttons with styles and confirm dialogs, single/multi select, date/time
pickers, text inputs, checkboxes) grouped into ``actions`` rows and ``form`` blocks. The
schema (:data:`DOCUMENT_SCHEMA`, JSON Schema draft 2020-12) is published in the OpenAPI
document as ``CardDocument``; :func:`check_document` validates a document on every write
(card creation, type registration, a callback's answer) with stable error codes:

* 413 ``too_large`` / ``document_too_large`` above :data:`MAX_DOCUMENT_BYTES`;
* 400 ``invalid`` / ``document_too_deep`` when nested deeper than :data:`MAX_DEPTH` (checked
  before the schema, without recursion);
* 400 ``invalid`` / ``bad_document`` for everything else, ``field`` naming the JSON path.

The shapes are documented in ``docs/cards.md`` ("Card documents").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import (  # type: ignore[import-untyped]
    ValidationError,
    best_match,
)

from magpie.cards.model import CardInvalid
from magpie.errors import PayloadTooLarge
from magpie.ext.patch import encode

__all__ = [
    "DOCUMENT_SCHEMA",
    "DOCUMENT_VERSION",
    "MAX_BLOCKS",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "check_document",
    "depth",
    "fill",
    "form_actions",
]

DOCUMENT_VERSION = 1
MAX_DOCUMENT_BYTES = 16 * 1024
MAX_DEPTH = 8
MAX_BLOCKS = 50

_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"}
_STATE = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"}


def _text(lo: int, hi: int) -> dict[str, Any]:
    return {"type": "string", "minLength": lo, "maxLength": hi}


def _obj(needed: list[str], **props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": needed,
        "additionalProperties": False,
        "properties": props,
    }


def _block(kind: str, needed: list[str], **props: Any) -> dict[str, Any]:
    return _obj(["type", *needed], type={"const": kind}, id=_NAME, **props)


_URL = {
    "type": "string",
    "maxLength": 1000,
    "pattern": r"^(https://[^\s]+|/file/[A-Za-z0-9._-]+)$",
}
_SIZE = {"type": "integer", "minimum": 1, "maximum": 4096}
_IMAGE_ELEMENT = _obj(["type", "url"], type={"const": "image"}, url=_URL, alt=_text(0, 200))
_CONFIRM = _obj(
    ["title"], title=_text(1, 100), text=_text(0, 300), confirm=_text(1, 30), deny=_text(1, 30)
)
_BUTTON = _obj(
    ["type", "action", "label"],
    type={"const": "button"},
    action=_NAME,
    label=_text(1, 75),
    style={"enum": ["primary", "secondary", "danger"]},
    value={"type": "object", "maxProperties": 20},
    confirm=_CONFIRM,
)
_OPTION_VALUE = _text(1, 100)
_SELECT = _obj(
    ["type", "name", "options"],
    type={"const": "select"},
    name=_NAME,
    label=_text(0, 100),
    options={
        "type": "array",
        "minItems": 1,
        "maxItems": 100,
        "items": _obj(["value", "label"], value=_OPTION_VALUE, label=_text(1, 100)),
    },
    multiple={"type": "boolean"},
    required={"type": "boolean"},
    initial={"anyOf": [_OPTION_VALUE, {"type": "array", "maxItems": 100, "items": _OPTION_VALUE}]},
    placeholder=_text(0, 100),
)
_DATE_VALUE = {
    "type": "string",
    "pattern": r"^(\d{4}-\d{2}-\d{2}|\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2})$",
}
_DATE = _obj(
    ["type", "name"],
    type={"const": "date"},
    name=_NAME,
    label=_text(0, 100),
    mode={"enum": ["date", "time", "datetime"]},
    required={"type": "boolean"},
    initial=_DATE_VALUE,
    min=_DATE_VALUE,
    max=_DATE_VALUE,
)
_LENGTH = {"type": "integer", "minimum": 0, "maximum": 2000}
_INPUT = _obj(
    ["type", "name"],
    type={"const": "input"},
    name=_NAME,
    label=_text(0, 100),
    multiline={"type": "boolean"},
    placeholder=_text(0, 100),
    min_length=_LENGTH,
    max_length=_LENGTH,
    required={"type": "boolean"},
    initial=_text(0, 2000),
)
_CHECKBOX = _obj(
    ["type", "name", "label"],
    type={"const": "checkbox"},
    name=_NAME,
    label=_text(1, 100),
    initial={"type": "boolean"},
)


def _dispatch(kinds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An object whose ``type`` picks its schema (clear errors, unlike ``oneOf``)."""
    return {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": sorted(kinds)}},
        "additionalProperties": True,  # each kind's own schema (below) closes it
        "allOf": [
            {
                "if": {"properties": {"type": {"const": kind}}, "additionalProperties": True},
                "then": schema,
            }
            for kind, schema in kinds.items()
        ],
    }


_MARKDOWN_NOTE = (
    "Markdown subset: **bold**, *italic*, ~~strike~~, `code`, [label](https://...), "
    "lines starting '- ' or '1. ', newlines; no HTML, images or headings"
)
_BLOCKS: dict[str, dict[str, Any]] = {
    "header": _block("header", ["text"], text=_text(1, 150)),
    "text": _block(
        "text",
        ["text"],
        text={**_text(1, 3000), "description": _MARKDOWN_NOTE},
        plain={"type": "boolean"},
    ),
    "fields": _block(
        "fields",
        ["fields"],
        fields={
            "type": "array",
            "minItems": 1,
            "maxItems": 10,
            "items": _obj(["label", "value"], label=_text(1, 50), value=_text(0, 500)),
        },
    ),
    "divider": _block("divider", []),
    "image": _block("image", ["url"], url=_URL, alt=_text(0, 200), width=_SIZE, height=_SIZE),
    "context": _block(
        "context",
        ["elements"],
        elements={
            "type": "array",
            "minItems": 1,
            "maxItems": 10,
            "items": _dispatch(
                {
                    "text": _obj(["type", "text"], type={"const": "text"}, text=_text(1, 300)),
                    "image": _IMAGE_ELEMENT,
                }
            ),
        },
    ),
    "progress": _block(
        "progress",
        ["value", "max"],
        label=_text(0, 100),
        value={"type": "number", "minimum": 0},
        value_from={
            "type": "string",
            "pattern": r"^(counts\.[a-z][a-z0-9_]{0,31}|state\.[A-Za-z0-9_]{1,64})$",
            "description": "registered types: the value is this count or state key now",
        },
        max={"type": "number", "exclusiveMinimum": 0},
        style={"enum": ["primary", "success", "warning", "danger"]},
    ),
    "people": {
        **_block(
            "people",
            [],
            label=_text(0, 100),
            people={
                "type": "array",
                "minItems": 1,
                "maxItems": 50,
                "items": _obj(["uid", "state"], uid=_text(1, 64), state=_STATE, note=_text(0, 200)),
            },
            people_from={
                "const": "listed",
                "description": "registered types: the card's listed users, each with the "
                "counted action they took, else pending",
            },
        ),
        "anyOf": [{"required": ["people"]}, {"required": ["people_from"]}],
    },
    "actions": _block(
        "actions",
        ["elements"],
        elements={"type": "array", "minItems": 1, "maxItems": 5, "items": _BUTTON},
    ),
    "form": _block(
        "form",
        ["id", "elements"],
        elements={
            "type": "array",
            "minItems": 1,
            "maxItems": 20,
            "items": _dispatch(
                {
                    "button": _BUTTON,
                    "select": _SELECT,
                    "date": _DATE,
                    "input": _INPUT,
                    "checkbox": _CHECKBOX,
                }
            ),
            "contains": {
                "properties": {"type": {"const": "button"}},
                "required": ["type"],
                "additionalProperties": True,
            },
        },
    ),
}

#: The JSON Schema of a card document (version 1), as published in the OpenAPI document.
DOCUMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "CardDocument",
    "description": (
        "What a card shows: layout blocks and interactive elements grouped into forms "
        "(docs/cards.md, 'Card documents'); at most 16 KiB, nesting depth 8, 50 blocks"
    ),
    "type": "object",
    "required": ["version", "blocks"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": DOCUMENT_VERSION},
        "blocks": {
            "type": "array",
            "maxItems": MAX_BLOCKS,
            "items": _dispatch(_BLOCKS),
        },
    },
}

_VALIDATOR = Draft202012Validator(DOCUMENT_SCHEMA)


def depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar: 0, ``[]`` or ``{}``: 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def _path(field: str, error: ValidationError) -> str:
    return "/".join([field, *(str(p) for p in error.absolute_path)])


def _message(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "the document"
    if error.validator == "contains":
        return f"{where}: a form needs at least one button"
    return f"{where}: {error.message}"[:300]


def _duplicates(doc: Mapping[str, Any], field: str) -> None:
    """Form ids unique in the document, input names unique in their form."""
    forms: set[str] = set()
    for i, block in enumerate(doc["blocks"]):
        if block.get("type") != "form":
            continue
        if block["id"] in forms:
            raise CardInvalid(
                f"blocks/{i}: form id {block['id']!r} is used twice",
                field=f"{field}/blocks/{i}/id",
                reason="bad_document",
            )
        forms.add(block["id"])
        names: set[str] = set()
        for j, element in enumerate(block["elements"]):
            name = element.get("name")
            if name is None:
                continue
            if name in names:
                raise CardInvalid(
                    f"blocks/{i}/elements/{j}: input name {name!r} is used twice in its form",
                    field=f"{field}/blocks/{i}/elements/{j}/name",
                    reason="bad_document",
                )
            names.add(name)


def check_document(doc: Any, field: str = "doc") -> dict[str, Any]:
    """``doc`` if it is a valid card document, else the API error (see the module
    docstring); ``field`` prefixes the JSON path an error names."""
    if depth(doc) > MAX_DEPTH:
        raise CardInvalid(
            f"the document nests deeper than {MAX_DEPTH} levels",
            field=field,
            reason="document_too_deep",
        )
    try:
        size = len(encode(doc).encode())
    except (TypeError, ValueError):
        raise CardInvalid("the document must be JSON", field=field, reason="bad_document") from None
    if size > MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(
            f"the document is {size} bytes (limit {MAX_DOCUMENT_BYTES})",
            field=field,
            reason="document_too_large",
        )
    error = best_match(_VALIDATOR.iter_errors(doc))
    if error is not None:
        raise CardInvalid(_message(error), field=_path(field, error), reason="bad_document")
    _duplicates(doc, field)
    return dict(doc)


def form_actions(doc: Mapping[str, Any] | None) -> set[str]:
    """The actions the document's buttons name (a valid document)."""
    if not doc:
        return set()
    out: set[str] = set()
    for block in doc.get("blocks", ()):
        for element in block.get("elements", ()):
            if element.get("type") == "button":
                out.add(element["action"])
    return out


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]{1,80})\s*\}\}")


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    head, _, key = path.partition(".")
    found = values.get(head)
    if key:
        found = found.get(key) if isinstance(found, Mapping) else None
    if found is None and head == "counts":
        return 0  # nobody took the action yet
    return found


def _text_of(value: Any) -> str:
    if value is None or isinstance(value, Mapping | list):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value if isinstance(value, str) else str(value)


def fill(doc: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with its placeholders filled from ``values`` (``{"status": ..., "state":
    {...}, "counts": {...}, "title": ...}``): ``{{status}}``, ``{{state.<key>}}``,
    ``{{counts.<action>}}`` (0 when nobody took it), ``{{title}}`` in any string (unknown
    ones and whole objects become empty), a people block's ``people_from`` becomes
    ``values["people"]`` (the block is left out when nobody is in it), and a progress
    block's ``value_from`` becomes its ``value`` (a number, else 0)."""

    def text(s: str) -> str:
        if "{{" not in s:
            return s
        return _PLACEHOLDER.sub(lambda m: _text_of(_lookup(values, m.group(1))), s)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return text(item)
        if isinstance(item, list):
            return [walk(x) for x in item]
        if not isinstance(item, Mapping):
            return item
        out = {k: walk(v) for k, v in item.items() if k not in ("value_from", "people_from")}
        if item.get("type") == "progress" and "value_from" in item:
            found = _lookup(values, str(item["value_from"]))
            number = isinstance(found, int | float) and not isinstance(found, bool)
            out["value"] = max(found, 0) if number else 0
        if item.get("type") == "people" and "people_from" in item:
            out["people"] = [dict(p) for p in values.get("people", ())]
        return out

    filled: dict[str, Any] = walk(doc)
    # a people block with nobody in it is left out (the schema wants at least one person)
    blocks = filled.get("blocks", [])
    filled["blocks"] = [b for b in blocks if b.get("type") != "people" or b.get("people")]
    return filled

"""Card documents: every block and element accepted, bad ones refused with a stable reason
and the JSON path, limits (size, depth, blocks) answered before the schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from magpie.cards.document import (
    DOCUMENT_SCHEMA,
    MAX_BLOCKS,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    check_document,
    depth,
    fill,
    form_actions,
)
from magpie.errors import ApiError


def full() -> dict[str, Any]:
    """A document with every block and element type."""
    return {
        "version": 1,
        "blocks": [
            {"type": "header", "text": "Leave request", "id": "top"},
            {"type": "text", "text": "**Alice** asks for *3 days*"},
            {"type": "text", "text": "as is", "plain": True},
            {"type": "fields", "fields": [{"label": "From", "value": "2026-12-10"}]},
            {"type": "divider"},
            {"type": "image", "url": "https://example.com/a.png", "alt": "a", "width": 40},
            {
                "type": "context",
                "elements": [
                    {"type": "text", "text": "by alice"},
                    {"type": "image", "url": "/file/f1"},
                ],
            },
            {"type": "progress", "label": "approvals", "value": 1, "max": 3, "style": "success"},
            {
                "type": "people",
                "label": "Approvers",
                "people": [{"uid": "bob", "state": "pending", "note": "x"}],
            },
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "action": "approve", "label": "Approve", "style": "primary"},
                    {
                        "type": "button",
                        "action": "reject",
                        "label": "Reject",
                        "style": "danger",
                        "value": {"why": "no"},
                        "confirm": {
                            "title": "Reject?",
                            "text": "sure",
                            "confirm": "Yes",
                            "deny": "No",
                        },
                    },
                ],
            },
            {
                "type": "form",
                "id": "request",
                "elements": [
                    {
                        "type": "select",
                        "name": "kind",
                        "label": "Kind",
                        "options": [{"value": "annual", "label": "Annual"}],
                    },
                    {
                        "type": "select",
                        "name": "tags",
                        "options": [{"value": "a", "label": "A"}],
                        "multiple": True,
                        "initial": ["a"],
                    },
                    {
                        "type": "date",
                        "name": "start",
                        "label": "From",
                        "mode": "date",
                        "required": True,
                        "min": "2026-01-01",
                    },
                    {"type": "date", "name": "at", "mode": "time", "initial": "14:30"},
                    {
                        "type": "date",
                        "name": "when",
                        "mode": "datetime",
                        "initial": "2026-12-10T14:30",
                    },
                    {
                        "type": "input",
                        "name": "reason",
                        "label": "Reason",
                        "multiline": True,
                        "max_length": 500,
                    },
                    {"type": "checkbox", "name": "urgent", "label": "Urgent", "initial": False},
                    {"type": "button", "action": "submit", "label": "Request"},
                ],
            },
        ],
    }


def refused(doc: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        check_document(doc, "card.doc")
    return caught.value


def test_every_block_and_element_is_accepted() -> None:
    doc = full()
    assert check_document(doc) == doc
    assert form_actions(doc) == {"approve", "reject", "submit"}
    Draft202012Validator.check_schema(DOCUMENT_SCHEMA)


BAD: list[tuple[str, Any, str]] = [
    ("empty header", lambda d: d["blocks"][0].update(text=""), "card.doc/blocks/0/text"),
    ("unknown key", lambda d: d["blocks"][0].update(colour="red"), "card.doc/blocks/0"),
    ("unknown block", lambda d: d["blocks"].append({"type": "video"}), "card.doc/blocks/11/type"),
    (
        "bad style",
        lambda d: d["blocks"][9]["elements"][0].update(style="pink"),
        "card.doc/blocks/9/elements/0/style",
    ),
    (
        "bad name",
        lambda d: d["blocks"][10]["elements"][0].update(name="Kind"),
        "card.doc/blocks/10/elements/0/name",
    ),
    (
        "bad date",
        lambda d: d["blocks"][10]["elements"][2].update(initial="10/12/2026"),
        "card.doc/blocks/10/elements/2/initial",
    ),
    (
        "script url",
        lambda d: d["blocks"][5].update(url="javascript:alert(1)"),
        "card.doc/blocks/5/url",
    ),
    (
        "http url",
        lambda d: d["blocks"][5].update(url="http://example.com/a.png"),
        "card.doc/blocks/5/url",
    ),
    (
        "form without button",
        lambda d: d["blocks"][10]["elements"].pop(),
        "card.doc/blocks/10/elements",
    ),
    (
        "input outside a form",
        lambda d: d["blocks"][9]["elements"].append({"type": "input", "name": "x"}),
        "card.doc/blocks/9/elements/2",
    ),
    (
        "six buttons",
        lambda d: d["blocks"][9]["elements"].extend([d["blocks"][9]["elements"][0]] * 4),
        "card.doc/blocks/9/elements",
    ),
    (
        "duplicate input",
        lambda d: d["blocks"][10]["elements"][1].update(name="kind"),
        "card.doc/blocks/10/elements/1/name",
    ),
    (
        "duplicate form",
        lambda d: d["blocks"].append(copy.deepcopy(d["blocks"][10])),
        "card.doc/blocks/11/id",
    ),
    (
        "person state",
        lambda d: d["blocks"][8]["people"][0].update(state="Nope!"),
        "card.doc/blocks/8/people/0/state",
    ),
    ("nobody", lambda d: d["blocks"][8].pop("people"), "card.doc/blocks/8"),
    (
        "people from",
        lambda d: d["blocks"][8].update(people_from="all"),
        "card.doc/blocks/8/people_from",
    ),
    ("progress max 0", lambda d: d["blocks"][7].update(max=0), "card.doc/blocks/7/max"),
    ("version 2", lambda d: d.update(version=2), "card.doc/version"),
    ("no blocks", lambda d: d.pop("blocks"), "card.doc"),
]


@pytest.mark.parametrize(("what", "mutate", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_documents_name_the_path(what: str, mutate: Any, field: str) -> None:
    doc = full()
    mutate(doc)
    error = refused(doc)
    assert (error.status, error.code, error.detail["reason"]) == (400, "invalid", "bad_document")
    assert error.field == field, what
    assert error.message


def test_not_an_object() -> None:
    assert refused([1, 2]).detail["reason"] == "bad_document"
    assert (
        refused({"version": 1, "blocks": [{"type": "divider"}], "x": {1, 2}}).detail["reason"]
        == "bad_document"
    )


def test_size_limit_is_413() -> None:
    doc = {"version": 1, "blocks": [{"type": "text", "text": "x" * 3000}] * 6}
    assert len(str(doc)) > MAX_DOCUMENT_BYTES
    error = refused(doc)
    assert (error.status, error.code, error.detail["reason"]) == (
        413,
        "too_large",
        "document_too_large",
    )
    under = {"version": 1, "blocks": [{"type": "text", "text": "x" * 3000}] * 5}
    check_document(under)


def test_block_count_limit() -> None:
    check_document({"version": 1, "blocks": [{"type": "divider"}] * MAX_BLOCKS})
    error = refused({"version": 1, "blocks": [{"type": "divider"}] * (MAX_BLOCKS + 1)})
    assert (error.status, error.detail["reason"], error.field) == (
        400,
        "bad_document",
        "card.doc/blocks",
    )


def test_depth_limit_before_the_schema() -> None:
    nested: Any = {}
    for _ in range(10_000):  # far deeper than Python's recursion limit
        nested = {"a": nested}
    doc = {
        "version": 1,
        "blocks": [
            {
                "type": "actions",
                "elements": [{"type": "button", "action": "a", "label": "A", "value": nested}],
            }
        ],
    }
    error = refused(doc)
    assert (error.status, error.detail["reason"]) == (400, "document_too_deep")
    assert depth(full()) <= MAX_DEPTH
    assert depth(1) == 0 and depth([]) == 1 and depth({"a": [1]}) == 2


def test_fill_placeholders() -> None:
    doc = {
        "version": 1,
        "blocks": [
            {"type": "text", "text": "{{ status }}: {{state.n}} {{state.flag}} {{counts.go}}"},
            {"type": "progress", "value": 0, "max": 3, "value_from": "counts.go"},
            {"type": "progress", "value": 2, "max": 3, "value_from": "state.label"},
            {"type": "fields", "fields": [{"label": "{{title}}", "value": "{{nope}}{{state}}"}]},
        ],
    }
    check_document(doc)
    values = {"status": "open", "state": {"n": 3, "flag": True, "label": "x"}, "counts": {"go": 2}}
    filled = fill(doc, {**values, "title": "T"})
    assert filled["blocks"][0]["text"] == "open: 3 yes 2"
    assert filled["blocks"][1] == {"type": "progress", "value": 2, "max": 3}
    assert filled["blocks"][2] == {"type": "progress", "value": 0, "max": 3}
    assert filled["blocks"][3]["fields"][0] == {"label": "T", "value": ""}
    assert doc["blocks"][1]["value_from"] == "counts.go", "the original is left alone"

"""``magpie.client.cardtext``: a card projection as text with numbered actions (unit)."""

from __future__ import annotations

from typing import Any

from magpie.cards.document import check_document
from magpie.client.cardtext import render

#: A document with every block type and every element type (checked by the server's schema).
DOC: dict[str, Any] = {
    "version": 1,
    "blocks": [
        {"type": "header", "text": "Leave request"},
        {"type": "text", "text": "**Alice** asks for leave.\n- reason below"},
        {"type": "fields", "fields": [{"label": "From", "value": "2026-12-10"}]},
        {"type": "divider"},
        {"type": "image", "url": "https://example.org/a.png", "alt": "calendar"},
        {"type": "context", "elements": [{"type": "text", "text": "sent by alice"}]},
        {"type": "progress", "label": "approvals", "value": 1, "max": 2},
        {"type": "people", "label": "Managers", "people": [{"uid": "bob", "state": "pending"}]},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action": "withdraw",
                    "label": "Withdraw",
                    "style": "danger",
                    "confirm": {"title": "Withdraw?", "text": "This cannot be undone."},
                }
            ],
        },
        {
            "type": "form",
            "id": "decide",
            "elements": [
                {
                    "type": "select",
                    "name": "kind",
                    "label": "Kind",
                    "options": [
                        {"value": "paid", "label": "Paid"},
                        {"value": "unpaid", "label": "Unpaid"},
                    ],
                    "required": True,
                },
                {"type": "date", "name": "until", "label": "Until", "mode": "date"},
                {"type": "input", "name": "reason", "label": "Reason", "multiline": True},
                {"type": "checkbox", "name": "urgent", "label": "Urgent"},
                {
                    "type": "button",
                    "action": "approve",
                    "label": "Approve",
                    "value": {"decision": "yes"},
                },
            ],
        },
    ],
}


def _projection(**more: Any) -> dict[str, Any]:
    return {
        "type": "leave",
        "type_tag": "leave@1",
        "title": "Leave",
        "status": "pending",
        "version": 3,
        "actions": [{"action": "approve", "label": "Approve", "style": "primary"}],
        "unavailable": {"withdraw": "only the creator may withdraw"},
        "unavailable_reason": "",
        "outcome": "",
        "document": DOC,
        **more,
    }


def test_the_document_is_one_the_server_accepts() -> None:
    assert check_document(DOC) == DOC


def test_every_block_and_element_becomes_text_with_numbered_buttons() -> None:
    shown = render(_projection())
    text = shown.text()
    assert shown.lines[0] == "Leave [leave@1] — pending (v3)"
    for part in (
        "== Leave request ==",
        "**Alice** asks for leave.",
        "From: 2026-12-10",
        "-" * 20,
        "[image: calendar] https://example.org/a.png",
        "sent by alice",
        "approvals [##########..........] 1/2",
        "Managers: bob (pending)",
    ):
        assert part in text, part
    withdraw, approve = shown.actions
    assert (withdraw.number, withdraw.action, withdraw.enabled) == (1, "withdraw", False)
    assert withdraw.reason == "only the creator may withdraw"
    assert withdraw.confirm == "Withdraw? This cannot be undone."
    assert (approve.number, approve.action, approve.enabled) == (2, "approve", True)
    assert dict(approve.params) == {"decision": "yes"}
    assert dict(approve.inputs) == {
        "kind": "Kind: one of paid|unpaid required",
        "until": "Until: date",
        "reason": "Reason: text",
        "urgent": "Urgent: true|false",
    }
    assert "[1] Withdraw — asks: Withdraw? This cannot be undone. (unavailable: only" in text
    assert "[2] Approve — fill in: kind (Kind: one of paid|unpaid required)" in text
    assert shown.action(3) is None


def test_a_built_in_vote_shows_tallies_and_its_actions() -> None:
    projection = {
        "type": "vote",
        "type_tag": "vote@1",
        "title": "Lunch",
        "status": "open",
        "version": 4,
        "actions": [{"action": "vote", "label": "Vote"}],
        "unavailable": {"close": "only the creator or an admin may close"},
        "state": {
            "options": ["pizza", "sushi"],
            "tallies": [2, 1],
            "voters": 3,
            "results_visible": True,
        },
        "my_vote": [0],
        "document": None,
    }
    shown = render(projection)
    assert "  0) pizza [##########] 2" in shown.lines
    assert "  1) sushi [#####.....] 1" in shown.lines
    assert "voters: 3" in shown.lines and "your vote: 0" in shown.lines
    assert [(a.number, a.action, a.enabled) for a in shown.actions] == [
        (1, "vote", True),
        (2, "close", False),
    ]
    assert dict(shown.actions[0].inputs) == {"options": "option indices, e.g. [0]"}


def test_a_card_nobody_can_act_on_says_why() -> None:
    shown = render(
        _projection(
            actions=[], unavailable={}, unavailable_reason="the card is approved", document=None
        )
    )
    assert shown.actions == [] and shown.lines[-1] == "(you cannot act: the card is approved)"

"""A card as readable text with numbered actions (``magpie chat``'s ``/card`` and ``/do``).

:func:`render` turns a card *projection* (``GET /cards/{id}``, an action's answer;
``docs/cards.md`` section 4) into lines of text and a numbered list of the actions the
viewer may see. A card with a ``document`` (a registered type) is drawn from its blocks
(header, text, fields, divider, image, context, progress, people, actions, form: the shapes of
``docs/cards.md``); a built-in card (approval, survey, task, vote) from its ``state``. Every
button of the document, then every other action of the projection, gets a number; a button
names the inputs of its form, so ``/do <id> <n> {"reason": "..."}`` fills them in. Pure
functions over JSON: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NumberedAction", "RenderedCard", "render"]

#: Most list entries (voters, people, answers) shown per line.
_MAX_LISTED = 10


@dataclass(frozen=True, slots=True)
class NumberedAction:
    """One action the text shows as ``[n] label``: the action, the parameters the button
    carries (``value``), the names of the inputs of its form (``name -> description``),
    whether the viewer may take it now and why not."""

    number: int
    action: str
    label: str
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    reason: str = ""
    confirm: str = ""


@dataclass(frozen=True, slots=True)
class RenderedCard:
    """The lines of a card and its numbered actions."""

    lines: list[str]
    actions: list[NumberedAction]

    def action(self, number: int) -> NumberedAction | None:
        """The action numbered ``number``, if any."""
        return next((a for a in self.actions if a.number == number), None)

    def text(self) -> str:
        """The lines joined."""
        return "\n".join(self.lines)


def _s(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return f"{shown} (+{more} more)" if more > 0 else shown or "-"


def _bar(value: float, top: float, width: int = 20) -> str:
    filled = 0 if top <= 0 else round(width * min(max(value / top, 0.0), 1.0))
    return "#" * filled + "." * (width - filled)


class _Builder:
    def __init__(self, projection: Mapping[str, Any]) -> None:
        self.p = projection
        self.lines: list[str] = []
        self.actions: list[NumberedAction] = []
        raw = projection.get("actions")
        self.available = {
            _s(a.get("action"))
            for a in (raw if isinstance(raw, list) else [])
            if isinstance(a, dict)
        }
        unavailable = projection.get("unavailable")
        self.unavailable: Mapping[str, Any] = unavailable if isinstance(unavailable, dict) else {}

    def add_action(
        self,
        action: str,
        label: str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, str] | None = None,
        confirm: str = "",
    ) -> NumberedAction:
        enabled = action in self.available
        reason = "" if enabled else _s(self.unavailable.get(action)) or "not available"
        entry = NumberedAction(
            len(self.actions) + 1,
            action,
            label or action,
            dict(params or {}),
            dict(inputs or {}),
            enabled,
            reason,
            confirm,
        )
        self.actions.append(entry)
        return entry

    def action_line(self, a: NumberedAction, indent: str = "  ") -> str:
        line = f"{indent}[{a.number}] {a.label}"
        if a.inputs:
            line += " — fill in: " + ", ".join(f"{k} ({v})" for k, v in a.inputs.items())
        if a.confirm:
            line += f" — asks: {a.confirm}"
        if not a.enabled:
            line += f" (unavailable: {a.reason})"
        return line


def _input_text(element: Mapping[str, Any]) -> str:
    kind = _s(element.get("type"))
    parts = [kind]
    if kind == "select":
        options = element.get("options") or []
        values = [_s(o.get("value")) for o in options if isinstance(o, dict)]
        parts = ["one or more of" if element.get("multiple") else "one of", "|".join(values)]
    elif kind == "date":
        parts = [_s(element.get("mode")) or "date"]
    elif kind == "input":
        parts = ["text"]
    elif kind == "checkbox":
        parts = ["true|false"]
    if element.get("required"):
        parts.append("required")
    label = _s(element.get("label"))
    return f"{label}: {' '.join(parts)}" if label else " ".join(parts)


def _button(b: _Builder, element: Mapping[str, Any], inputs: Mapping[str, str]) -> None:
    confirm = element.get("confirm")
    question = ""
    if isinstance(confirm, dict):
        question = " ".join(x for x in (_s(confirm.get("title")), _s(confirm.get("text"))) if x)
    value = element.get("value")
    entry = b.add_action(
        _s(element.get("action")),
        _s(element.get("label")),
        value if isinstance(value, dict) else None,
        inputs,
        question,
    )
    b.lines.append(b.action_line(entry))


def _block(b: _Builder, block: Mapping[str, Any]) -> None:
    kind = _s(block.get("type"))
    if kind == "header":
        b.lines.append(f"== {_s(block.get('text'))} ==")
    elif kind == "text":
        b.lines.extend(_s(block.get("text")).splitlines() or [""])
    elif kind == "fields":
        for f in block.get("fields") or []:
            b.lines.append(f"{_s(f.get('label'))}: {_s(f.get('value'))}")
    elif kind == "divider":
        b.lines.append("-" * 20)
    elif kind == "image":
        b.lines.append(f"[image: {_s(block.get('alt')) or 'image'}] {_s(block.get('url'))}")
    elif kind == "context":
        parts = [
            _s(e.get("text")) if e.get("type") == "text" else f"[{_s(e.get('alt')) or 'image'}]"
            for e in block.get("elements") or []
        ]
        b.lines.append(" · ".join(parts))
    elif kind == "progress":
        value, top = float(block.get("value") or 0), float(block.get("max") or 1)
        label = _s(block.get("label"))
        b.lines.append(f"{label + ' ' if label else ''}[{_bar(value, top)}] {value:g}/{top:g}")
    elif kind == "people":
        people = [f"{_s(x.get('uid'))} ({_s(x.get('state'))})" for x in block.get("people") or []]
        label = _s(block.get("label"))
        b.lines.append(f"{label + ': ' if label else ''}{_listed(people)}")
    elif kind == "actions":
        for element in block.get("elements") or []:
            _button(b, element, {})
    elif kind == "form":
        elements = [e for e in block.get("elements") or [] if isinstance(e, dict)]
        inputs = {_s(e.get("name")): _input_text(e) for e in elements if e.get("type") != "button"}
        for element in elements:
            if element.get("type") == "button":
                _button(b, element, inputs)


def _approval(b: _Builder, state: Mapping[str, Any]) -> None:
    b.lines.append(f"approvers ({_s(state.get('mode'))}): {_listed(state.get('approvers') or [])}")
    for d in state.get("decisions") or []:
        comment = f": {_s(d.get('comment'))}" if d.get("comment") else ""
        b.lines.append(f"  {_s(d.get('uid'))} {_s(d.get('decision'))}d{comment}")
    waiting = state.get("waiting_for") or []
    if waiting:
        b.lines.append(f"waiting for: {_listed(waiting)}")


def _vote(b: _Builder, state: Mapping[str, Any]) -> None:
    tallies = state.get("tallies")
    top = max(tallies or [0]) or 1
    for i, option in enumerate(state.get("options") or []):
        count = "" if tallies is None else f" [{_bar(tallies[i], top, 10)}] {tallies[i]}"
        b.lines.append(f"  {i}) {_s(option)}{count}")
    hidden = "" if state.get("results_visible") else " (results hidden until closed)"
    b.lines.append(f"voters: {state.get('voters', 0)}{hidden}")
    mine = b.p.get("my_vote")
    if mine is not None:
        b.lines.append(f"your vote: {', '.join(str(i) for i in mine)}")


def _survey(b: _Builder, state: Mapping[str, Any]) -> None:
    for q in state.get("questions") or []:
        choices = q.get("options")
        hint = f" (0-{len(choices) - 1}: {' | '.join(choices)})" if choices else " (text)"
        b.lines.append(f"  {_s(q.get('id'))}. {_s(q.get('prompt'))}{hint}")
    b.lines.append(f"respondents: {state.get('respondents', 0)}")
    mine = b.p.get("my_response")
    if isinstance(mine, dict):
        b.lines.append(f"your answers: {mine.get('answers')}")


def _task(b: _Builder, state: Mapping[str, Any]) -> None:
    b.lines.append(f"assignees: {_listed(state.get('assignees') or [])}")
    if state.get("accepted"):
        b.lines.append(f"accepted: {_listed(state.get('accepted') or [])}")
    if state.get("overdue"):
        b.lines.append("overdue")
    if state.get("blocked_reason"):
        b.lines.append(f"blocked: {_s(state.get('blocked_reason'))}")


#: How the built-in actions take their parameters (shown beside the action).
_PARAMS = {
    "vote": {"options": "option indices, e.g. [0]"},
    "respond": {"answers": 'question id -> answer, e.g. {"q1": 0}'},
    "approve": {"comment": "optional"},
    "reject": {"comment": "optional"},
    "block": {"reason": "optional"},
    "reassign": {"assignees": "uids"},
}
_BUILT_IN = {"approval": _approval, "vote": _vote, "survey": _survey, "task": _task}


def render(projection: Mapping[str, Any]) -> RenderedCard:
    """The card as text lines and its numbered actions."""
    b = _Builder(projection)
    status = _s(projection.get("status"))
    version = projection.get("version")
    b.lines.append(
        f"{_s(projection.get('title')) or 'Card'} [{_s(projection.get('type_tag')) or 'card'}] "
        f"— {status or '?'} (v{version})"
    )
    if projection.get("description"):
        b.lines.append(_s(projection.get("description")))
    document = projection.get("document")
    state = projection.get("state")
    if isinstance(document, dict):
        for block in document.get("blocks") or []:
            if isinstance(block, dict):
                _block(b, block)
    elif isinstance(state, dict) and _s(projection.get("type")) in _BUILT_IN:
        _BUILT_IN[_s(projection.get("type"))](b, state)
    if projection.get("outcome"):
        b.lines.append(_s(projection.get("outcome")))
    shown = {a.action for a in b.actions}
    rest: list[NumberedAction] = []
    for raw in projection.get("actions") or []:
        name = _s(raw.get("action")) if isinstance(raw, dict) else ""
        if name and name not in shown:
            rest.append(b.add_action(name, _s(raw.get("label")), None, _PARAMS.get(name)))
            shown.add(name)
    for name in b.unavailable:
        if name not in shown:
            rest.append(b.add_action(name, name.capitalize(), None, _PARAMS.get(name)))
            shown.add(name)
    if rest:
        b.lines.append("actions:")
        b.lines.extend(b.action_line(a) for a in rest)
    if not b.actions or not any(a.enabled for a in b.actions):
        reason = _s(projection.get("unavailable_reason"))
        if reason:
            b.lines.append(f"(you cannot act: {reason})")
    return RenderedCard(b.lines, b.actions)

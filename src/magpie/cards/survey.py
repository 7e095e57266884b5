"""``survey@1``: members answer questions; the creator sees the aggregated results.

Statuses: ``open`` → ``closed`` (terminal), closed by the creator, an admin or the deadline.

Definition: ``questions`` (1–20), each ``{id?, kind: single|multiple|text, prompt,
options? (choice kinds, 2–20), required? (default true), max_length? (text, default 500)}``;
``final`` (default false: a response may be edited until the survey closes; true: the first
response is final); ``closes_at`` (unix ms, optional).

Action ``respond`` takes ``{"answers": {question id: answer}}``: an option index for
``single``, a list of indices for ``multiple``, a string for ``text``.

State ``data``: ``responses`` — ``[uid, answers, at_ms]`` with the answers as a list aligned
with the questions (``[i]`` / ``[i, j]`` / ``"text"``; lists keep the extension's key budget
for real data) — and ``respondents``. Answers are never logged and only the creator and
admins see results; every member sees the number of respondents and their own response.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from magpie.cards import fields
from magpie.cards.cardtype import CardType, Deadline
from magpie.cards.machine import ActionInfo, Machine, ParamError, Transition
from magpie.cards.model import Act, CardState, Common, Definition, Refusal, Role, Step, Viewer
from magpie.domain.ext import Result

__all__ = ["SURVEY", "Question", "SurveyDef", "SurveyType"]

OPEN, CLOSED = "open", "closed"
KINDS = ("single", "multiple", "text")
#: Questions per survey, options per question, and text bounds.
MAX_QUESTIONS = 20
MIN_CHOICES, MAX_CHOICES = 2, 20
MAX_PROMPT = 500
DEFAULT_TEXT_LENGTH, MAX_TEXT_LENGTH = 500, 2000
_QUESTION_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")  # whole value: fullmatch


@dataclass(frozen=True, slots=True)
class Question:
    """One survey question."""

    id: str
    kind: str
    prompt: str
    options: tuple[str, ...]
    required: bool
    max_length: int

    def to_json(self) -> dict[str, Any]:
        """As in the payload."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "prompt": self.prompt,
            "required": self.required,
        }
        if self.kind == "text":
            out["max_length"] = self.max_length
        else:
            out["options"] = list(self.options)
        return out


@dataclass(frozen=True, slots=True)
class SurveyDef(Definition):
    """A survey's definition."""

    questions: tuple[Question, ...]
    final: bool
    closes_at: int


def _question(raw: object, n: int) -> Question:
    where = f"questions[{n}]"
    if not isinstance(raw, Mapping):
        raise ParamError(f"{where} must be an object")
    qid = raw.get("id") or f"q{n + 1}"
    if not isinstance(qid, str) or not _QUESTION_ID.fullmatch(qid):
        raise ParamError(f"{where}.id must be 1–32 letters, digits, '_' or '-'")
    kind = fields.choice(raw, "kind", KINDS, "single")
    prompt = fields.text(raw, "prompt", MAX_PROMPT, required=True)
    options: tuple[str, ...] = ()
    if kind != "text":
        value = raw.get("options")
        if not isinstance(value, list) or not MIN_CHOICES <= len(value) <= MAX_CHOICES:
            raise ParamError(f"{where}.options must list {MIN_CHOICES} to {MAX_CHOICES} labels")
        options = tuple(fields.text({"o": v}, "o", MAX_PROMPT, required=True) for v in value)
    limit = fields.integer(raw, "max_length", 1, MAX_TEXT_LENGTH, DEFAULT_TEXT_LENGTH)
    return Question(qid, kind, prompt, options, fields.boolean(raw, "required", True), limit)


def _questions(raw: Mapping[str, Any]) -> tuple[Question, ...]:
    value = raw.get("questions")
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_QUESTIONS:
        raise ParamError(f"questions must list 1 to {MAX_QUESTIONS} questions")
    out = tuple(_question(q, n) for n, q in enumerate(value))
    if len({q.id for q in out}) != len(out):
        raise ParamError("question ids must be distinct")
    return out


def _choices(q: Question, value: object) -> list[int]:
    picked = [value] if q.kind == "single" and not isinstance(value, list) else value
    if not isinstance(picked, list):
        raise ParamError(f"answer to {q.id} must be a list of option indices")
    ok = all(isinstance(i, int) and not isinstance(i, bool) for i in picked)
    if not ok or len(set(picked)) != len(picked):
        raise ParamError(f"answer to {q.id} must be distinct option indices")
    if any(not 0 <= i < len(q.options) for i in picked):
        raise ParamError(f"answer to {q.id} must be indices from 0 to {len(q.options) - 1}")
    if q.kind == "single" and len(picked) > 1:
        raise ParamError(f"question {q.id} takes one option")
    return sorted(picked)


def _answer(q: Question, value: object) -> list[int] | str:
    answer: list[int] | str
    if q.kind == "text":
        answer = fields.text({q.id: value}, q.id, q.max_length)
        empty = not answer.strip()
    else:
        answer = [] if value is None else _choices(q, value)
        empty = not answer
    if empty and q.required:
        raise ParamError(f"question {q.id} needs an answer")
    return answer


def _answers(d: SurveyDef, raw: Mapping[str, Any]) -> list[list[int] | str]:
    """``{"answers": {id: answer}}`` as a list aligned with the questions."""
    given = raw.get("answers")
    if not isinstance(given, Mapping):
        raise ParamError("answers must be an object: question id -> answer")
    unknown = set(given) - {q.id for q in d.questions}
    if unknown:
        raise ParamError(f"unknown question(s): {', '.join(sorted(map(str, unknown)))}")
    return [_answer(q, given.get(q.id)) for q in d.questions]


def _mine(data: Mapping[str, Any], uid: str) -> list[Any] | None:
    return next((list(r) for r in data.get("responses", []) if r[0] == uid), None)


def _respond(act: Act[SurveyDef]) -> Step:
    responses = list(act.data["responses"])
    entry = [act.uid, act.params, act.now]
    n = next((n for n, r in enumerate(responses) if r[0] == act.uid), None)
    if n is None:
        responses.append(entry)
    else:
        responses[n] = entry
    return Step(OPEN, {"responses": responses, "respondents": len(responses)})


def _close(act: Act[SurveyDef]) -> Step:
    return Step(CLOSED, act.data)


def _may_respond(act: Act[SurveyDef]) -> Refusal | None:
    if not act.definition.final or _mine(act.data, act.uid) is None:
        return None
    return Refusal(Result.CONFLICT, "already_responded", "your response is final")


MACHINE = Machine(
    initial=OPEN,
    terminal=frozenset({CLOSED}),
    actions={
        "respond": ActionInfo("Respond", "primary"),
        "close": ActionInfo("Close", "danger"),
    },
    table={
        (OPEN, "respond"): Transition(
            frozenset({Role.MEMBER}), frozenset({OPEN}), _respond, _answers, (_may_respond,)
        ),
        (OPEN, "close"): Transition(
            frozenset({Role.CREATOR, Role.ADMIN, Role.SYSTEM}), frozenset({CLOSED}), _close
        ),
    },
)


def _aggregate(d: SurveyDef, responses: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, q in enumerate(d.questions):
        answers = [(r[0], r[1][n]) for r in responses]
        if q.kind == "text":
            texts = [{"uid": uid, "text": a} for uid, a in answers if a]
            out.append({"id": q.id, "kind": q.kind, "answers": texts})
        else:
            counts = [0] * len(q.options)
            for _, picked in answers:
                for i in picked:
                    counts[i] += 1
            out.append({"id": q.id, "kind": q.kind, "counts": counts})
    return out


def _response_json(d: SurveyDef, entry: list[Any]) -> dict[str, Any]:
    answers = {q.id: a for q, a in zip(d.questions, entry[1], strict=True)}
    return {"answers": answers, "at": entry[2]}


class SurveyType(CardType[SurveyDef]):
    """The ``survey@1`` card type."""

    name = "survey"
    schema_version = 1
    machine = MACHINE

    def _parse(self, raw: Mapping[str, Any], common: Common, now: int | None) -> SurveyDef:
        return SurveyDef(
            common,
            _questions(raw),
            fields.boolean(raw, "final", False),
            fields.deadline(raw, "closes_at", now),
        )

    def to_json(self, d: SurveyDef) -> dict[str, Any]:
        """The questions and the rules."""
        return {
            "questions": [q.to_json() for q in d.questions],
            "final": d.final,
            "closes_at": d.closes_at,
        }

    def initial(self, d: SurveyDef) -> dict[str, Any]:
        """No responses."""
        return {"responses": [], "respondents": 0}

    def deadline(self, d: SurveyDef) -> Deadline | None:
        """``close`` at ``closes_at``."""
        return ("close", d.closes_at) if d.closes_at else None

    def view(self, d: SurveyDef, card: CardState, viewer: Viewer) -> dict[str, Any]:
        """The number of respondents; results for the creator and admins; ``my_response``."""
        responses = list(card.data.get("responses", []))
        owner = bool(viewer.roles & {Role.CREATOR, Role.ADMIN})
        mine = _mine(card.data, viewer.uid)
        state = {
            **self.to_json(d),
            "respondents": int(card.data.get("respondents", 0)),
            "results": _aggregate(d, responses) if owner else None,
        }
        return {"state": state, "my_response": None if mine is None else _response_json(d, mine)}

    def outcome(self, d: SurveyDef, card: CardState) -> str:
        """``Closed with 12 responses``."""
        if card.status != CLOSED:
            return ""
        return f"Closed with {card.data.get('respondents', 0)} responses"

    def fallback(self, d: SurveyDef) -> str:
        """``[Survey] <title>``."""
        return f"[Survey] {d.common.title} — answer in Magpie"

    def private_params(self, d: SurveyDef, action: str) -> bool:
        """Answers are never logged (only the creator sees them, aggregated)."""
        return action == "respond"


SURVEY = SurveyType()

"""``survey@1``: members answer questions; the creator sees the aggregated results.

Statuses: ``open`` → ``closed`` (terminal), closed by the creator, an admin or the deadline.

Definition: ``questions`` (1–20), each ``{id?, kind: single|multiple|text, prompt,
options? (choice kinds, 2–20), required? (default true), max_length? (text, default 500)}``;
``final`` (default false: a response may be edited until the survey closes; true: the first
response is final); ``closes_at`` (unix ms, optional).

Action ``respond`` takes ``{"answers": {question id: answer}}``: an option index for
``single``, a list of indices for ``multiple``, a string for ``text``.

State ``data`` is the small aggregate every member syncs: ``respondents`` and ``counts``
(per question, the responses choosing each option; ``[]`` for a text question), so a response
changes it by a few bytes whatever the size of the group. Each response is a record of its
own (``r:<uid>`` -> ``{"a": answers, "at": at_ms}``, the answers a list aligned with the
questions: ``[i]`` / ``[i, j]`` / ``"text"``), read and written in the response's
transaction, so the counts are exact under any concurrency. Answers are never logged and
only the creator and admins see results: the counts, and the text answers of the first
:data:`TEXT_PREVIEW` respondents (by uid; every response through the paged listing
``GET /cards/{id}/records``); every member sees the number of respondents and their own
response.

Cards of older versions kept the responses in ``data["responses"]`` (``[uid, answers,
at_ms]`` entries): they are read as responses, and the first response after the upgrade
moves them into records.
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
#: Respondents whose text answers every owner's projection shows (the first by uid).
TEXT_PREVIEW = 20
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


def response_key(uid: str) -> str:
    """The record key of ``uid``'s response."""
    return f"r:{uid}"


def _legacy(data: Mapping[str, Any]) -> list[list[Any]]:
    """The ``[uid, answers, at]`` responses an older version kept in the state."""
    return [list(r) for r in data.get("responses", [])]


def _mine(
    data: Mapping[str, Any], records: Mapping[str, Mapping[str, Any]], uid: str
) -> list[Any] | None:
    """``uid``'s response as ``[uid, answers, at]``: its record, else a legacy entry."""
    if not uid:
        return None
    found = records.get(response_key(uid))
    if found is not None:
        return [uid, list(found["a"]), int(found["at"])]
    return next((r for r in _legacy(data) if r[0] == uid), None)


def _zero(d: SurveyDef) -> list[list[int]]:
    return [[0] * len(q.options) if q.kind != "text" else [] for q in d.questions]


def _count(d: SurveyDef, counts: list[list[int]], answers: list[Any], sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) one response's choices."""
    for n, q in enumerate(d.questions):
        if q.kind != "text":
            for i in answers[n]:
                counts[n][i] += sign


def _counts(d: SurveyDef, data: Mapping[str, Any]) -> list[list[int]]:
    """The choice counts (computed from legacy responses when the state has those)."""
    if "responses" in data:
        counts = _zero(d)
        for r in _legacy(data):
            _count(d, counts, r[1], 1)
        return counts
    return [list(c) for c in data.get("counts", _zero(d))]


def _respond(act: Act[SurveyDef]) -> Step:
    """Record the response (replacing the member's previous one) and move the counts."""
    d, data = act.definition, act.data
    counts = _counts(d, data)
    respondents = int(data.get("respondents", 0))
    writes: dict[str, Any] = {}
    if "responses" in data:  # move the legacy responses into records (once)
        for r in _legacy(data):
            writes[response_key(r[0])] = {"a": r[1], "at": r[2]}
    before = _mine(data, act.records, act.uid)
    if before is None:
        respondents += 1
    else:
        _count(d, counts, before[1], -1)
    _count(d, counts, act.params, 1)
    writes[response_key(act.uid)] = {"a": act.params, "at": act.now}
    return Step(OPEN, {"counts": counts, "respondents": respondents}, writes)


def _close(act: Act[SurveyDef]) -> Step:
    return Step(CLOSED, act.data)


def _may_respond(act: Act[SurveyDef]) -> Refusal | None:
    if not act.definition.final or _mine(act.data, act.records, act.uid) is None:
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


def _texts(d: SurveyDef, card: CardState, viewer: Viewer) -> list[tuple[str, list[Any]]]:
    """``(uid, answers)`` of the first :data:`TEXT_PREVIEW` respondents (or the legacy ones)."""
    if "responses" in card.data:
        return [(r[0], r[1]) for r in _legacy(card.data)]
    rows = viewer.lists.get("texts", ())
    return [(key.partition(":")[2], list(value["a"])) for key, value in rows]


def _aggregate(d: SurveyDef, card: CardState, viewer: Viewer) -> list[dict[str, Any]]:
    counts = _counts(d, card.data)
    texts = _texts(d, card, viewer) if any(q.kind == "text" for q in d.questions) else []
    out: list[dict[str, Any]] = []
    for n, q in enumerate(d.questions):
        if q.kind == "text":
            answers = [{"uid": uid, "text": a[n]} for uid, a in texts if a[n]]
            out.append({"id": q.id, "kind": q.kind, "answers": answers})
        else:
            out.append({"id": q.id, "kind": q.kind, "counts": counts[n]})
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
        return {"counts": _zero(d), "respondents": 0}

    def deadline(self, d: SurveyDef) -> Deadline | None:
        """``close`` at ``closes_at``."""
        return ("close", d.closes_at) if d.closes_at else None

    def view(self, d: SurveyDef, card: CardState, viewer: Viewer) -> dict[str, Any]:
        """The number of respondents; results for the creator and admins; ``my_response``."""
        owner = _owner(viewer)
        mine = _mine(card.data, viewer.records, viewer.uid)
        state = {
            **self.to_json(d),
            "respondents": int(card.data.get("respondents", 0)),
            "results": _aggregate(d, card, viewer) if owner else None,
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

    def reads(self, d: SurveyDef, key: str) -> tuple[str, ...]:
        """The member's response."""
        return (response_key(key),)

    def lists(self, d: SurveyDef, card: CardState) -> Mapping[str, tuple[str, int]]:
        """The first responses, for the owners' view of the text answers."""
        if "responses" in card.data or all(q.kind != "text" for q in d.questions):
            return {}
        return {"texts": ("r:", TEXT_PREVIEW)}

    def record_prefix(self, d: SurveyDef) -> str | None:
        """Responses are listed (to the creator and admins)."""
        return "r:"

    def records_visible(self, d: SurveyDef, card: CardState, viewer: Viewer) -> bool:
        """The creator and admins see every response."""
        return _owner(viewer)

    def record_view(
        self, d: SurveyDef, card: CardState, viewer: Viewer, key: str, value: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """``{uid, answers: {question id: answer}, at}``."""
        if not _owner(viewer) or not key.startswith("r:"):
            return None
        entry = [key[2:], list(value.get("a", [])), int(value.get("at", 0))]
        return {"uid": key[2:], **_response_json(d, entry)}


def _owner(viewer: Viewer) -> bool:
    return bool(viewer.roles & {Role.CREATOR, Role.ADMIN})


SURVEY = SurveyType()

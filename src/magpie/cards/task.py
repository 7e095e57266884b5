"""``task@1``: assignees accept or decline and move the task along; the creator reassigns.

Statuses (``done`` and ``cancelled`` terminal)::

    todo ──accept──► doing ──complete──► done
      │                │ ▲
    decline          block unblock
      ▼                ▼ │
    declined         blocked
    (every assignee declined)

    reassign (creator/admin): todo | doing | blocked | declined ──► todo (new assignees)
    cancel   (creator/admin): any open status ──► cancelled
    due      (the server, at ``due``): any open status ──► itself, ``overdue`` set

Definition: ``assignees`` (1–50 uids), ``due`` (unix ms, optional; passing it marks the task
overdue but does not end it). State ``data``: the current ``assignees``, who ``accepted`` and
``declined``, ``overdue``, ``blocked_reason``, ``done_by``. Every change is an operation-log
row (``GET /cards/{id}/ops``): who, what, the status before and after, when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from magpie.cards import fields
from magpie.cards.cardtype import CardType, Deadline
from magpie.cards.machine import (
    ActionInfo,
    Check,
    Effect,
    Machine,
    Parse,
    Transition,
    no_params,
)
from magpie.cards.model import Act, CardState, Common, Definition, Refusal, Role, Step, Viewer
from magpie.domain.ext import Result

__all__ = ["TASK", "TaskDef", "TaskType"]

TODO, DOING, BLOCKED, DONE = "todo", "doing", "blocked", "done"
DECLINED, CANCELLED = "declined", "cancelled"
OPEN_STATUSES = (TODO, DOING, BLOCKED, DECLINED)
#: Most assignees of one task.
MAX_ASSIGNEES = 50


@dataclass(frozen=True, slots=True)
class TaskDef(Definition):
    """A task's definition (the *initial* assignees; reassignment changes the state)."""

    assignees: tuple[str, ...]
    due: int


def _names(data: Mapping[str, Any], key: str) -> list[str]:
    return [str(u) for u in data.get(key, [])]


def _with(data: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    return {**data, **changes}


def _accept(act: Act[TaskDef]) -> Step:
    accepted = [*_names(act.data, "accepted"), act.uid]
    declined = [u for u in _names(act.data, "declined") if u != act.uid]
    return Step(DOING, _with(act.data, accepted=accepted, declined=declined))


def _decline(act: Act[TaskDef]) -> Step:
    declined = [*_names(act.data, "declined"), act.uid]
    status = DECLINED if set(_names(act.data, "assignees")) <= set(declined) else TODO
    return Step(status, _with(act.data, declined=declined))


def _block(act: Act[TaskDef]) -> Step:
    return Step(BLOCKED, _with(act.data, blocked_reason=act.params))


def _unblock(act: Act[TaskDef]) -> Step:
    return Step(DOING, _with(act.data, blocked_reason=""))


def _complete(act: Act[TaskDef]) -> Step:
    return Step(DONE, _with(act.data, done_by=act.uid))


def _reassign(act: Act[TaskDef]) -> Step:
    fresh = {"assignees": list(act.params), "accepted": [], "declined": [], "blocked_reason": ""}
    return Step(TODO, _with(act.data, **fresh))


def _cancel(act: Act[TaskDef]) -> Step:
    return Step(CANCELLED, act.data)


def _due(act: Act[TaskDef]) -> Step:
    return Step(act.status, _with(act.data, overdue=True))


def _reason(_d: TaskDef, raw: Mapping[str, Any]) -> str:
    return fields.text(raw, "reason", fields.MAX_COMMENT)


def _assignees(_d: TaskDef, raw: Mapping[str, Any]) -> list[str]:
    return list(fields.uid_list(raw, "assignees", 1, MAX_ASSIGNEES))


def _not_in(key: str, code: str, message: str) -> Check:
    def check(act: Act[TaskDef]) -> Refusal | None:
        if act.uid in _names(act.data, key):
            return Refusal(Result.CONFLICT, code, message)
        return None

    return check


_not_accepted = _not_in("accepted", "already_accepted", "you have already accepted")
_not_declined = _not_in("declined", "already_declined", "you have already declined")

_ASSIGNEES = frozenset({Role.LISTED})
_OWNER = frozenset({Role.CREATOR, Role.ADMIN})
_WORK = frozenset({"status", "assignees"})


def _work(
    targets: set[str], effect: Effect, *checks: Check, parse: Parse = no_params
) -> Transition:
    """A transition an assignee takes (watching the status and the assignees)."""
    return Transition(_ASSIGNEES, frozenset(targets), effect, parse, checks, _WORK)


def _table() -> dict[tuple[str, str], Transition]:
    table = {
        (TODO, "accept"): _work({DOING}, _accept),
        (DOING, "accept"): _work({DOING}, _accept, _not_accepted),
        (TODO, "decline"): _work({TODO, DECLINED}, _decline, _not_declined),
        (DOING, "block"): _work({BLOCKED}, _block, parse=_reason),
        (BLOCKED, "unblock"): _work({DOING}, _unblock),
        (DOING, "complete"): _work({DONE}, _complete),
    }
    for status in OPEN_STATUSES:
        table[(status, "reassign")] = Transition(
            _OWNER, frozenset({TODO}), _reassign, _assignees, watches=_WORK
        )
        table[(status, "cancel")] = Transition(_OWNER, frozenset({CANCELLED}), _cancel)
        table[(status, "due")] = Transition(frozenset({Role.SYSTEM}), frozenset({status}), _due)
    return table


_WHO = "the assignees"
MACHINE = Machine(
    initial=TODO,
    terminal=frozenset({DONE, CANCELLED}),
    actions={
        "accept": ActionInfo("Accept", "primary", _WHO),
        "decline": ActionInfo("Decline", "danger", _WHO),
        "block": ActionInfo("Block", "secondary", _WHO),
        "unblock": ActionInfo("Unblock", "secondary", _WHO),
        "complete": ActionInfo("Complete", "primary", _WHO),
        "reassign": ActionInfo("Reassign", "secondary"),
        "cancel": ActionInfo("Cancel", "danger"),
        "due": ActionInfo("Due", "secondary"),
    },
    table=_table(),
)


class TaskType(CardType[TaskDef]):
    """The ``task@1`` card type."""

    name = "task"
    schema_version = 1
    machine = MACHINE
    deadline_blocks = False

    def _parse(self, raw: Mapping[str, Any], common: Common, now: int | None) -> TaskDef:
        assignees = fields.uid_list(raw, "assignees", 1, MAX_ASSIGNEES)
        return TaskDef(common, assignees, fields.deadline(raw, "due", now))

    def to_json(self, d: TaskDef) -> dict[str, Any]:
        """``assignees`` and ``due``."""
        return {"assignees": list(d.assignees), "due": d.due}

    def initial(self, d: TaskDef) -> dict[str, Any]:
        """The initial assignees; nothing accepted yet."""
        return {
            "assignees": list(d.assignees),
            "accepted": [],
            "declined": [],
            "overdue": False,
            "blocked_reason": "",
            "done_by": "",
        }

    def listed(self, d: TaskDef, data: Mapping[str, Any]) -> frozenset[str]:
        """The current assignees."""
        return frozenset(_names(data, "assignees"))

    def deadline(self, d: TaskDef) -> Deadline | None:
        """``due`` at ``due``."""
        return ("due", d.due) if d.due else None

    def view(self, d: TaskDef, card: CardState, viewer: Viewer) -> dict[str, Any]:
        """The assignment; ``my_task`` (assigned / accepted / declined)."""
        data = card.data
        mine = {
            "assigned": viewer.uid in _names(data, "assignees"),
            "accepted": viewer.uid in _names(data, "accepted"),
            "declined": viewer.uid in _names(data, "declined"),
        }
        state = {
            "assignees": _names(data, "assignees"),
            "accepted": _names(data, "accepted"),
            "declined": _names(data, "declined"),
            "due": d.due,
            "overdue": bool(data.get("overdue", False)),
            "blocked_reason": str(data.get("blocked_reason", "")),
            "done_by": str(data.get("done_by", "")),
        }
        return {"state": state, "my_task": mine}

    def outcome(self, d: TaskDef, card: CardState) -> str:
        """``Done by bob``, ``Cancelled``, ``Declined by every assignee``."""
        if card.status == DONE:
            return f"Done by {card.data.get('done_by', '')}"
        if card.status == CANCELLED:
            return "Cancelled"
        return "Declined by every assignee" if card.status == DECLINED else ""

    def fallback(self, d: TaskDef) -> str:
        """``[Task] <title> → assignees``."""
        return f"[Task] {d.common.title} → {', '.join(d.assignees)} — open Magpie to respond"


TASK = TaskType()

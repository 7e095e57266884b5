"""Card workflows as declared state machines: a transition table per card type.

A :class:`Machine` is a table ``(status, action) -> Transition``; a missing key means the
action is not legal in that status (the h11 habit: the table *is* the rule). A
:class:`Transition` declares:

* ``who`` — the roles that may take it (:class:`~magpie.cards.model.Role`);
* ``targets`` — the statuses it may lead to (its effect is checked against them);
* ``parse`` — the parameter parser (raises :class:`ParamError`);
* ``checks`` — further guards on the state (already voted, not your turn, ...);
* ``watches`` — the facets whose change since the client's ``base_version`` makes the click
  stale (``status`` by default; a ballot does not watch other ballots);
* ``confirmable`` — whether a stale but still legal action may be forced with ``confirm``;
* ``effect`` — the pure function computing the new status and data.

:func:`evaluate` runs the guards in a fixed order, each refusal with its op-log result:

1. unknown action → *invalid* ``unknown_action``;
2. the actor's roles cannot take this action in any status → *forbidden* ``not_allowed``;
3. no transition from the current status → *conflict* ``not_now`` (``closed`` when terminal);
4. the actor's roles cannot take it *now* → *forbidden* ``not_allowed``;
5. the card's deadline passed (types whose deadline ends it) → *conflict* ``expired``;
6. bad parameters → *invalid* ``bad_params``;
7. the transition's checks;
8. stale base version → *conflict* ``stale`` (confirmable) or ``changed`` (not), unless
   confirmed;
9. the effect.

:func:`availability` runs 1–7 without parameters, for the per-viewer projection. Everything
here is pure: time is an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from magpie.cards.model import Act, CardBug, Refusal, Role, Step
from magpie.domain.ext import Result

__all__ = [
    "STATUS_ONLY",
    "ActionInfo",
    "Check",
    "Effect",
    "Machine",
    "ParamError",
    "Parse",
    "Request",
    "Transition",
    "admit",
    "availability",
    "evaluate",
    "no_params",
]

Effect = Callable[[Act[Any]], Step]
Check = Callable[[Act[Any]], Refusal | None]
#: ``(definition, raw params) -> parsed params``; raises :class:`ParamError`.
Parse = Callable[[Any, Mapping[str, Any]], Any]

#: The default ``watches``: only a status change makes a click stale.
STATUS_ONLY = frozenset({"status"})

_ROLE_WORDS = {
    Role.CREATOR: "the creator",
    Role.ADMIN: "an admin",
    Role.LISTED: "a listed user",
    Role.MEMBER: "a member",
    Role.SYSTEM: "the server",
}


class ParamError(ValueError):
    """An action's parameters are invalid (the message is shown to the user)."""


def no_params(_definition: Any, _raw: Mapping[str, Any]) -> None:
    """The parser of actions without parameters (extra keys are ignored)."""
    return None


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of a transition table (see the module docstring)."""

    who: frozenset[Role]
    targets: frozenset[str]
    effect: Effect
    parse: Parse = no_params
    checks: tuple[Check, ...] = ()
    watches: frozenset[str] = STATUS_ONLY
    confirmable: bool = True


@dataclass(frozen=True, slots=True)
class ActionInfo:
    """How an action is shown: its button ``label`` and ``style`` (``primary``, ``danger``,
    ``secondary``), and the ``listed`` word the type uses in refusals (``approvers``)."""

    label: str
    style: str = "primary"
    who_words: str = ""
    #: Who may take it, said in full (a registered type's ``who_words``): replaces the
    #: words built from the roles.
    who_phrase: str = ""


@dataclass(frozen=True, slots=True)
class Machine:
    """A card type's workflow: statuses, actions and the transition table."""

    initial: str
    terminal: frozenset[str]
    actions: Mapping[str, ActionInfo]
    table: Mapping[tuple[str, str], Transition]

    def __post_init__(self) -> None:
        for status, action in self.table:
            if action not in self.actions:
                raise CardBug(f"transition ({status}, {action}) names an undeclared action")
            if status in self.terminal:
                raise CardBug(f"terminal status {status} has a transition ({action})")

    @property
    def statuses(self) -> frozenset[str]:
        """Every status the table mentions."""
        out = {self.initial, *self.terminal}
        for (status, _), t in self.table.items():
            out |= {status, *t.targets}
        return frozenset(out)

    def who(self, action: str) -> frozenset[Role]:
        """The roles that may take ``action`` in some status."""
        roles: set[Role] = set()
        for (_, name), t in self.table.items():
            if name == action:
                roles |= t.who
        return frozenset(roles)

    def user_actions(self) -> list[str]:
        """The actions a user may take in some status, in declaration order."""
        return [a for a in self.actions if self.who(a) - {Role.SYSTEM}]


@dataclass(frozen=True, slots=True)
class Request:
    """An action to evaluate. ``params`` ``None``: availability only. ``stale_facets``:
    the facets changed after the client's base version (empty when it is current)."""

    action: str
    params: Mapping[str, Any] | None
    stale_facets: frozenset[str] = frozenset()
    confirm: bool = False
    deadline_passed: bool = False


def _who_words(machine: Machine, action: str, who: frozenset[Role]) -> str:
    if machine.actions[action].who_phrase:
        return machine.actions[action].who_phrase
    listed = machine.actions[action].who_words or _ROLE_WORDS[Role.LISTED] + "s"
    words = [listed if r is Role.LISTED else _ROLE_WORDS[r] for r in who if r is not Role.SYSTEM]
    return " or ".join(sorted(words)) or "the server"


def _forbidden(machine: Machine, action: str, who: frozenset[Role]) -> Refusal:
    label = machine.actions[action].label.lower()
    message = f"only {_who_words(machine, action, who)} may {label}"
    return Refusal(Result.FORBIDDEN, "not_allowed", message)


def _not_now(machine: Machine, status: str, action: str) -> Refusal:
    label = machine.actions[action].label.lower()
    if status in machine.terminal:
        return Refusal(Result.CONFLICT, "closed", f"the card is {status}")
    return Refusal(Result.CONFLICT, "not_now", f"cannot {label} now (the card is {status})")


def _guards(machine: Machine, act: Act[Any], req: Request) -> Transition | Refusal:
    """Guards 1–5 (see the module docstring): the transition, or why not."""
    if req.action not in machine.actions:
        return Refusal(Result.INVALID, "unknown_action", f"unknown action {req.action!r}")
    who = machine.who(req.action)
    if not act.roles & who:
        return _forbidden(machine, req.action, who)
    t = machine.table.get((act.status, req.action))
    if t is None:
        return _not_now(machine, act.status, req.action)
    if not act.roles & t.who:
        return _forbidden(machine, req.action, t.who)
    if req.deadline_passed and Role.SYSTEM not in act.roles:
        return Refusal(Result.CONFLICT, "expired", "the card's deadline has passed")
    return t


def _checks(t: Transition, act: Act[Any]) -> Refusal | None:
    for check in t.checks:
        refusal = check(act)
        if refusal is not None:
            return refusal
    return None


def availability(
    machine: Machine, act: Act[Any], action: str, *, deadline_passed: bool = False
) -> Refusal | None:
    """``None`` when ``act``'s actor may take ``action`` now (parameters aside), else why
    not."""
    t = _guards(machine, act, Request(action, None, deadline_passed=deadline_passed))
    if isinstance(t, Refusal):
        return t
    return _checks(t, act)


def _stale(t: Transition, req: Request) -> Refusal | None:
    changed = t.watches & req.stale_facets
    if not changed or (req.confirm and t.confirmable):
        return None
    what = ", ".join(sorted(changed))
    if t.confirmable:
        return Refusal(Result.CONFLICT, "stale", f"the card changed ({what}); confirm to apply")
    return Refusal(Result.CONFLICT, "changed", f"the card changed ({what}) since you saw it")


def admit(machine: Machine, act: Act[Any], req: Request) -> tuple[Transition, Act[Any]] | Refusal:
    """Guards 1–8 (everything but the effect): the transition and the act with its parsed
    parameters, or why not."""
    t = _guards(machine, act, req)
    if isinstance(t, Refusal):
        return t
    try:
        act = replace(act, params=t.parse(act.definition, req.params or {}))
    except ParamError as exc:
        return Refusal(Result.INVALID, "bad_params", str(exc))
    refusal = _checks(t, act) or _stale(t, req)
    if refusal is not None:
        return refusal
    return t, act


def evaluate(machine: Machine, act: Act[Any], req: Request) -> Step | Refusal:
    """Decide one action (see the module docstring for the order of the guards)."""
    admitted = admit(machine, act, req)
    if isinstance(admitted, Refusal):
        return admitted
    t, act = admitted
    step = t.effect(act)
    if step.status not in t.targets:
        raise CardBug(f"{req.action} from {act.status} led to {step.status}, not a target")
    return step

"""Business-defined card types: registered through the business API, no code in Magpie.

A registration (``POST /card-types``, shapes in ``docs/cards.md`` "Make your own card")
names the type (``name@version``, immutable once registered), the JSON Schema of its state
and the initial state, its statuses, its actions — who may take them (members, listed users,
the creator, the card's admins, named users) and how they are handled — and a default card
document. An action is handled either

* by **declared transitions** (``from``, ``action``, ``to``, ``guard``) that Magpie enforces
  itself, on the same :class:`~magpie.cards.machine.Machine` as the built-in types:
  ``first_wins`` (the transition moves the status: the first click wins, the others get a
  409 with the winner), ``each_user_once`` (a per-user record, 409 ``already_done`` on a
  second click, counted in ``counts``), ``quorum`` (each user once; the status moves when
  the count reaches ``quorum``); a transition may merge a ``set`` patch into the state and
  answer the actor with an ephemeral text;
* or by the business server's **callback** (:mod:`magpie.cards.callback`): the card
  service asks it and applies its answer by compare-and-set.

:class:`RegisteredType` is an ordinary :class:`~magpie.cards.cardtype.CardType`: its state
``data`` is ``{"state": <business state>, "counts": {action: n}, "doc"?: <document>}``; each
counted action of a user is a record ``a:<action>:<uid>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError, best_match  # type: ignore[import-untyped]

from magpie.cards import fields
from magpie.cards.cardtype import CardType
from magpie.cards.document import check_document, depth, fill
from magpie.cards.machine import ActionInfo, Machine, ParamError, Transition
from magpie.cards.model import (
    Act,
    CardBug,
    CardInvalid,
    CardState,
    Common,
    Definition,
    Refusal,
    Role,
    Step,
    Viewer,
)
from magpie.domain.ext import Result
from magpie.errors import PayloadTooLarge
from magpie.ext.patch import encode, merge_patch

__all__ = [
    "BUILTIN_NAMES",
    "CALLBACK",
    "REGISTRATION_SCHEMA",
    "ActionSpec",
    "RegDef",
    "RegisteredType",
    "TransitionSpec",
    "TypeSpec",
    "parse_registration",
    "state_problem",
]

BUILTIN_NAMES = frozenset({"approval", "survey", "task", "vote"})
CALLBACK, TRANSITIONS = "callback", "transitions"
FIRST_WINS, EACH_USER_ONCE, QUORUM = "first_wins", "each_user_once", "quorum"
MAX_REGISTRATION_BYTES = 64 * 1024
MAX_STATE_DEPTH = 16
MAX_LISTED = 50

_WORD = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"}
_UIDS = {"type": "array", "maxItems": 200, "items": {"type": "string", "minLength": 1}}
_WHO = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "members": {"type": "boolean"},
        "users": _UIDS,
        "roles": {
            "type": "array",
            "items": {"enum": ["creator", "admins", "listed"]},
            "uniqueItems": True,
        },
    },
}

#: The JSON Schema of a registration body (published in OpenAPI as ``CardTypeRegistration``).
REGISTRATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "a business-defined card type (docs/cards.md, 'Make your own card')",
    "required": ["name", "version", "initial_status", "actions"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{1,31}$"},
        "version": {"type": "integer", "minimum": 1, "maximum": 1000},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "initial_status": _WORD,
        "statuses": {"type": "array", "maxItems": 30, "items": _WORD},
        "terminal": {"type": "array", "maxItems": 30, "items": _WORD},
        "state_schema": {"type": "object"},
        "initial_state": {"type": "object"},
        "actions": {
            "type": "array",
            "minItems": 1,
            "maxItems": 20,
            "items": {
                "type": "object",
                "required": ["name", "who"],
                "additionalProperties": False,
                "properties": {
                    "name": _WORD,
                    "label": {"type": "string", "minLength": 1, "maxLength": 75},
                    "style": {"enum": ["primary", "secondary", "danger"]},
                    "who": _WHO,
                    "who_words": {"type": "string", "maxLength": 100},
                    "params": {"type": "object"},
                    "handler": {"enum": [TRANSITIONS, CALLBACK]},
                    "in": {"type": "array", "maxItems": 30, "items": _WORD},
                },
            },
        },
        "transitions": {
            "type": "array",
            "maxItems": 100,
            "items": {
                "type": "object",
                "required": ["from", "action", "to"],
                "additionalProperties": False,
                "properties": {
                    "from": _WORD,
                    "action": _WORD,
                    "to": _WORD,
                    "guard": {"enum": [FIRST_WINS, EACH_USER_ONCE, QUORUM]},
                    "quorum": {"type": "integer", "minimum": 1, "maximum": 100000},
                    "set": {"type": "object"},
                    "ephemeral": {"type": "string", "minLength": 1, "maxLength": 500},
                },
            },
        },
        "callback_url": {
            "type": "string",
            "maxLength": 1000,
            "pattern": "^https?://[^\\s/?#]+(/[^\\s]*)?$",
        },
        "doc": {"type": "object"},
        "status_docs": {
            "type": "object",
            "maxProperties": 30,
            "additionalProperties": {"type": "object"},
        },
    },
}
_REGISTRATION = Draft202012Validator(REGISTRATION_SCHEMA)


def _bad(message: str, path: str = "") -> CardInvalid:
    return CardInvalid(message, field="/".join(filter(None, ["type", path])), reason="bad_type")


@dataclass(frozen=True, slots=True)
class Who:
    """Who may take an action: any member, the named users, or users with the roles."""

    members: bool
    users: frozenset[str]
    roles: frozenset[Role]

    @property
    def machine_roles(self) -> frozenset[Role]:
        """The roles of the transition table (named users need membership, then a check)."""
        extra = {Role.MEMBER} if self.members or self.users else set()
        return self.roles | extra

    def allows(self, uid: str, roles: frozenset[Role]) -> bool:
        """Whether ``uid`` with ``roles`` may act."""
        return (
            (self.members and Role.MEMBER in roles)
            or (uid in self.users and Role.MEMBER in roles)
            or bool(self.roles & roles)
        )


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One declared action."""

    name: str
    label: str
    style: str
    who: Who
    who_words: str
    params: Draft202012Validator | None
    handler: str
    statuses: frozenset[str]


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    """One row of the declared transitions."""

    source: str
    action: str
    target: str
    guard: str
    quorum: int
    set: Mapping[str, Any]
    ephemeral: str


@dataclass(frozen=True, slots=True)
class TypeSpec:
    """A validated registration; ``body`` is its normalised JSON (stored, compared)."""

    name: str
    version: int
    title: str
    initial_status: str
    terminal: frozenset[str]
    statuses: frozenset[str]
    state_validator: Draft202012Validator
    initial_state: Mapping[str, Any]
    actions: Mapping[str, ActionSpec]
    transitions: tuple[TransitionSpec, ...]
    callback_url: str
    doc: Mapping[str, Any] | None
    status_docs: Mapping[str, Mapping[str, Any]]
    body: Mapping[str, Any] = field(repr=False)

    @property
    def tag(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def transition(self, status: str, action: str) -> TransitionSpec | None:
        """The declared transition of ``action`` from ``status``."""
        for t in self.transitions:
            if t.source == status and t.action == action:
                return t
        return None

    @property
    def counted(self) -> tuple[str, ...]:
        """The actions whose takers are recorded (each_user_once, quorum)."""
        names = {t.action for t in self.transitions if t.guard != FIRST_WINS}
        return tuple(sorted(names))


def _refs(schema: Any) -> list[str]:
    """Every ``$ref``/``$dynamicRef`` value in a schema (no recursion)."""
    out: list[str] = []
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                    out.append(value)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return out


def _schema(raw: Any, path: str) -> Draft202012Validator:
    """A business JSON Schema: well formed, only local references (nothing is fetched)."""
    if any(not ref.startswith("#") for ref in _refs(raw)):
        raise _bad("schemas may only use local references ($ref: '#/...')", path)
    try:
        Draft202012Validator.check_schema(raw)
    except SchemaError as exc:
        raise _bad(f"not a valid JSON Schema: {exc.message}"[:300], path) from None
    return Draft202012Validator(raw)


def state_problem(validator: Draft202012Validator, state: Any) -> str | None:
    """Why ``state`` does not match the type's state schema, or ``None``."""
    if not isinstance(state, Mapping):
        return "the state must be a JSON object"
    if depth(state) > MAX_STATE_DEPTH:
        return f"the state nests deeper than {MAX_STATE_DEPTH} levels"
    try:
        error = best_match(validator.iter_errors(state))
    except Exception as exc:  # a schema that cannot be evaluated: the state is refused
        return f"the state schema could not be evaluated ({type(exc).__name__})"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "state"
    return f"{where}: {error.message}"[:300]


def _who(raw: Mapping[str, Any], path: str) -> Who:
    roles = {"creator": Role.CREATOR, "admins": Role.ADMIN, "listed": Role.LISTED}
    who = Who(
        bool(raw.get("members", False)),
        frozenset(raw.get("users", ())),
        frozenset(roles[r] for r in raw.get("roles", ())),
    )
    if not who.machine_roles:
        raise _bad("who allows nobody: give members, users or roles", path)
    return who


def _actions(raw: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for i, action in enumerate(raw):
        if action["name"] in out:
            raise _bad(f"action {action['name']!r} is declared twice", f"actions/{i}/name")
        out[action["name"]] = {"index": i, **action}
    return out


def _statuses(raw: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    terminal = frozenset(raw.get("terminal", ()))
    statuses = {raw["initial_status"], *terminal, *raw.get("statuses", ())}
    for t in raw.get("transitions", ()):
        statuses |= {t["from"], t["to"]}
    if raw["initial_status"] in terminal:
        raise _bad("the initial status cannot be terminal", "initial_status")
    if len(statuses) > 30:
        raise _bad("at most 30 statuses", "statuses")
    return frozenset(statuses), terminal


def _transition(raw: Mapping[str, Any], path: str, actions: Mapping[str, Any]) -> TransitionSpec:
    action = actions.get(raw["action"])
    if action is None:
        raise _bad(f"transition of the undeclared action {raw['action']!r}", f"{path}/action")
    if action.get("handler", TRANSITIONS) != TRANSITIONS:
        raise _bad(f"action {raw['action']!r} is handled by the callback", f"{path}/action")
    guard = raw.get("guard", FIRST_WINS)
    if guard == QUORUM and "quorum" not in raw:
        raise _bad("a quorum guard needs quorum: n", path)
    if guard != QUORUM and "quorum" in raw:
        raise _bad("quorum is only for the quorum guard", f"{path}/quorum")
    if guard == FIRST_WINS and raw["from"] == raw["to"]:
        raise _bad("a first_wins transition must change the status", path)
    return TransitionSpec(
        raw["from"],
        raw["action"],
        raw["to"],
        guard,
        int(raw.get("quorum", 0)),
        dict(raw.get("set", {})),
        raw.get("ephemeral", ""),
    )


def _action_spec(
    raw: Mapping[str, Any], path: str, statuses: frozenset[str], terminal: frozenset[str]
) -> ActionSpec:
    handler = raw.get("handler", TRANSITIONS)
    where = frozenset(raw.get("in", ())) or statuses - terminal
    if handler == TRANSITIONS and "in" in raw:
        raise _bad("'in' is for callback actions (transitions say where)", f"{path}/in")
    if where & terminal or not where <= statuses:
        raise _bad("'in' must list non-terminal statuses of the type", f"{path}/in")
    params = None if "params" not in raw else _schema(raw["params"], f"{path}/params")
    return ActionSpec(
        raw["name"],
        raw.get("label", raw["name"].replace("_", " ").capitalize()),
        raw.get("style", "primary"),
        _who(raw["who"], f"{path}/who"),
        raw.get("who_words", ""),
        params,
        handler,
        where,
    )


def parse_registration(raw: Any) -> TypeSpec:
    """The validated registration ``raw`` (400 ``invalid`` / ``bad_type`` with the JSON path
    in ``field``; 413 ``too_large`` above 64 KiB)."""
    try:
        size = len(encode(raw).encode())
    except (TypeError, ValueError):
        raise _bad("the registration must be JSON") from None
    if size > MAX_REGISTRATION_BYTES:
        raise PayloadTooLarge(
            f"the registration is {size} bytes (limit {MAX_REGISTRATION_BYTES})",
            field="type",
            reason="too_large",
        )
    error = best_match(_REGISTRATION.iter_errors(raw))
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path)
        raise _bad(f"{path or 'type'}: {error.message}"[:300], path)
    if raw["name"] in BUILTIN_NAMES:
        raise _bad(f"{raw['name']} is a built-in type", "name")
    statuses, terminal = _statuses(raw)
    declared = _actions(raw["actions"])
    transitions = tuple(
        _transition(t, f"transitions/{i}", declared)
        for i, t in enumerate(raw.get("transitions", ()))
    )
    pairs = [(t.source, t.action) for t in transitions]
    if len(set(pairs)) != len(pairs):
        raise _bad("two transitions of one action from one status", "transitions")
    actions = {
        name: _action_spec(a, f"actions/{a['index']}", statuses, terminal)
        for name, a in declared.items()
    }
    for name, a in actions.items():
        if a.handler == TRANSITIONS and not any(t.action == name for t in transitions):
            raise _bad(f"action {name!r} has no transition", f"actions/{declared[name]['index']}")
    if any(a.handler == CALLBACK for a in actions.values()) and not raw.get("callback_url"):
        raise _bad("callback actions need a callback_url", "callback_url")
    validator = _schema(raw.get("state_schema", {"type": "object"}), "state_schema")
    initial = dict(raw.get("initial_state", {}))
    problem = state_problem(validator, initial)
    if problem is not None:
        raise _bad(f"initial_state does not match state_schema: {problem}", "initial_state")
    for i, t in enumerate(transitions):
        problem = state_problem(validator, merge_patch(initial, t.set)) if t.set else None
        if problem is not None:
            raise _bad(f"set makes the initial state invalid: {problem}", f"transitions/{i}/set")
    doc = check_document(raw["doc"], "type/doc") if "doc" in raw else None
    status_docs: dict[str, Mapping[str, Any]] = {}
    for status, status_doc in raw.get("status_docs", {}).items():
        if status not in statuses:
            raise _bad(f"{status!r} is not a status of the type", f"status_docs/{status}")
        status_docs[status] = check_document(status_doc, f"type/status_docs/{status}")
    body = json.loads(json.dumps(raw, sort_keys=True))
    spec = TypeSpec(
        raw["name"],
        raw["version"],
        raw.get("title", raw["name"].replace("_", " ").capitalize()),
        raw["initial_status"],
        terminal,
        statuses,
        validator,
        initial,
        actions,
        transitions,
        raw.get("callback_url", ""),
        doc,
        status_docs,
        body,
    )
    try:
        RegisteredType(spec)  # the machine's own consistency checks
    except CardBug as exc:
        raise _bad(str(exc), "transitions") from None
    return spec


# --- the card type --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegDef(Definition):
    """A registered card's definition: the listed users, the initial state, the document."""

    listed: tuple[str, ...]
    state: Mapping[str, Any]
    doc: Mapping[str, Any] | None


def record_key(action: str, key: str) -> str:
    """The record of ``key`` having taken a counted ``action``."""
    return f"a:{action}:{key}"


def _parser(spec: ActionSpec) -> Callable[[Any, Mapping[str, Any]], Any]:
    def parse(_d: Any, raw: Mapping[str, Any]) -> Any:
        if spec.params is not None:
            error = best_match(spec.params.iter_errors(dict(raw)))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "params"
                raise ParamError(f"{where}: {error.message}"[:300])
        return dict(raw)

    return parse


def _forbidden(spec: ActionSpec) -> Refusal:
    words = spec.who_words or "the users this card names"
    return Refusal(Result.FORBIDDEN, "not_allowed", f"only {words} may {spec.label.lower()}")


class RegisteredType(CardType[RegDef]):
    """A card type built from a registration (module docstring)."""

    def __init__(self, spec: TypeSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.schema_version = spec.version
        self.machine = self._machine()

    # the machine ---------------------------------------------------------------------------

    def _who_check(self, action: ActionSpec) -> Callable[[Act[Any]], Refusal | None]:
        def check(act: Act[Any]) -> Refusal | None:
            return None if action.who.allows(act.uid, act.roles) else _forbidden(action)

        return check

    def _once_check(self, action: str, label: str) -> Callable[[Act[Any]], Refusal | None]:
        def check(act: Act[Any]) -> Refusal | None:
            if record_key(action, act.key) in act.records:
                message = f"you have already chosen {label.lower()}"
                return Refusal(Result.CONFLICT, "already_done", message)
            return None

        return check

    def _state_check(self, t: TransitionSpec) -> Callable[[Act[Any]], Refusal | None]:
        def check(act: Act[Any]) -> Refusal | None:
            if not t.set:
                return None
            problem = state_problem(
                self.spec.state_validator, merge_patch(act.data["state"], t.set)
            )
            if problem is None:
                return None
            return Refusal(Result.INVALID, "bad_state", f"the new state is invalid: {problem}")

        return check

    def _effect(self, t: TransitionSpec) -> Callable[[Act[Any]], Step]:
        def effect(act: Act[Any]) -> Step:
            data = dict(act.data)
            target, writes = t.target, {}
            if t.guard != FIRST_WINS:
                counts = dict(data.get("counts", {}))
                counts[t.action] = int(counts.get(t.action, 0)) + 1
                data["counts"] = counts
                writes[record_key(t.action, act.key)] = {"at": act.now}
                if t.guard == QUORUM and counts[t.action] < t.quorum:
                    target = t.source
            if target != t.source or t.guard == EACH_USER_ONCE:
                data["state"] = merge_patch(data["state"], t.set) if t.set else data["state"]
            if act.uid in act.definition.listed:  # at most 50: the people block's states
                data["people"] = {**data.get("people", {}), act.uid: t.action}
            return Step(target, data, writes)

        return effect

    @staticmethod
    def _callback_effect(act: Act[Any]) -> Step:
        raise CardBug("a callback action has no declared effect")

    def _machine(self) -> Machine:
        spec = self.spec
        infos = {
            name: ActionInfo(a.label, a.style, who_phrase=a.who_words)
            for name, a in spec.actions.items()
        }
        table: dict[tuple[str, str], Transition] = {}
        for t in spec.transitions:
            a = spec.actions[t.action]
            checks = [self._who_check(a), self._state_check(t)]
            if t.guard != FIRST_WINS:
                checks.append(self._once_check(t.action, a.label))
            table[(t.source, t.action)] = Transition(
                who=a.who.machine_roles,
                targets=frozenset({t.source, t.target}),
                effect=self._effect(t),
                parse=_parser(a),
                checks=tuple(checks),
            )
        everything = frozenset({"status", "state", "doc", "counts"})
        for name, a in spec.actions.items():
            if a.handler != CALLBACK:
                continue
            for status in a.statuses:
                table[(status, name)] = Transition(
                    who=a.who.machine_roles,
                    targets=spec.statuses,
                    effect=self._callback_effect,
                    parse=_parser(a),
                    checks=(self._who_check(a),),
                    watches=everything,
                )
        return Machine(spec.initial_status, spec.terminal, infos, table)

    # the CardType interface ----------------------------------------------------------------

    def parse(self, raw: Mapping[str, Any], creator: str, now: int | None) -> RegDef:
        """The definition; the title defaults to the type's."""
        if "title" not in raw:
            raw = {**raw, "title": self.spec.title}
        return super().parse(raw, creator, now)

    def _parse(self, raw: Mapping[str, Any], common: Common, now: int | None) -> RegDef:
        listed = fields.uid_list(raw, "listed", 0, MAX_LISTED)
        extra = raw.get("state", {})
        if not isinstance(extra, Mapping):
            raise ParamError("state must be an object")
        state = (
            merge_patch(self.spec.initial_state, dict(extra)) if extra else self.spec.initial_state
        )
        problem = state_problem(self.spec.state_validator, state)
        if problem is not None:
            raise ParamError(f"state does not match the type's state_schema: {problem}")
        doc = raw.get("doc")
        if doc is not None and now is not None:
            check_document(doc, "card.doc")
        return RegDef(common, listed, dict(state), doc if isinstance(doc, Mapping) else None)

    def to_json(self, d: RegDef) -> dict[str, Any]:
        out: dict[str, Any] = {"listed": list(d.listed), "state": dict(d.state)}
        if d.doc is not None:
            out["doc"] = dict(d.doc)
        return out

    def initial(self, d: RegDef) -> dict[str, Any]:
        return {"state": dict(d.state), "counts": {}}

    def listed(self, d: RegDef, data: Mapping[str, Any]) -> frozenset[str]:
        return frozenset(d.listed)

    def reads(self, d: RegDef, key: str) -> tuple[str, ...]:
        return tuple(record_key(a, key) for a in self.spec.counted)

    def document(self, d: RegDef, card: CardState) -> Mapping[str, Any] | None:
        """The document the card shows now, placeholders filled: the last one a callback
        set, else the type's for the current status, else the card's, else the type's."""
        doc = card.data.get("doc")
        if not isinstance(doc, Mapping):
            doc = self.spec.status_docs.get(card.status)
        if doc is None:
            doc = d.doc if d.doc is not None else self.spec.doc
        if doc is None:
            return None
        took = card.data.get("people", {})
        values = {
            "status": card.status,
            "state": card.data.get("state", {}),
            "counts": card.data.get("counts", {}),
            "title": d.common.title,
            "people": [{"uid": u, "state": took.get(u, "pending")} for u in d.listed],
        }
        return fill(doc, values)

    def view(self, d: RegDef, card: CardState, viewer: Viewer) -> dict[str, Any]:
        mine = [a for a in self.spec.counted if record_key(a, viewer.key) in viewer.records]
        doc = self.document(d, card)
        return {
            "state": dict(card.data.get("state", {})),
            "counts": dict(card.data.get("counts", {})),
            "my_actions": mine if viewer.key else [],
            "document": None if doc is None else dict(doc),
        }

    def fallback(self, d: RegDef) -> str:
        return f"[{self.spec.title}] {d.common.title} — open Magpie to see the card"

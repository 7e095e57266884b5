"""``vote@1``: members vote on options; tallies are computed in the ballot's transaction.

Statuses: ``open`` → ``closed`` (terminal), closed by the creator, an admin or the deadline.

Definition: ``options`` (2–50 labels), ``multiple`` (default false) with ``max_selections``
(default: all options), ``anonymous`` (default false), ``revote`` (default true: a voter may
change their ballot while open), ``results`` — ``live`` (default) or ``closed`` (hidden until
the vote closes), ``closes_at`` (unix ms, optional).

State ``data`` is the small aggregate every member syncs: ``tallies`` (votes per option)
and ``voters``. Each ballot is a record of its own (``b:<key>`` -> ``{"o": [indices]}``),
read and written in the ballot's transaction together with the tallies, so they are exact
under any concurrency and a ballot changes the aggregate by a few bytes whatever the number
of voters. A named vote also keeps one index record per chosen option (``o<i>:<key>``), from
which every projection shows up to 20 voters per option (in key order). ``key`` is the
voter's uid, or on an anonymous vote a keyed pseudonym the card service derives from the uid
and a secret of its own: no stored row holds a voter id, and the projection never shows
ballots of an anonymous vote (nor anybody's before results are visible).

Cards of older versions kept the ballots in ``data["ballots"]`` (one ``"<key> <i>[,<j>]\n"``
line per voter): they are read as ballots, and the first ballot after the upgrade moves them
into records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from magpie.cards import fields
from magpie.cards.cardtype import CardType, Deadline
from magpie.cards.machine import ActionInfo, Machine, ParamError, Transition
from magpie.cards.model import Act, CardState, Common, Definition, Refusal, Role, Step, Viewer
from magpie.domain.ext import Result

__all__ = ["VOTE", "VoteDef", "VoteType"]

OPEN, CLOSED = "open", "closed"
#: Options of one vote, and the longest option label.
MIN_OPTIONS, MAX_OPTIONS = 2, 50
MAX_OPTION_LENGTH = 200
RESULTS = ("live", "closed")
#: Voters listed per option in a named vote's projection (the first ones to vote).
VOTERS_PREVIEW = 20


@dataclass(frozen=True, slots=True)
class VoteDef(Definition):
    """A vote's definition."""

    options: tuple[str, ...]
    multiple: bool
    max_selections: int
    anonymous: bool
    revote: bool
    results: str
    closes_at: int


def _indices(value: object) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ParamError("options must list the chosen option indices")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in value):
        raise ParamError("options must be integer indices")
    if len(set(value)) != len(value):
        raise ParamError("options must be distinct")
    return sorted(value)


def _ballot(d: VoteDef, raw: Mapping[str, Any]) -> list[int]:
    """``{"options": [i, ...]}`` (or ``{"option": i}``) checked against the definition."""
    chosen = _indices(raw.get("options", raw.get("option")))
    if chosen[0] < 0 or chosen[-1] >= len(d.options):
        raise ParamError(f"options must be indices from 0 to {len(d.options) - 1}")
    if not d.multiple and len(chosen) != 1:
        raise ParamError("choose exactly one option")
    if len(chosen) > d.max_selections:
        raise ParamError(f"choose at most {d.max_selections} options")
    return chosen


def _span(ballots: str, key: str) -> tuple[int, int] | None:
    """Where ``key``'s line is in a legacy ``ballots`` string (start, end after its newline)."""
    start = ("\n" + ballots).find(f"\n{key} ")
    if start < 0:
        return None
    return start, ballots.index("\n", start) + 1


def _choices(line: str) -> list[int]:
    return [int(i) for i in line.rstrip("\n").partition(" ")[2].split(",")]


def _legacy(data: Mapping[str, Any]) -> dict[str, list[int]]:
    """The ballots an older version kept in the state, by key."""
    lines = str(data.get("ballots", "")).splitlines()
    return {line.partition(" ")[0]: _choices(line) for line in lines if line}


def ballot_key(key: str) -> str:
    """The record key of ``key``'s ballot."""
    return f"b:{key}"


def _mine(
    data: Mapping[str, Any], records: Mapping[str, Mapping[str, Any]], key: str
) -> list[int] | None:
    """``key``'s current ballot: its record, else a legacy line."""
    if not key:
        return None
    found = records.get(ballot_key(key))
    if found is not None:
        return [int(i) for i in found["o"]]
    if "ballots" in data:
        ballots = str(data["ballots"])
        span = _span(ballots, key)
        return None if span is None else _choices(ballots[span[0] : span[1]])
    return None


def _index_writes(
    d: VoteDef, key: str, before: list[int] | None, after: list[int]
) -> dict[str, Any]:
    """The option index records of a named vote that change with a ballot."""
    if d.anonymous:
        return {}
    old, new = set(before or []), set(after)
    writes: dict[str, Any] = {f"o{i}:{key}": None for i in old - new}
    writes |= {f"o{i}:{key}": {} for i in new - old}
    return writes


def _migrate(d: VoteDef, data: Mapping[str, Any]) -> dict[str, Any]:
    """The records of a legacy ``ballots`` string (moved out of the state once)."""
    writes: dict[str, Any] = {}
    for key, chosen in _legacy(data).items():
        writes[ballot_key(key)] = {"o": chosen}
        writes |= _index_writes(d, key, None, chosen)
    return writes


def _vote(act: Act[VoteDef]) -> Step:
    """Record the ballot (replacing the voter's previous one) and move the tallies."""
    d, data = act.definition, act.data
    tallies = list(data["tallies"])
    voters = int(data.get("voters", 0))
    chosen: list[int] = act.params
    before = _mine(data, act.records, act.key)
    writes = _migrate(d, data) if "ballots" in data else {}
    if before is None:
        voters += 1
    else:
        for i in before:
            tallies[i] -= 1
    for i in chosen:
        tallies[i] += 1
    writes[ballot_key(act.key)] = {"o": chosen}
    writes |= _index_writes(d, act.key, before, chosen)
    return Step(OPEN, {"tallies": tallies, "voters": voters}, writes)


def _close(act: Act[VoteDef]) -> Step:
    return Step(CLOSED, act.data)


def _may_vote(act: Act[VoteDef]) -> Refusal | None:
    if act.definition.revote or _mine(act.data, act.records, act.key) is None:
        return None
    return Refusal(Result.CONFLICT, "already_voted", "you have already voted")


MACHINE = Machine(
    initial=OPEN,
    terminal=frozenset({CLOSED}),
    actions={"vote": ActionInfo("Vote", "primary"), "close": ActionInfo("Close", "danger")},
    table={
        (OPEN, "vote"): Transition(
            frozenset({Role.MEMBER}), frozenset({OPEN}), _vote, _ballot, (_may_vote,)
        ),
        (OPEN, "close"): Transition(
            frozenset({Role.CREATOR, Role.ADMIN, Role.SYSTEM}), frozenset({CLOSED}), _close
        ),
    },
)


def _options(raw: Mapping[str, Any]) -> tuple[str, ...]:
    value = raw.get("options")
    if not isinstance(value, list) or not MIN_OPTIONS <= len(value) <= MAX_OPTIONS:
        raise ParamError(f"options must list {MIN_OPTIONS} to {MAX_OPTIONS} labels")
    labels = [fields.text({"o": v}, "o", MAX_OPTION_LENGTH, required=True) for v in value]
    return tuple(labels)


def _visible(d: VoteDef, card: CardState) -> bool:
    return d.results == "live" or card.status == CLOSED


def _by_option(d: VoteDef, card: CardState, viewer: Viewer) -> list[list[str]]:
    """Up to :data:`VOTERS_PREVIEW` voters of each option (the tallies count them all):
    every projection carries this, so it must not grow with the group."""
    if "ballots" in card.data:
        out: list[list[str]] = [[] for _ in d.options]
        for key, chosen in _legacy(card.data).items():
            for i in chosen:
                if len(out[i]) < VOTERS_PREVIEW:
                    out[i].append(key)
        return out
    return [
        [key.partition(":")[2] for key, _ in viewer.lists.get(f"o{i}", ())]
        for i in range(len(d.options))
    ]


class VoteType(CardType[VoteDef]):
    """The ``vote@1`` card type."""

    name = "vote"
    schema_version = 1
    machine = MACHINE

    def _parse(self, raw: Mapping[str, Any], common: Common, now: int | None) -> VoteDef:
        options = _options(raw)
        multiple = fields.boolean(raw, "multiple", False)
        most = fields.integer(raw, "max_selections", 1, len(options), len(options))
        return VoteDef(
            common,
            options,
            multiple,
            most if multiple else 1,
            fields.boolean(raw, "anonymous", False),
            fields.boolean(raw, "revote", True),
            fields.choice(raw, "results", RESULTS, "live"),
            fields.deadline(raw, "closes_at", now),
        )

    def to_json(self, d: VoteDef) -> dict[str, Any]:
        """The options and the rules."""
        return {
            "options": list(d.options),
            "multiple": d.multiple,
            "max_selections": d.max_selections,
            "anonymous": d.anonymous,
            "revote": d.revote,
            "results": d.results,
            "closes_at": d.closes_at,
        }

    def initial(self, d: VoteDef) -> dict[str, Any]:
        """No voters, zero tallies."""
        return {"tallies": [0] * len(d.options), "voters": 0}

    def deadline(self, d: VoteDef) -> Deadline | None:
        """``close`` at ``closes_at``."""
        return ("close", d.closes_at) if d.closes_at else None

    def view(self, d: VoteDef, card: CardState, viewer: Viewer) -> dict[str, Any]:
        """Tallies when visible, the first voters per option when also named; ``my_vote``."""
        visible = _visible(d, card)
        named = visible and not d.anonymous
        state = {
            **self.to_json(d),
            "results_visible": visible,
            "voters": int(card.data.get("voters", 0)),
            "tallies": list(card.data.get("tallies", [])) if visible else None,
            "voters_by_option": _by_option(d, card, viewer) if named else None,
        }
        return {"state": state, "my_vote": _mine(card.data, viewer.records, viewer.key)}

    def outcome(self, d: VoteDef, card: CardState) -> str:
        """``Closed: Pizza wins with 12 of 30 votes`` (or a tie, or no votes)."""
        if card.status != CLOSED:
            return ""
        tallies = list(card.data.get("tallies", []))
        top = max(tallies, default=0)
        if top == 0:
            return "Closed with no votes"
        winners = [d.options[i] for i, n in enumerate(tallies) if n == top]
        if len(winners) > 1:
            return f"Closed: tie between {', '.join(winners)} ({top} votes each)"
        return f"Closed: {winners[0]} wins with {top} of {card.data.get('voters', 0)} voters"

    def fallback(self, d: VoteDef) -> str:
        """``[Vote] <title>: a / b / c``."""
        return f"[Vote] {d.common.title}: {' / '.join(d.options)} — vote in Magpie"

    def private_params(self, d: VoteDef, action: str) -> bool:
        """A ballot's choice is private when anonymous or while results are hidden."""
        return action == "vote" and (d.anonymous or d.results == "closed")

    def anonymous(self, d: VoteDef) -> bool:
        """Whether voters are anonymous."""
        return d.anonymous

    def anonymous_action(self, d: VoteDef, action: str) -> bool:
        """Ballots of an anonymous vote have no recorded actor."""
        return d.anonymous and action == "vote"

    def reads(self, d: VoteDef, key: str) -> tuple[str, ...]:
        """The voter's ballot."""
        return (ballot_key(key),)

    def lists(self, d: VoteDef, card: CardState) -> Mapping[str, tuple[str, int]]:
        """A named vote with visible results previews the voters of each option."""
        if d.anonymous or not _visible(d, card) or "ballots" in card.data:
            return {}
        return {f"o{i}": (f"o{i}:", VOTERS_PREVIEW) for i in range(len(d.options))}

    def record_prefix(self, d: VoteDef) -> str | None:
        """Ballots are listed (named votes only, once results are visible)."""
        return None if d.anonymous else "b:"

    def records_visible(self, d: VoteDef, card: CardState, viewer: Viewer) -> bool:
        """Every member pages the ballots of a named vote once results are visible."""
        return not d.anonymous and _visible(d, card)

    def record_view(
        self, d: VoteDef, card: CardState, viewer: Viewer, key: str, value: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """``{uid, options}`` of a named vote whose results are visible."""
        if d.anonymous or not _visible(d, card) or not key.startswith("b:"):
            return None
        return {"uid": key[2:], "options": [int(i) for i in value.get("o", [])]}


VOTE = VoteType()

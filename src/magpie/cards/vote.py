"""``vote@1``: members vote on options; tallies are computed in the ballot's transaction.

Statuses: ``open`` → ``closed`` (terminal), closed by the creator, an admin or the deadline.

Definition: ``options`` (2–50 labels), ``multiple`` (default false) with ``max_selections``
(default: all options), ``anonymous`` (default false), ``revote`` (default true: a voter may
change their ballot while open), ``results`` — ``live`` (default) or ``closed`` (hidden until
the vote closes), ``closes_at`` (unix ms, optional).

State ``data``: ``ballots``, ``tallies`` (votes per option) and ``voters``. The effect
updates the tallies together with the ballot, inside the extension transaction, so they are
exact under any concurrency. ``ballots`` is one string with a line ``"<key> <i>[,<j>...]\n"``
per voter, in the order of their first ballot: every read of the card (each member's sync)
decodes the extension, and one JSON string decodes far faster than a thousand small arrays
(keys never contain whitespace: uids by the IM's rule, pseudonyms are hex). ``key`` is the
voter's uid, or on an anonymous vote a keyed pseudonym the card service derives from the uid
and a secret of its own: the stored state holds no voter id, and the projection never shows
ballots of an anonymous vote (nor anybody's before results are visible).
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
    """Where ``key``'s line is in ``ballots`` (start, end after its newline)."""
    start = ("\n" + ballots).find(f"\n{key} ")
    if start < 0:
        return None
    return start, ballots.index("\n", start) + 1


def _choices(line: str) -> list[int]:
    return [int(i) for i in line.rstrip("\n").partition(" ")[2].split(",")]


def _mine(data: Mapping[str, Any], key: str) -> list[int] | None:
    ballots = str(data.get("ballots", ""))
    span = _span(ballots, key) if key else None
    return None if span is None else _choices(ballots[span[0] : span[1]])


def _vote(act: Act[VoteDef]) -> Step:
    """Record the ballot (replacing the voter's previous one) and move the tallies."""
    ballots = str(act.data["ballots"])
    tallies = list(act.data["tallies"])
    chosen: list[int] = act.params
    line = f"{act.key} {','.join(map(str, chosen))}\n"
    span = _span(ballots, act.key)
    if span is None:
        ballots += line
    else:
        for i in _choices(ballots[span[0] : span[1]]):
            tallies[i] -= 1
        ballots = ballots[: span[0]] + line + ballots[span[1] :]
    for i in chosen:
        tallies[i] += 1
    voters = ballots.count("\n")
    return Step(OPEN, {"ballots": ballots, "tallies": tallies, "voters": voters})


def _close(act: Act[VoteDef]) -> Step:
    return Step(CLOSED, act.data)


def _may_vote(act: Act[VoteDef]) -> Refusal | None:
    if act.definition.revote or _mine(act.data, act.key) is None:
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


def _by_option(d: VoteDef, ballots: str) -> list[list[str]]:
    """The first :data:`VOTERS_PREVIEW` voters of each option (the tallies count them all):
    every projection carries this, so it must not grow with the group."""
    out: list[list[str]] = [[] for _ in d.options]
    room = len(d.options) * VOTERS_PREVIEW
    for line in ballots.splitlines():
        key = line.partition(" ")[0]
        for i in _choices(line):
            if len(out[i]) < VOTERS_PREVIEW:
                out[i].append(key)
                room -= 1
        if room <= 0:
            break
    return out


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
        """No ballots, zero tallies."""
        return {"ballots": "", "tallies": [0] * len(d.options), "voters": 0}

    def deadline(self, d: VoteDef) -> Deadline | None:
        """``close`` at ``closes_at``."""
        return ("close", d.closes_at) if d.closes_at else None

    def view(self, d: VoteDef, card: CardState, viewer: Viewer) -> dict[str, Any]:
        """Tallies when visible, the first voters per option when also named; ``my_vote``."""
        visible = _visible(d, card)
        ballots = str(card.data.get("ballots", ""))
        named = visible and not d.anonymous
        state = {
            **self.to_json(d),
            "results_visible": visible,
            "voters": int(card.data.get("voters", 0)),
            "tallies": list(card.data.get("tallies", [])) if visible else None,
            "voters_by_option": _by_option(d, ballots) if named else None,
        }
        return {"state": state, "my_vote": _mine(card.data, viewer.key)}

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


VOTE = VoteType()

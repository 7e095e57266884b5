"""Every card type's transitions and guards, table-driven, on the pure decisions (no I/O).

Each case is a card definition and a script of steps ``(uid, action, params, expected)``;
``expected`` is the status after an applied step or ``!<code>`` for a refusal (which must
change nothing). ``system`` is the server's own actor (deadlines); ``x`` is a member who is
nobody special; ``out`` is not a member of the chat.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from magpie.cards.decide import ActionInput, action_mutate
from magpie.cards.machine import ActionInfo, Machine, Transition
from magpie.cards.model import CardBug, Role, Step
from magpie.domain.ext import Result
from magpie.ext.patch import encode
from tests.cards.support import NOW, Sim, outcome

MEMBERS = {"a", "b", "c", "d", "x"}
Steps = list[tuple[Any, ...]]


def _approval(mode: str, **more: Any) -> dict[str, Any]:
    return {"approvers": ["b", "c", "d"], "mode": mode, **more}


CASES: list[tuple[str, str, dict[str, Any], Steps]] = [
    # --- approval ----------------------------------------------------------------------------
    ("approval single: first approval wins", "approval@1", _approval("single"), [
        ("b", "approve", {"comment": "ok"}, "approved"),
        ("c", "reject", {}, "!closed"),
        ("a", "withdraw", {}, "!closed"),
    ]),
    ("approval single: first rejection wins", "approval@1", _approval("single"), [
        ("c", "reject", {"comment": "no"}, "rejected"),
        ("b", "approve", {}, "!closed"),
    ]),
    ("approval all", "approval@1", _approval("all"), [
        ("b", "approve", {}, "pending"),
        ("b", "approve", {}, "!already_decided"),
        ("c", "approve", {}, "pending"),
        ("d", "approve", {}, "approved"),
    ]),
    ("approval all: one rejection rejects", "approval@1", _approval("all"), [
        ("b", "approve", {}, "pending"),
        ("c", "reject", {}, "rejected"),
    ]),
    ("approval quorum 2 of 3", "approval@1", _approval("quorum", quorum=2), [
        ("b", "approve", {}, "pending"),
        ("c", "reject", {}, "pending"),
        ("d", "approve", {}, "approved"),
    ]),
    ("approval quorum: impossible -> rejected", "approval@1", _approval("quorum", quorum=2), [
        ("b", "reject", {}, "pending"),
        ("c", "reject", {}, "rejected"),
    ]),
    ("approval sequential", "approval@1", _approval("sequential"), [
        ("c", "approve", {}, "!not_your_turn"),
        ("b", "approve", {}, "pending"),
        ("d", "approve", {}, "!not_your_turn"),
        ("c", "approve", {}, "pending"),
        ("d", "approve", {}, "approved"),
    ]),
    ("approval sequential: a rejection ends it", "approval@1", _approval("sequential"), [
        ("b", "reject", {}, "rejected"),
    ]),
    ("approval withdraw by the creator only", "approval@1", _approval("all"), [
        ("b", "withdraw", {}, "!not_allowed"),
        ("a", "withdraw", {}, "withdrawn"),
        ("b", "approve", {}, "!closed"),
    ]),
    ("approval admins may withdraw", "approval@1", _approval("single", admins=["x"]), [
        ("x", "withdraw", {}, "withdrawn"),
    ]),
    ("approval guards", "approval@1", _approval("single"), [
        ("x", "approve", {}, "!not_allowed"),
        ("out", "approve", {}, "!not_member"),
        ("a", "approve", {}, "!not_allowed"),
        ("b", "frobnicate", {}, "!unknown_action"),
        ("b", "expire", {}, "!not_allowed"),
        ("b", "approve", {"comment": "x" * 501}, "!bad_params"),
        ("b", "approve", {"comment": 5}, "!bad_params"),
        ("system", "expire", {}, "expired"),
        ("b", "approve", {}, "!closed"),
    ]),
    # --- survey ------------------------------------------------------------------------------
    ("survey respond, edit, close", "survey@1", {"questions": [
        {"id": "lunch", "kind": "single", "prompt": "Lunch?", "options": ["pizza", "sushi"]},
        {"id": "extras", "kind": "multiple", "prompt": "Extras?", "options": ["a", "b", "c"],
         "required": False},
        {"id": "note", "kind": "text", "prompt": "Anything else?", "required": False},
    ]}, [
        ("b", "respond", {"answers": {"lunch": 0, "extras": [2, 0], "note": "hi"}}, "open"),
        ("b", "respond", {"answers": {"lunch": 1}}, "open"),
        ("c", "respond", {"answers": {}}, "!bad_params"),
        ("c", "respond", {"answers": {"lunch": 5}}, "!bad_params"),
        ("c", "respond", {"answers": {"lunch": [0, 1]}}, "!bad_params"),
        ("c", "respond", {"answers": {"lunch": 0, "nope": 1}}, "!bad_params"),
        ("c", "respond", {"answers": {"lunch": 0, "note": "y" * 501}}, "!bad_params"),
        ("out", "respond", {"answers": {"lunch": 0}}, "!not_member"),
        ("b", "close", {}, "!not_allowed"),
        ("a", "close", {}, "closed"),
        ("c", "respond", {"answers": {"lunch": 0}}, "!closed"),
    ]),
    ("survey final responses", "survey@1", {"final": True, "questions": [
        {"kind": "text", "prompt": "Why?"},
    ]}, [
        ("b", "respond", {"answers": {"q1": "because"}}, "open"),
        ("b", "respond", {"answers": {"q1": "changed"}}, "!already_responded"),
        ("system", "close", {}, "closed"),
    ]),
    # --- task --------------------------------------------------------------------------------
    ("task happy path", "task@1", {"assignees": ["b"]}, [
        ("c", "accept", {}, "!not_allowed"),
        ("b", "complete", {}, "!not_now"),
        ("b", "accept", {}, "doing"),
        ("b", "accept", {}, "!already_accepted"),
        ("b", "block", {"reason": "waiting for keys"}, "blocked"),
        ("b", "complete", {}, "!not_now"),
        ("b", "unblock", {}, "doing"),
        ("b", "complete", {}, "done"),
        ("a", "reassign", {"assignees": ["c"]}, "!closed"),
    ]),
    ("task decline and reassign", "task@1", {"assignees": ["b", "c"]}, [
        ("b", "decline", {}, "todo"),
        ("b", "decline", {}, "!already_declined"),
        ("c", "decline", {}, "declined"),
        ("b", "reassign", {"assignees": ["d"]}, "!not_allowed"),
        ("a", "reassign", {"assignees": []}, "!bad_params"),
        ("a", "reassign", {"assignees": ["d"]}, "todo"),
        ("b", "accept", {}, "!not_allowed"),
        ("d", "accept", {}, "doing"),
        ("system", "due", {}, "doing"),
        ("d", "complete", {}, "done"),
    ]),
    ("task cancel", "task@1", {"assignees": ["b"]}, [
        ("b", "cancel", {}, "!not_allowed"),
        ("a", "cancel", {}, "cancelled"),
        ("b", "accept", {}, "!closed"),
        ("system", "due", {}, "!closed"),
    ]),
    # --- vote --------------------------------------------------------------------------------
    ("vote single choice with revote", "vote@1", {"options": ["x", "y", "z"]}, [
        ("b", "vote", {"options": [0]}, "open"),
        ("b", "vote", {"option": 2}, "open"),
        ("c", "vote", {"options": [0, 1]}, "!bad_params"),
        ("c", "vote", {"options": [3]}, "!bad_params"),
        ("c", "vote", {"options": []}, "!bad_params"),
        ("c", "vote", {"options": ["0"]}, "!bad_params"),
        ("out", "vote", {"options": [0]}, "!not_member"),
        ("b", "close", {}, "!not_allowed"),
        ("a", "close", {}, "closed"),
        ("c", "vote", {"options": [0]}, "!closed"),
    ]),
    ("vote without revote, multiple choice", "vote@1", {
        "options": ["x", "y", "z"], "multiple": True, "max_selections": 2, "revote": False,
    }, [
        ("b", "vote", {"options": [0, 1, 2]}, "!bad_params"),
        ("b", "vote", {"options": [0, 0]}, "!bad_params"),
        ("b", "vote", {"options": [2, 0]}, "open"),
        ("b", "vote", {"options": [1]}, "!already_voted"),
        ("system", "close", {}, "closed"),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tag", "card", "steps"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_transitions_and_guards(tag: str, card: dict[str, Any], steps: Steps) -> None:
    sim = Sim.of(tag, "a", MEMBERS, **card)
    for n, (uid, action, params, expected) in enumerate(steps):
        before = sim.state
        got = outcome(sim.act(uid, action, params), sim)
        assert got == expected, f"step {n}: {uid} {action} {params}"
        if expected.startswith("!"):
            assert sim.state == before, f"step {n}: a refusal changed the state"


def test_a_refusal_has_the_result_the_guard_order_gives() -> None:
    sim = Sim.of("approval@1", "a", MEMBERS, approvers=["b"])
    results = {
        "unknown": sim.act("b", "nope").result,
        "who": sim.act("x", "approve").result,
        "member": sim.act("out", "approve").result,
        "params": sim.act("b", "approve", {"comment": []}).result,
    }
    assert results == {
        "unknown": Result.INVALID,
        "who": Result.FORBIDDEN,
        "member": Result.FORBIDDEN,
        "params": Result.INVALID,
    }
    sim.act("b", "approve")
    assert sim.act("b", "reject").result is Result.CONFLICT


def test_approval_data_and_tallies() -> None:
    sim = Sim.of("approval@1", "a", MEMBERS, approvers=["b", "c"], mode="all")
    sim.act("b", "approve", {"comment": "fine"}, now=NOW + 5)
    assert sim.card.data["decisions"] == [["b", "approve", "fine", NOW + 5]]
    assert sim.state.status == sim.card.status == "pending"


def test_vote_tallies_follow_revotes() -> None:
    sim = Sim.of("vote@1", "a", MEMBERS, options=["x", "y", "z"], multiple=True)
    sim.act("b", "vote", {"options": [0, 1]})
    sim.act("c", "vote", {"options": [1]})
    sim.act("b", "vote", {"options": [2]})
    assert dict(sim.card.data) == {"tallies": [0, 1, 1], "voters": 2}
    ballots = {k: dict(r.value) for k, r in sim.records.items()}
    assert ballots == {"b:b": {"o": [2]}, "b:c": {"o": [1]}, "o2:b": {}, "o1:c": {}}


def test_a_ballot_changes_the_aggregate_by_a_few_bytes_whatever_the_voters() -> None:
    members = {f"m{i:05d}" for i in range(3000)} | {"a"}
    sim = Sim.of("vote@1", "a", members, options=["x", "y", "z"])
    sizes = []
    for n, uid in enumerate(sorted(members - {"a"})):
        sim.act(uid, "vote", {"options": [n % 3]})
        sizes.append(len(json.dumps(dict(sim.state.extra))))
    assert sim.card.data["voters"] == 3000 and sim.card.data["tallies"] == [1000] * 3
    assert sizes[-1] - sizes[9] <= 32, "only numbers grow (digits), no list of voters"


def test_anonymous_ballots_are_stored_under_the_key_not_the_uid() -> None:
    sim = Sim.of("vote@1", "a", {"voter-bob"}, options=["x", "y"], anonymous=True)
    sim.act("voter-bob", "vote", {"options": [1]}, key="k-7f3a")
    assert {k: dict(r.value) for k, r in sim.records.items()} == {"b:k-7f3a": {"o": [1]}}
    assert "voter-bob" not in str(sim.state) and "voter-bob" not in str(sim.records)


def test_ballots_of_an_older_version_move_into_records_on_the_next_ballot() -> None:
    sim = Sim.of("vote@1", "a", MEMBERS, options=["x", "y", "z"], revote=False)
    card = sim.card.to_json()
    card["data"] = {"ballots": "b 0\nc 1,2\n", "tallies": [1, 1, 1], "voters": 2}
    sim.state = replace(sim.state, fields=replace(sim.state.fields, extra={"card": card}))
    assert outcome(sim.act("b", "vote", {"options": [1]}), sim) == "!already_voted"
    assert outcome(sim.act("d", "vote", {"options": [2]}), sim) == "open"
    assert dict(sim.card.data) == {"tallies": [1, 1, 2], "voters": 3}
    assert {k: dict(r.value) for k, r in sim.records.items() if k.startswith("b:")} == {
        "b:b": {"o": [0]},
        "b:c": {"o": [1, 2]},
        "b:d": {"o": [2]},
    }
    assert outcome(sim.act("c", "vote", {"options": [0]}), sim) == "!already_voted"


def test_task_due_flags_overdue_without_ending_the_task() -> None:
    sim = Sim.of("task@1", "a", MEMBERS, assignees=["b"], due=NOW + 10)
    assert outcome(sim.act("system", "due", now=NOW + 11), sim) == "todo"
    assert sim.card.data["overdue"] is True
    assert outcome(sim.act("b", "accept", now=NOW + 12), sim) == "doing"


def test_a_passed_deadline_ends_user_actions_before_the_server_moves() -> None:
    sim = Sim.of("vote@1", "a", MEMBERS, options=["x", "y"], closes_at=NOW + 10)
    assert outcome(sim.act("b", "vote", {"options": [0]}, now=NOW + 9), sim) == "open"
    assert outcome(sim.act("c", "vote", {"options": [0]}, now=NOW + 10), sim) == "!expired"
    assert outcome(sim.act("a", "close", now=NOW + 10), sim) == "!expired"
    assert outcome(sim.act("system", "close", now=NOW + 10), sim) == "closed"


def test_stale_base_version_needs_confirm_only_when_a_watched_facet_changed() -> None:
    sim = Sim.of("task@1", "a", MEMBERS, assignees=["b", "c"])
    seen = sim.state.version
    assert outcome(sim.act("a", "reassign", {"assignees": ["b", "d"]}), sim) == "todo"
    stale = sim.act("b", "accept", base=seen)
    assert (stale.result, stale.code) == (Result.CONFLICT, "stale")
    assert outcome(sim.act("b", "accept", base=seen, confirm=True), sim) == "doing"
    fresh = sim.state.version
    assert outcome(sim.act("d", "accept", base=fresh), sim) == "doing"
    # An unrelated change (another assignee accepting) does not make b's click stale.
    sim2 = Sim.of("vote@1", "a", MEMBERS, options=["x", "y"])
    seen = sim2.state.version
    sim2.act("b", "vote", {"options": [0]})
    assert outcome(sim2.act("c", "vote", {"options": [1]}, base=seen), sim2) == "open"


def test_an_illegal_action_on_a_stale_base_is_a_plain_conflict() -> None:
    sim = Sim.of("approval@1", "a", MEMBERS, approvers=["b", "c"])
    seen = sim.state.version
    sim.act("b", "approve")
    lost = sim.act("c", "approve", base=seen, confirm=True)
    assert (lost.result, lost.code) == (Result.CONFLICT, "closed")


def test_base_version_ahead_and_revoked_messages_are_refused() -> None:
    sim = Sim.of("vote@1", "a", MEMBERS, options=["x", "y"])
    assert outcome(sim.act("b", "vote", {"options": [0]}, base=99), sim) == "!bad_base_version"


def test_the_card_state_limit_is_enforced_inside_the_decision() -> None:
    sim = Sim.of("approval@1", "a", MEMBERS, approvers=["b", "c", "d"], mode="all")
    size = len(encode(dict(sim.state.extra)).encode())
    base, roles = sim.state.version, sim.roles("b")
    inp = ActionInput("approve", {"comment": "x" * 500}, base, False, "b", "b", roles, NOW)
    refused = action_mutate(sim.ctype, sim.definition, inp, size + 100)(sim.state)
    assert refused.result is Result.INVALID and refused.code == "too_large"
    applied = action_mutate(sim.ctype, sim.definition, inp, size + 2000)(sim.state)
    assert applied.result is Result.APPLIED


def test_a_survey_has_no_cap_below_the_group_size() -> None:
    """4,000 long text answers: each a record, the synced state only counts."""
    members = {f"m{i}" for i in range(4000)}
    questions = [
        {"id": "q", "kind": "text", "prompt": "?", "max_length": 2000},
        {"id": "c", "kind": "single", "prompt": "?", "options": ["x", "y"]},
    ]
    sim = Sim.of("survey@1", "a", members, questions=questions)
    for i in range(4000):
        d = sim.act(f"m{i}", "respond", {"answers": {"q": "x" * 2000, "c": i % 2}})
        assert outcome(d, sim) == "open"
    assert dict(sim.card.data) == {"counts": [[], [2000, 2000]], "respondents": 4000}
    assert len(json.dumps(dict(sim.state.extra))) < 300
    assert dict(sim.records["r:m7"].value) == {"a": ["x" * 2000, [1]], "at": NOW}


def test_survey_counts_follow_edited_responses() -> None:
    questions = [{"id": "m", "kind": "multiple", "prompt": "?", "options": ["x", "y", "z"]}]
    sim = Sim.of("survey@1", "a", MEMBERS, questions=questions)
    sim.act("b", "respond", {"answers": {"m": [0, 1]}})
    sim.act("c", "respond", {"answers": {"m": [1]}})
    sim.act("b", "respond", {"answers": {"m": [2]}})
    assert dict(sim.card.data) == {"counts": [[0, 1, 1]], "respondents": 2}


def test_responses_of_an_older_version_move_into_records_on_the_next_response() -> None:
    questions = [{"id": "m", "kind": "single", "prompt": "?", "options": ["x", "y"]}]
    sim = Sim.of("survey@1", "a", MEMBERS, questions=questions, final=True)
    card = sim.card.to_json()
    card["data"] = {"responses": [["b", [[0]], 5], ["c", [[1]], 6]], "respondents": 2}
    sim.state = replace(sim.state, fields=replace(sim.state.fields, extra={"card": card}))
    assert outcome(sim.act("b", "respond", {"answers": {"m": 1}}), sim) == "!already_responded"
    assert outcome(sim.act("d", "respond", {"answers": {"m": 1}}), sim) == "open"
    assert dict(sim.card.data) == {"counts": [[1, 2]], "respondents": 3}
    assert {k: dict(r.value) for k, r in sim.records.items()} == {
        "r:b": {"a": [[0]], "at": 5},
        "r:c": {"a": [[1]], "at": 6},
        "r:d": {"a": [[1]], "at": NOW},
    }
    assert outcome(sim.act("c", "respond", {"answers": {"m": 0}}), sim) == "!already_responded"


def test_a_vote_has_no_cap_below_the_group_size() -> None:
    options = [f"option {i}" for i in range(50)]
    members = {f"m{i}" for i in range(4000)}
    sim = Sim.of("vote@1", "a", members, options=options, multiple=True)
    for i in range(4000):
        assert outcome(sim.act(f"m{i}", "vote", {"options": list(range(50))}), sim) == "open"
    assert sim.card.data["tallies"] == [4000] * 50


def test_machine_tables_are_checked_when_declared() -> None:
    def stay(_: Any) -> Step:
        return Step("done", {})

    t = Transition(frozenset({Role.MEMBER}), frozenset({"done"}), stay)
    with pytest.raises(CardBug):
        Machine("open", frozenset({"done"}), {"go": ActionInfo("Go")}, {("done", "go"): t})
    with pytest.raises(CardBug):
        Machine("open", frozenset(), {}, {("open", "go"): t})


def test_an_effect_leaving_its_targets_is_a_bug() -> None:
    from magpie.cards.machine import Request, evaluate
    from magpie.cards.model import Act

    t = Transition(frozenset({Role.MEMBER}), frozenset({"open"}), lambda _: Step("gone", {}))
    m = Machine("open", frozenset(), {"go": ActionInfo("Go")}, {("open", "go"): t})
    act = Act(None, "open", {}, "u", "u", frozenset({Role.MEMBER}), None, NOW)
    with pytest.raises(CardBug):
        evaluate(m, act, Request("go", {}))


def test_every_declared_status_is_reachable_and_terminal_ones_are_final() -> None:
    from tests.cards.support import TYPES

    for tag in TYPES.tags():
        ctype = TYPES.get(tag)
        assert ctype is not None
        machine = ctype.machine
        reachable = {machine.initial}
        for _ in range(len(machine.statuses)):
            for (status, _a), t in machine.table.items():
                if status in reachable:
                    reachable |= t.targets
        assert reachable == machine.statuses, tag
        assert machine.terminal <= machine.statuses and machine.terminal, tag

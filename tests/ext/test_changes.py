"""The decision builders: pure functions of the current state."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from magpie.domain.ext import Actor, Decision, ExtState, Fields, Result
from magpie.errors import BadRequest, PayloadTooLarge
from magpie.ext.changes import MAX_STATUS_LENGTH, FieldChange, cas, edit, lww, revoke
from magpie.ext.patch import PatchLimits

LIMITS = PatchLimits(max_patch_bytes=1000, max_extra_bytes=1000, max_keys=3, max_depth=3)


def state(version: int = 0, updated_at: int = 0, uid: str = "", **fields: Any) -> ExtState:
    return ExtState(1, "g1", 2, 1, Fields(**fields), version, version, updated_at, Actor(uid, "d"))


def test_cas_applies_only_on_the_expected_version() -> None:
    change = FieldChange(status="open", extra_patch={"a": 1, "b": None}, readed_count=4)
    current = state(2, extra={"b": 2, "c": 3})
    decision = cas(change, 2, LIMITS)(current)
    assert decision.result is Result.APPLIED and decision.fields is not None
    assert decision.fields.status == "open" and dict(decision.fields.extra) == {"a": 1, "c": 3}
    assert (decision.fields.readed_count, decision.base_version) == (4, 2)
    assert decision.updated_at is None, "stamped by the service"
    lost = cas(change, 1, LIMITS)(current)
    assert (lost.result, lost.base_version, lost.code) == (Result.CONFLICT, 1, "conflict")
    assert "current version is 2" in lost.detail


def test_a_change_over_the_key_limit_is_invalid() -> None:
    full = state(1, extra={"a": 1, "b": 2})
    assert cas(FieldChange(extra_patch={"c": 3}), 1, LIMITS)(full).result is Result.APPLIED
    over = cas(FieldChange(extra_patch={"c": 3, "d": 4}), 1, LIMITS)(full)
    assert (over.result, over.code, over.base_version) == (Result.INVALID, "too_large", 1)
    swap = cas(FieldChange(extra_patch={"a": None, "c": 3, "d": 4}), 1, LIMITS)(full)
    assert swap.result is Result.APPLIED, "keys are counted after the patch"


def test_lww_compares_hlc_then_actor() -> None:
    current = state(3, updated_at=100, uid="m")
    change = FieldChange(status="x")
    newer = lww(change, 101, Actor("a", "d"), LIMITS)(current)
    assert (newer.result, newer.updated_at) == (Result.APPLIED, 101)
    older = lww(change, 99, Actor("z", "d"), LIMITS)(current)
    assert (older.result, older.code) == (Result.STALE, "stale")
    assert lww(change, 100, Actor("n", "d"), LIMITS)(current).result is Result.APPLIED
    assert lww(change, 100, Actor("a", "d"), LIMITS)(current).result is Result.STALE
    assert lww(change, 100, Actor("m", "d"), LIMITS)(current).result is Result.STALE, "a repeat"
    stamped = lww(change, None, Actor("a", "d"), LIMITS)(current)
    assert (stamped.result, stamped.updated_at) == (Result.APPLIED, None)


def test_revoke_once_and_no_edit_after_revoke() -> None:
    done = revoke("bob")(state())
    assert done.fields is not None and (done.fields.revoke, done.fields.revoker) == (True, "bob")
    revoked = state(1, revoke=True, revoker="bob")
    again = revoke("eve")(revoked)
    assert (again.result, again.code) == (Result.INVALID, "revoked")
    edited = edit({"type": 1, "content": "new"}, 1234)(state(1, status="keep"))
    assert edited.fields is not None
    assert (edited.fields.content_edit, edited.fields.edited_at, edited.fields.status) == (
        {"type": 1, "content": "new"},
        1234,
        "keep",
    )
    assert edit({"type": 1}, 1)(revoked).result is Result.INVALID


def test_mutate_functions_are_pure() -> None:
    current = state(2, extra={"a": {"b": 1}})
    mutate = cas(FieldChange(extra_patch={"a": {"c": 2}}), 2, LIMITS)
    assert mutate(current) == mutate(current)
    assert dict(current.extra) == {"a": {"b": 1}}


def test_field_change_validation_at_n_and_n_plus_1() -> None:
    ok = FieldChange(status="s" * MAX_STATUS_LENGTH)
    assert ok.validated(LIMITS) == ok
    with pytest.raises(BadRequest):
        FieldChange(status="s" * (MAX_STATUS_LENGTH + 1)).validated(LIMITS)
    with pytest.raises(BadRequest):
        FieldChange().validated(LIMITS)
    with pytest.raises(BadRequest):
        FieldChange(readed_count=-1).validated(LIMITS)
    with pytest.raises(PayloadTooLarge):
        FieldChange(extra_patch={"k": "x" * 1000}).validated(LIMITS)
    assert FieldChange(status="", readed_count=0).as_log() == {"status": "", "readed_count": 0}


def test_decision_constructors() -> None:
    with pytest.raises(ValueError):
        Decision.rejected(Result.APPLIED, "no")
    forbidden = Decision.rejected(Result.FORBIDDEN, "not yours")
    assert (forbidden.code, forbidden.fields) == ("forbidden", None)
    assert replace(forbidden, detail="x").detail == "x"

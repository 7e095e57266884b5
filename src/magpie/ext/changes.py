"""Builders of the common :data:`~magpie.domain.ext.Mutate` functions: compare-and-set and
last-writer-wins changes of the business fields, revoke, and edit.

Each builder validates what it can without the current state and returns a pure function of
the state (it runs inside the store transaction, so it may be re-run). Rules:

* **CAS** (:func:`cas`): applies only when the current ``version`` equals
  ``expected_version``; otherwise *conflict*. With one writer transaction at a time, exactly
  one change wins per version (I6).
* **LWW** (:func:`lww`): a caller-supplied ``updated_at`` (an HLC value) applies only when
  ``(updated_at, uid, device)`` is greater than the current ``(updated_at, updated_by)``;
  otherwise *stale* and nothing changes. The tie-break on the actor makes the winner
  independent of arrival order, so replicas that see the same writes in any order converge
  on the greatest. LWW is per message: a write replaces what it names (``status``, the keys
  of its patch) and loses entirely when older, so writers should send whole values for the
  keys they own. Without ``updated_at`` the server stamps the change after the current state
  (HLC receive rule), so it applies.
* **revoke** / **edit**: set the standard fields (spec §5); a revoked message can be neither
  revoked again nor edited (*invalid*).

Any change whose resulting ``extra`` breaks a limit (:mod:`magpie.ext.patch`) is *invalid*
with code ``too_large`` or ``invalid``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from magpie.domain.ext import Actor, Decision, ExtState, Fields, Mutate, Result
from magpie.errors import BadRequest
from magpie.ext.patch import PatchLimits, check_patch, document_problem, merge_patch

__all__ = ["MAX_STATUS_LENGTH", "FieldChange", "apply_change", "cas", "edit", "lww", "revoke"]

#: Longest business ``status`` string.
MAX_STATUS_LENGTH = 64


@dataclass(frozen=True, slots=True)
class FieldChange:
    """A change of the business fields; ``None`` leaves a field as it is. ``extra_patch`` is
    a JSON merge patch (RFC 7396) applied to ``extra``."""

    status: str | None = None
    extra_patch: Mapping[str, Any] | None = None
    readed_count: int | None = None

    def validated(self, limits: PatchLimits) -> FieldChange:
        """This change, checked: not empty, a short status, a patch within the limits
        (:class:`~magpie.errors.BadRequest` / :class:`~magpie.errors.PayloadTooLarge`)."""
        if self.status is None and self.extra_patch is None and self.readed_count is None:
            raise BadRequest("nothing to change: give status, extra_patch or readed_count")
        if self.status is not None and len(self.status) > MAX_STATUS_LENGTH:
            raise BadRequest(
                f"status must be at most {MAX_STATUS_LENGTH} characters", field="status"
            )
        if self.readed_count is not None and self.readed_count < 0:
            raise BadRequest("readed_count must not be negative", field="readed_count")
        if self.extra_patch is not None:
            return replace(self, extra_patch=check_patch(self.extra_patch, limits))
        return self

    def as_log(self) -> dict[str, Any]:
        """The change as the operation log records it (only the fields it sets)."""
        out: dict[str, Any] = {}
        if self.status is not None:
            out["status"] = self.status
        if self.extra_patch is not None:
            out["extra_patch"] = dict(self.extra_patch)
        if self.readed_count is not None:
            out["readed_count"] = self.readed_count
        return out


def apply_change(fields: Fields, change: FieldChange, limits: PatchLimits) -> Fields | Decision:
    """The fields after ``change``, or an *invalid* decision when ``extra`` would break a
    limit."""
    extra = fields.extra
    if change.extra_patch is not None:
        extra = merge_patch(fields.extra, change.extra_patch)
        problem = document_problem(extra, limits)
        if problem is not None:
            return Decision.rejected(Result.INVALID, problem[1], code=problem[0])
    return replace(
        fields,
        status=fields.status if change.status is None else change.status,
        extra=extra,
        readed_count=fields.readed_count if change.readed_count is None else change.readed_count,
    )


def cas(change: FieldChange, expected_version: int, limits: PatchLimits) -> Mutate:
    """Apply ``change`` only on ``expected_version`` (compare-and-set)."""

    def mutate(state: ExtState) -> Decision:
        if state.version != expected_version:
            detail = f"expected version {expected_version}, the current version is {state.version}"
            return Decision.rejected(Result.CONFLICT, detail, base_version=expected_version)
        new = apply_change(state.fields, change, limits)
        if isinstance(new, Decision):
            return replace(new, base_version=expected_version)
        return Decision.applied(new, base_version=expected_version)

    return mutate


def lww(change: FieldChange, updated_at: int | None, actor: Actor, limits: PatchLimits) -> Mutate:
    """Apply ``change`` if it is newer than the current state (last writer wins)."""

    def mutate(state: ExtState) -> Decision:
        if updated_at is not None:
            mine = (updated_at, actor.uid, actor.device)
            current = (state.updated_at, state.updated_by.uid, state.updated_by.device)
            if mine <= current:
                detail = f"updated_at {updated_at} is not after the current {state.updated_at}"
                return Decision.rejected(Result.STALE, detail)
        new = apply_change(state.fields, change, limits)
        if isinstance(new, Decision):
            return new
        return Decision.applied(new, updated_at=updated_at)

    return mutate


def revoke(revoker: str) -> Mutate:
    """Mark the message revoked by ``revoker``."""

    def mutate(state: ExtState) -> Decision:
        if state.fields.revoke:
            return Decision.rejected(Result.INVALID, "already revoked", code="revoked")
        return Decision.applied(replace(state.fields, revoke=True, revoker=revoker))

    return mutate


def edit(content_edit: Mapping[str, Any], edited_at: int) -> Mutate:
    """Replace the message's displayed content with ``content_edit`` (TSDD ``content_edit``,
    ``edited_at`` in unix seconds)."""

    def mutate(state: ExtState) -> Decision:
        if state.fields.revoke:
            return Decision.rejected(
                Result.INVALID, "a revoked message cannot be edited", code="revoked"
            )
        fields = replace(state.fields, content_edit=dict(content_edit), edited_at=edited_at)
        return Decision.applied(fields)

    return mutate

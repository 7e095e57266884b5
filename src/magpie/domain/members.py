"""Channel members and their roles (TangSengDaoDao's group member roles).

A member of a group has a role: :data:`MEMBER` (0), :data:`OWNER` (1) or :data:`ADMIN` (2).
Owners and admins are the channel's *admins*: they may mention everybody (``mention.all``) and
revoke anybody's message. The business server sets roles (``/channel/subscriber_role``); a
new member is a plain member. Person channels have no admins.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ADMIN", "MEMBER", "OWNER", "ROLES", "Member", "is_admin"]

#: A plain member.
MEMBER = 0
#: The channel's owner (creator).
OWNER = 1
#: An admin (manager).
ADMIN = 2
#: Every role.
ROLES = (MEMBER, OWNER, ADMIN)


@dataclass(frozen=True, slots=True)
class Member:
    """A channel member and their role."""

    uid: str
    role: int = MEMBER


def is_admin(role: int | None) -> bool:
    """Whether ``role`` (``None``: not a member) is an owner's or an admin's."""
    return role in (OWNER, ADMIN)

"""Online-only notices: CMDs that tell connected clients something happened (a member is
typing, a read position moved, reminders changed), never stored, queued or retried. A client
that was offline learns the state from the matching sync endpoint instead
(``docs/conversation.md``).

The CMDs go out through the same :data:`~magpie.ext.notify.CmdSender` as the extension
notifier's (the business send path, sync-once + no-persist, no red dot), built here as
:class:`~magpie.ext.notify.Cmd` values:

* :func:`to_channel` — every member of a group but the excluded ones;
* :func:`to_peer` — the other party of a person channel, seeing the channel as the sender's
  uid (the CMD is sent "from" the sender);
* :func:`to_self` — every connection of one user (the person channel ``uid@uid``).
"""

from __future__ import annotations

from collections.abc import Iterable

from magpie.domain.channels import PERSON
from magpie.ext.notify import Cmd

__all__ = [
    "SYNC_REMINDERS",
    "TYPING",
    "UNREAD_CLEAR",
    "to_channel",
    "to_peer",
    "to_self",
]

#: A member is typing (TangSengDaoDao's ``typing``).
TYPING = "typing"
#: The user's read position of a conversation moved (TangSengDaoDao's ``unreadClear``).
UNREAD_CLEAR = "unreadClear"
#: Reminders of the user were created or done (TangSengDaoDao's ``syncReminders``).
SYNC_REMINDERS = "syncReminders"


def to_channel(
    channel_id: str, channel_type: int, members: Iterable[str], payload: bytes
) -> Cmd | None:
    """An online-only CMD to ``members`` of a (non-person) channel; ``None`` when nobody is
    left to tell."""
    recipients = tuple(dict.fromkeys(members))
    if not recipients:
        return None
    return Cmd("", channel_id, channel_type, payload, False, recipients)


def to_peer(sender: str, peer: str, payload: bytes) -> Cmd:
    """An online-only CMD from ``sender`` to the other party of their person channel."""
    return Cmd(sender, peer, PERSON, payload, False, (peer,))


def to_self(uid: str, payload: bytes) -> Cmd:
    """An online-only CMD to every connection of ``uid``."""
    return Cmd(uid, uid, PERSON, payload, False, (uid,))

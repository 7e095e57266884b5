"""Reactions (``docs/conversation.md``, item 2): a member adds or removes an emoji on a
message, per (user, emoji), idempotently; every change takes the channel's next reaction
seq in its transaction (the store's :meth:`~magpie.store.interface.Store.react`), and after
the commit a coalesced, online-only ``syncMessageReaction`` CMD tells the channel
(:class:`~magpie.ext.notify.Notifier` with the ``seq`` announcement)."""

from __future__ import annotations

import time
from collections.abc import Callable

from magpie.domain.reactions import MAX_EMOJI_BYTES, emoji_problem
from magpie.errors import BadRequest, NotFound
from magpie.ext.notify import Announcement, Notifier
from magpie.ext.rejection import Invalid
from magpie.store.interface import ReactionChange, ReactionOutcome, Store

__all__ = ["REACTION_CMD", "Reactions", "TooManyEmoji"]

#: How the reaction CMD is called and names its version (TangSengDaoDao's name).
REACTION_CMD = Announcement("syncMessageReaction", "seq")


class TooManyEmoji(BadRequest):
    """A new emoji on a message that has the most distinct emoji allowed."""

    code = "too_many_emoji"


class Reactions:
    """Reaction changes over the store, with their CMDs. ``max_emoji`` is the most distinct
    live emoji on one message (``reaction_max_emoji``); ``clock`` is wall time in seconds."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        *,
        max_emoji: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.notifier = notifier
        self.max_emoji = max_emoji
        self._clock = clock

    async def react(self, uid: str, message_id: int, emoji: str, *, add: bool) -> ReactionOutcome:
        """Add or remove ``emoji`` of ``uid`` on the message (the caller checked that ``uid``
        may read it). 404 without such a message; 400 for a bad emoji, a revoked message
        (``invalid``, ``rejection: revoked``) or a new emoji beyond the limit
        (``too_many_emoji``)."""
        problem = emoji_problem(emoji, MAX_EMOJI_BYTES)
        if problem is not None:
            raise BadRequest(f"emoji {problem}", field="emoji")
        change = ReactionChange(message_id, uid, emoji, add, int(self._clock()), self.max_emoji)
        outcome = await self._store.react(change)
        if outcome is None:
            raise NotFound("no such message", field="message_id")
        if outcome.refused == "revoked":
            raise Invalid("a revoked message takes no reactions", rejection="revoked")
        if outcome.refused:
            raise TooManyEmoji(
                f"a message carries at most {self.max_emoji} different emoji", field="emoji"
            )
        if outcome.changed and outcome.row is not None:
            self.notifier.changed(
                outcome.channel_id, outcome.channel_type, outcome.row.seq, important=False
            )
        return outcome

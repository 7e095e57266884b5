"""The conversation features' services, built once per node by the composition root and
handed to the API as one value (``docs/conversation.md``)."""

from __future__ import annotations

from dataclasses import dataclass

from magpie.core.reactions import Reactions
from magpie.core.reading import Reading
from magpie.core.reminders import Reminders
from magpie.core.typing_notices import Typing
from magpie.files.service import Files

__all__ = ["Conversation"]


@dataclass(frozen=True, slots=True)
class Conversation:
    """The node's conversation services."""

    typing: Typing
    reactions: Reactions
    reading: Reading
    reminders: Reminders
    files: Files

    async def close(self) -> None:
        """Send the pending CMDs (at shutdown, while clients are still connected)."""
        await self.reactions.notifier.close()

"""The route table: every endpoint of the HTTP API, by area."""

from __future__ import annotations

from typing import Any

from magpie.api.endpoint import Endpoint
from magpie.api.routes import (
    admin,
    business,
    cards,
    channels,
    demo,
    ext,
    files,
    jobs,
    members,
    message_edits,
    messages,
    ops,
    reactions,
    reading,
    reminders,
    replies,
    search,
    sync,
    typing_notices,
    users,
)
from magpie.config import Settings

__all__ = ["all_endpoints"]


def all_endpoints(settings: Settings) -> list[Endpoint[Any]]:
    """Every endpoint but ``/openapi.json`` (which is built from this list)."""
    return [
        *users.endpoints(settings),
        *channels.endpoints(settings),
        *messages.endpoints(settings),
        *sync.endpoints(settings),
        *ext.endpoints(settings),
        *message_edits.endpoints(settings),
        *members.endpoints(settings),
        *typing_notices.endpoints(settings),
        *reactions.endpoints(settings),
        *reading.endpoints(settings),
        *reminders.endpoints(settings),
        *replies.endpoints(settings),
        *files.endpoints(settings),
        *search.endpoints(settings),
        *business.endpoints(settings),
        *cards.endpoints(settings),
        *ops.endpoints(settings),
        *jobs.endpoints(settings),
        *demo.endpoints(settings),
        *admin.endpoints(settings),
    ]

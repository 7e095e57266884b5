"""Interactive cards: the reference business service on top of message extensions.

A card is a message of content type :data:`~magpie.cards.model.CARD_CONTENT_TYPE` (3000)
whose payload carries an immutable definition (``card: {"type": "vote@1", ...}``) and a
plain-text ``content`` fallback, and whose extension carries the live state. Each card type
is a declared state machine (:mod:`~magpie.cards.machine`): statuses, actions, guards (who:
creator, admins, listed users, members, the server; when: open, before the deadline) and
terminal statuses.

Modules:

* :mod:`~magpie.cards.model` — value types; :mod:`~magpie.cards.machine` — transition tables
  and their evaluation; :mod:`~magpie.cards.fields` — input validation;
* :mod:`~magpie.cards.approval`, :mod:`~magpie.cards.survey`, :mod:`~magpie.cards.task`,
  :mod:`~magpie.cards.vote` — the four types (:mod:`~magpie.cards.cardtype` is their
  interface and registry);
* :mod:`~magpie.cards.decide` — the pure decisions run inside the extension transaction;
  :mod:`~magpie.cards.projection` — what one viewer sees;
* :mod:`~magpie.cards.port` — :class:`ImPort`, the only way the service talks to the IM (its
  in-process implementation lives in ``magpie.cards_adapter``; deadlines and the secret are
  the IM's durable jobs and shared values); :mod:`~magpie.cards.legacy` — the one-time
  import of an older version's ``cards.db``; :mod:`~magpie.cards.service` —
  :class:`CardService`.

``cards`` imports the shared vocabulary (``magpie.domain``) and this package only: never the
store, the IM core, the gateway or the API (import-linter contract in ``pyproject.toml``).
"""

from magpie.cards.approval import APPROVAL
from magpie.cards.cardtype import CardType, CardTypes
from magpie.cards.model import CARD_CONTENT_TYPE, STATE_KEY
from magpie.cards.port import Deadline, ImMessage, ImPort, Outgoing, Sent
from magpie.cards.service import ActionRequest, ActResult, CardService, CreateRequest
from magpie.cards.survey import SURVEY
from magpie.cards.task import TASK
from magpie.cards.vote import VOTE

__all__ = [
    "CARD_CONTENT_TYPE",
    "STATE_KEY",
    "ActResult",
    "ActionRequest",
    "CardService",
    "CardType",
    "CardTypes",
    "CreateRequest",
    "Deadline",
    "ImMessage",
    "ImPort",
    "Outgoing",
    "Sent",
    "default_types",
]


def default_types() -> CardTypes:
    """A registry of the four built-in types: approval, survey, task, vote (``@1``)."""
    return CardTypes([APPROVAL, SURVEY, TASK, VOTE])

"""The conversation features' rules on what a stored message says
(:class:`~magpie.core.messaging.ContentRules`; ``docs/conversation.md``).

* **Mentions** (item 4): ``mention: {"uids": [...], "all": 1}`` must be well formed (else the
  send is refused with reason 9, ``payload_decode_error``); ``all`` needs a group admin (role
  1 or 2) or the business API (else reason 11, ``not_allow_send``). Every mentioned member —
  every member but the sender for ``all`` — gets a reminder in the message's own transaction;
  mentioned uids that are not members get none. After the commit an online-only
  ``syncReminders`` CMD tells the reminded users.

A refusal raises :class:`~magpie.core.messaging.Refused` with the reason code the SENDACK (or
the HTTP API's 400 ``send_refused``) carries.
"""

from __future__ import annotations

import logging
from typing import Any

from magpie.core.access import AccessControl
from magpie.core.messaging import Checked, Refused, SendRequest
from magpie.core.notices import SYNC_REMINDERS, cmd_payload, to_channel, to_peer
from magpie.domain.channels import is_fake_id, peer_of
from magpie.domain.members import is_admin
from magpie.domain.reminders import MENTION, Mention, NewReminder, read_mention
from magpie.ext.notify import CmdSender
from magpie.protocol.packets import ReasonCode
from magpie.store.interface import StoredMessage

__all__ = ["Rules"]

log = logging.getLogger(__name__)

#: The text of a reminder (clients show their own words; TangSengDaoDao shows this).
MENTION_TEXT = "[@you]"
MENTION_ALL_TEXT = "[@all]"


class Rules:
    """The node's content rules, over its access decisions; CMDs go through ``send``."""

    def __init__(self, access: AccessControl, send: CmdSender) -> None:
        self._access = access
        self._send = send

    async def check(
        self,
        req: SendRequest,
        content: dict[str, Any],
        channel_id: str,
        recipients: tuple[str, ...],
    ) -> Checked:
        """Validate the message's mention; its reminders."""
        try:
            mention = read_mention(content)
        except ValueError as exc:
            raise Refused(ReasonCode.PAYLOAD_DECODE_ERROR, str(exc)) from None
        reminders: tuple[NewReminder, ...] = ()
        if mention is not None:
            reminders = await self._reminders(req, mention, channel_id, recipients)
        return Checked(req.payload, reminders)

    async def _reminders(
        self, req: SendRequest, mention: Mention, channel_id: str, recipients: tuple[str, ...]
    ) -> tuple[NewReminder, ...]:
        if mention.all and not req.from_api and not is_fake_id(channel_id, req.channel_type):
            role = await self._access.role(channel_id, req.channel_type, req.from_uid)
            if not is_admin(role):
                raise Refused(ReasonCode.NOT_ALLOW_SEND, "only group admins may mention everybody")
        others = [uid for uid in recipients if uid != req.from_uid]
        if mention.all:
            return tuple(NewReminder(uid, MENTION, MENTION_ALL_TEXT) for uid in others)
        named = set(mention.uids)
        return tuple(NewReminder(uid, MENTION, MENTION_TEXT) for uid in others if uid in named)

    async def committed(self, message: StoredMessage, checked: Checked) -> None:
        """Tell the reminded users (online only) to sync their reminders."""
        uids = [r.uid for r in checked.reminders]
        if not uids:
            return
        payload = cmd_payload(SYNC_REMINDERS, {})
        if is_fake_id(message.channel_id, message.channel_type):
            peer = peer_of(message.channel_id, message.from_uid)
            cmd = to_peer(message.from_uid, peer, payload)
        else:
            found = to_channel(message.channel_id, message.channel_type, uids, payload)
            if found is None:
                return
            cmd = found
        if not await self._send(cmd):
            log.info("syncReminders CMD refused")

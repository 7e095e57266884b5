"""The conversation features' rules on what a stored message says
(:class:`~magpie.core.messaging.ContentRules`; ``docs/conversation.md``).

* **Mentions** (item 4): ``mention: {"uids": [...], "all": 1}`` must be well formed (else the
  send is refused with reason 9, ``payload_decode_error``); ``all`` needs a group admin (role
  1 or 2) or the business API (else reason 11, ``not_allow_send``). Every mentioned member —
  every member but the sender for ``all`` — gets a reminder in the message's own transaction;
  mentioned uids that are not members get none. After the commit an online-only
  ``syncReminders`` CMD tells the reminded users.

* **Replies** (item 1): a ``reply`` must name a message of the same channel (and its seq and
  sender, when given) that is not revoked (else reason 9); the stored ``reply`` is rewritten
  with the quoted message's true sender and a preview of its current content (its edit, when
  edited), so a preview cannot be forged.

* **Files** (item 7): an image (type 2) or file (type 8) whose ``url`` names a Magpie file
  (``…/file/<file_id>``) must name an upload of the same channel (an image: an upload sniffed
  as an image), else reason 9; its ``size`` (and an image's ``width``/``height``) are set
  from the upload, and its ``name`` when the content has none.

A refusal raises :class:`~magpie.core.messaging.Refused` with the reason code the SENDACK (or
the HTTP API's 400 ``send_refused``) carries.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from magpie.core.access import AccessControl
from magpie.core.messaging import Checked, Refused, SendRequest
from magpie.core.notices import SYNC_REMINDERS, to_channel, to_peer
from magpie.domain.channels import is_fake_id, peer_of
from magpie.domain.content import FILE, IMAGE, cmd_payload, decode_content
from magpie.domain.members import is_admin
from magpie.domain.reminders import MENTION, Mention, NewReminder, read_mention
from magpie.domain.replies import preview, read_reply, reply_object
from magpie.ext.notify import CmdSender
from magpie.files.service import file_id_of
from magpie.protocol.packets import ReasonCode
from magpie.store.interface import Store, StoredMessage

__all__ = ["Rules"]

log = logging.getLogger(__name__)

#: The text of a reminder (clients show their own words; TangSengDaoDao shows this).
MENTION_TEXT = "[@you]"
MENTION_ALL_TEXT = "[@all]"


class Rules:
    """The node's content rules, over its access decisions; CMDs go through ``send``."""

    def __init__(self, access: AccessControl, store: Store, send: CmdSender) -> None:
        self._access = access
        self._store = store
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
        changed = False
        if "reply" in content:
            content, changed = await self._reply(content, channel_id, req.channel_type), True
        if content.get("type") in (IMAGE, FILE) and file_id_of(content.get("url")) is not None:
            content, changed = await self._file(content, channel_id, req.channel_type), True
        if not changed:
            return Checked(req.payload, reminders)
        payload = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
        return Checked(payload, reminders)

    async def _file(
        self, content: dict[str, Any], channel_id: str, channel_type: int
    ) -> dict[str, Any]:
        """``content`` with the facts of the upload its ``url`` names."""
        file_id = file_id_of(content.get("url")) or ""
        record = await self._store.get_file(file_id)
        here = record is not None and (record.channel_id, record.channel_type) == (
            channel_id,
            channel_type,
        )
        if record is None or not here:
            raise Refused(ReasonCode.PAYLOAD_DECODE_ERROR, "url: no such file in this channel")
        out = {**content, "size": record.size, "name": content.get("name") or record.name}
        if content.get("type") == IMAGE:
            if not record.content_type.startswith("image/"):
                raise Refused(ReasonCode.PAYLOAD_DECODE_ERROR, "url: the file is not an image")
            out |= {"width": record.width, "height": record.height}
        return out

    async def _reply(
        self, content: dict[str, Any], channel_id: str, channel_type: int
    ) -> dict[str, Any]:
        """``content`` with its ``reply`` checked and rewritten (see the module docstring)."""
        try:
            quote = read_reply(content)
        except ValueError as exc:
            raise Refused(ReasonCode.PAYLOAD_DECODE_ERROR, str(exc)) from None
        if quote is None:  # "reply": null
            return {k: v for k, v in content.items() if k != "reply"}
        quoted = await self._store.get_message(quote.message_id)
        if (
            quoted is None
            or quoted.message_seq <= 0
            or (quoted.channel_id, quoted.channel_type) != (channel_id, channel_type)
            or quote.message_seq not in (0, quoted.message_seq)
            or quote.from_uid not in ("", quoted.from_uid)
        ):
            raise Refused(ReasonCode.PAYLOAD_DECODE_ERROR, "reply: no such message here")
        ext = await self._store.get_ext(quoted.message_id)
        if ext is not None and ext.fields.revoke:
            raise Refused(ReasonCode.PAYLOAD_DECODE_ERROR, "reply: the message was revoked")
        shown = ext.fields.content_edit if ext is not None else None
        original = shown if shown is not None else decode_content(quoted.payload) or {}
        seq_quote = replace(quote, message_seq=quoted.message_seq)
        reply = reply_object(seq_quote, quoted.from_uid, preview(original))
        return {**content, "reply": reply}

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

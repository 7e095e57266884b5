"""Access decisions in one place: who is calling, who may read a channel, who may write to
it. The gateway (CONNECT, SEND) and the HTTP API (credentials, history, extension sync,
cards) ask these functions; neither decides on its own.

* **Tokens** are registered per ``(uid, device_flag)`` and stored as SHA-256 digests
  (:mod:`magpie.core.auth`); every comparison is constant-time. The business API key is
  compared in constant time too.
* **Reading** a channel: a person channel is always the caller's own (its visible id is the
  peer, the storage id is the fake id ``a@b``); another channel needs membership, unless the
  business server asks.
* **Membership** by storage id: the two parties of a person channel; the subscribers of
  another.
* **Writing** (the send flow, :func:`write_refusal`): a client must be a member
  of a non-person channel that is not banned; the business API may send to any channel that
  exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from magpie.core.auth import api_key_matches, hash_token, token_matches
from magpie.core.channels import validate_uid
from magpie.domain.channels import PERSON, fake_channel_id, is_fake_id, parties
from magpie.domain.members import MEMBER
from magpie.errors import BadRequest, Forbidden
from magpie.protocol.packets import ReasonCode
from magpie.store.interface import ChannelInfo, Store, TokenRow

__all__ = ["AccessControl", "Caller", "Credential", "write_refusal"]


@dataclass(frozen=True, slots=True)
class Credential:
    """A presented credential that is valid: the API key, or a token that ``uids``
    registered (for at least one device flag each)."""

    business: bool
    uids: frozenset[str]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: the business server (acting for ``uid``, possibly nobody),
    or the user ``uid``."""

    uid: str
    business: bool


class AccessControl:
    """The node's access decisions over its store and business API key."""

    def __init__(self, store: Store, api_key: str) -> None:
        self._store = store
        self._api_key = api_key

    # credentials ---------------------------------------------------------------------------

    def is_api_key(self, candidate: str) -> bool:
        """Whether ``candidate`` is the business API key (constant time)."""
        return api_key_matches(candidate, self._api_key)

    async def connect_token(self, uid: str, device_flag: int, token: str) -> TokenRow | None:
        """The token row of a CONNECT when ``token`` is ``uid``'s token for ``device_flag``;
        ``None`` otherwise."""
        row = await self._store.get_token(uid, device_flag)
        if row is None or not token_matches(token, row.token_hash):
            return None
        return row

    async def identify(self, presented: str) -> Credential | None:
        """What a presented credential is: the API key, or a token that some uids
        registered; ``None`` when it is neither. The token lookup is by SHA-256 digest, so
        its timing tells nothing useful about the token."""
        if self.is_api_key(presented):
            return Credential(business=True, uids=frozenset())
        rows = await self._store.find_tokens(hash_token(presented))
        if not rows:
            return None
        return Credential(business=False, uids=frozenset(row.uid for row in rows))

    # channels ------------------------------------------------------------------------------

    async def is_member(self, channel_id: str, channel_type: int, uid: str) -> bool:
        """Whether ``uid`` belongs to the channel stored as ``channel_id``: a party of a
        person channel (``a@b``), else a subscriber."""
        if channel_type == PERSON:
            return is_fake_id(channel_id, channel_type) and uid in parties(channel_id)
        return await self._store.is_subscriber(channel_id, channel_type, uid)

    async def role(self, channel_id: str, channel_type: int, uid: str) -> int | None:
        """The role of ``uid`` in the channel stored as ``channel_id``
        (:mod:`magpie.domain.members`): a party of a person channel is a plain member (person
        channels have no admins); ``None`` for a non-member."""
        if channel_type == PERSON:
            member = is_fake_id(channel_id, channel_type) and uid in parties(channel_id)
            return MEMBER if member else None
        return await self._store.get_role(channel_id, channel_type, uid)

    async def readable_channel(self, caller: Caller, channel_id: str, channel_type: int) -> str:
        """The storage id of the channel ``caller`` names, if they may read it (403
        :class:`~magpie.errors.Forbidden` otherwise): a person channel is always the caller's
        own (its id is the peer); other channels need membership, unless the business
        server asks."""
        if channel_type == PERSON:
            validate_uid(channel_id, "channel_id")
            if not caller.uid:
                raise BadRequest("login_uid is required for person channels", field="login_uid")
            return fake_channel_id(caller.uid, channel_id)
        if not caller.business:
            member = await self._store.is_subscriber(channel_id, channel_type, caller.uid)
            if not member:
                raise Forbidden("not a subscriber of this channel", field="channel_id")
        return channel_id


def write_refusal(
    info: ChannelInfo | None, members: list[str], sender: str, *, from_api: bool
) -> tuple[ReasonCode, str] | None:
    """Why ``sender`` may not send to this (non-person) channel, or ``None`` if they may;
    ``members`` are its subscribers. A client must be a member of a channel that exists and
    is not banned; the business API may send to any channel that exists."""
    if info is None:
        return ReasonCode.CHANNEL_NOT_EXIST, "no such channel"
    if info.ban and not from_api:
        return ReasonCode.BAN, "the channel is banned"
    if not from_api and sender not in members:
        return ReasonCode.SUBSCRIBER_NOT_EXIST, "the sender is not a member"
    return None

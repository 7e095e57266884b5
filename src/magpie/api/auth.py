"""Who is calling: the business server (API key) or one user (their token).

Credentials arrive as ``Authorization: Bearer <credential>`` or, as WuKongIM business servers
send them, a ``token: <credential>`` header.

* **Business endpoints** (:func:`require_business`) take only the API key, compared in constant
  time. No credential, or any other credential (a user token included), is 401
  ``unauthorized``.
* **User-or-business endpoints** (:func:`require_user`) also accept a user token. A token
  identifies a user only together with a uid — the store keeps token digests per
  ``(uid, device_flag)`` — so the body names the uid (``uid`` / ``login_uid``) and the token
  must match that uid's token for one of its device flags. No credential is 401
  ``unauthorized``; a credential that is neither the API key nor a token of the named uid is
  403 ``forbidden`` (a user asking about somebody else lands here).
* **Token-only endpoints** (:func:`require_user_or_token`, ``/message/extra/sync``, whose
  TangSengDaoDao body names no uid) also accept a user token *without* a uid: the token's
  digest is looked up, and it identifies its user when exactly one uid registered it. An
  unknown token is 401; a token registered by several uids needs the uid in the body (400).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from magpie.core.auth import api_key_matches, hash_token, token_matches
from magpie.errors import BadRequest, Forbidden, Unauthorized
from magpie.protocol.packets import DeviceFlag
from magpie.store.interface import Store

__all__ = [
    "Caller",
    "credential",
    "require_business",
    "require_credential",
    "require_user",
    "require_user_or_token",
]

_BEARER = "bearer "


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: the business server, or the user ``uid``."""

    uid: str
    business: bool


def credential(request: Request) -> str:
    """The presented credential, or ``""``."""
    header = request.headers.get("authorization", "")
    if header[: len(_BEARER)].lower() == _BEARER:
        return header[len(_BEARER) :].strip()
    return request.headers.get("token", "").strip()


def require_credential(request: Request) -> str:
    """The presented credential; 401 when there is none."""
    presented = credential(request)
    if not presented:
        raise Unauthorized("a credential is required (Authorization: Bearer …)")
    return presented


def require_business(request: Request, api_key: str) -> None:
    """Allow only the business API key (401 otherwise)."""
    if not api_key_matches(require_credential(request), api_key):
        raise Unauthorized("this endpoint requires the business API key")


async def require_user(
    request: Request, api_key: str, store: Store, uid: str, *, field: str = "uid"
) -> Caller:
    """The business server acting for ``uid``, or the user ``uid`` with a token of theirs.

    ``uid`` comes from the already validated body (its key is ``field``); an empty ``uid``
    is allowed only with the business key (the call is then on behalf of nobody)."""
    presented = require_credential(request)
    if api_key_matches(presented, api_key):
        return Caller(uid, business=True)
    if not uid:
        raise BadRequest(f"{field} is required with a user token", field=field)
    if await _is_token_of(store, uid, presented):
        return Caller(uid, business=False)
    raise Forbidden("the credential is not the API key nor a token of this uid")


async def require_user_or_token(
    request: Request, api_key: str, store: Store, uid: str, *, field: str = "uid"
) -> Caller:
    """Like :func:`require_user` when ``uid`` is given; without it, the business server (on
    behalf of nobody) or the one user whose token was presented. The lookup is by SHA-256
    digest, so its timing tells nothing useful about the token."""
    if uid:
        return await require_user(request, api_key, store, uid, field=field)
    presented = require_credential(request)
    if api_key_matches(presented, api_key):
        return Caller("", business=True)
    uids = sorted({row.uid for row in await store.find_tokens(hash_token(presented))})
    if not uids:
        raise Unauthorized("unknown credential")
    if len(uids) > 1:
        raise BadRequest(f"{field} is required: several users share this token", field=field)
    return Caller(uids[0], business=False)


async def _is_token_of(store: Store, uid: str, token: str) -> bool:
    """Whether ``token`` is registered for ``uid`` on any device flag (checks every flag, so
    the time taken does not tell which one matched)."""
    matched = False
    for flag in DeviceFlag:
        row = await store.get_token(uid, int(flag))
        if row is not None and token_matches(token, row.token_hash):
            matched = True
    return matched

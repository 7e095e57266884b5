"""Who is calling: the business server (API key) or one user (their token).

Credentials arrive as ``Authorization: Bearer <credential>`` or, as WuKongIM business servers
send them, a ``token: <credential>`` header.

* **Business endpoints** (:func:`require_business`) take only the API key, compared in constant
  time. No credential, or any other credential (a user token included), is 401
  ``unauthorized``.
* **User-or-business endpoints** (:func:`require_user`) also accept a user token. A token
  identifies a user only together with a uid — the store keeps token digests per
  ``(uid, device_flag)`` — so the body names the uid (``uid`` / ``login_uid``) and the token
  must match that uid's token for one of its device flags. No credential, or one that is
  neither the API key nor any user's token, is 401 ``unauthorized``; a valid token of
  another uid is 403 ``forbidden`` (a user asking about somebody else lands here).
* **Token-only endpoints** (:func:`require_user_or_token`, ``/message/extra/sync``, whose
  TangSengDaoDao body names no uid) also accept a user token *without* a uid: the token's
  digest is looked up, and it identifies its user when exactly one uid registered it. An
  unknown token is 401; a token registered by several uids needs the uid in the body (400).

The decisions are the core's (:class:`~magpie.core.access.AccessControl`); this module reads
the credential from the request, keeps the answer on it, and raises the HTTP errors.

**Order.** The credential is checked first: :func:`authenticate` runs before the input is
parsed, so a missing *or unknown* credential is 401 whatever the body holds (a caller
without a valid credential learns nothing about the input rules, and a malformed body with
a bad token is not 400). It looks the token's digest up once; the answer is kept on the
request for the handler's uid check.
"""

from __future__ import annotations

from starlette.requests import Request

from magpie.core.access import AccessControl, Caller, Credential
from magpie.errors import BadRequest, Forbidden, Unauthorized

__all__ = [
    "authenticate",
    "credential",
    "require_business",
    "require_credential",
    "require_user",
    "require_user_or_token",
]

_BEARER = "bearer "
#: Where :func:`authenticate` keeps its answer on ``request.state``.
_STATE_KEY = "magpie_credential"
_BUSINESS = Credential(business=True, uids=frozenset())


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


def require_business(request: Request, access: AccessControl) -> None:
    """Allow only the business API key (401 otherwise)."""
    if not access.is_api_key(require_credential(request)):
        raise Unauthorized("this endpoint requires the business API key")
    setattr(request.state, _STATE_KEY, _BUSINESS)


async def authenticate(request: Request, access: AccessControl) -> Credential:
    """The valid credential of ``request``: 401 when there is none or it is neither the API
    key nor a registered user token (:meth:`AccessControl.identify
    <magpie.core.access.AccessControl.identify>`); the answer is cached on the request."""
    cached = getattr(request.state, _STATE_KEY, None)
    if isinstance(cached, Credential):
        return cached
    found = await access.identify(require_credential(request))
    if found is None:
        raise Unauthorized("unknown credential")
    setattr(request.state, _STATE_KEY, found)
    return found


async def require_user(
    request: Request, access: AccessControl, uid: str, *, field: str = "uid"
) -> Caller:
    """The business server acting for ``uid``, or the user ``uid`` with a token of theirs.

    ``uid`` comes from the already validated body (its key is ``field``); an empty ``uid``
    is allowed only with the business key (the call is then on behalf of nobody)."""
    found = await authenticate(request, access)
    if found.business:
        return Caller(uid, business=True)
    if not uid:
        raise BadRequest(f"{field} is required with a user token", field=field)
    if uid in found.uids:
        return Caller(uid, business=False)
    raise Forbidden("the credential is not the API key nor a token of this uid")


async def require_user_or_token(
    request: Request, access: AccessControl, uid: str, *, field: str = "uid"
) -> Caller:
    """Like :func:`require_user` when ``uid`` is given; without it, the business server (on
    behalf of nobody) or the one user whose token was presented."""
    if uid:
        return await require_user(request, access, uid, field=field)
    found = await authenticate(request, access)
    if found.business:
        return Caller("", business=True)
    if len(found.uids) > 1:
        raise BadRequest(f"{field} is required: several users share this token", field=field)
    return Caller(next(iter(found.uids)), business=False)

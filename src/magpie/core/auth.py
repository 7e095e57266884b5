"""Credentials: user tokens (hashed at rest) and the business API key.

User tokens are registered by the business server with ``/user/token``; Magpie stores only a
SHA-256 digest and compares digests in constant time. The business API key is compared in
constant time too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["api_key_matches", "hash_token", "new_api_key", "token_matches"]


def hash_token(token: str) -> bytes:
    """The digest stored for ``token``."""
    return hashlib.sha256(token.encode()).digest()


def token_matches(token: str, stored_hash: bytes) -> bool:
    """Constant-time check of ``token`` against a stored digest."""
    return hmac.compare_digest(hash_token(token), stored_hash)


def api_key_matches(candidate: str, api_key: str) -> bool:
    """Constant-time check of a presented business API key."""
    return hmac.compare_digest(candidate.encode(), api_key.encode())


def new_api_key() -> str:
    """A fresh random business API key."""
    return secrets.token_urlsafe(32)

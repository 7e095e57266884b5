"""Checks shared by the security tests."""

from __future__ import annotations

import httpx

from tests.security.conftest import SECRET_TEXT, SECRET_TITLE, World

__all__ = ["assert_no_data"]

#: The keys an error answer may carry to an outsider: nothing about the resource.
ERROR_KEYS = frozenset({"status", "code", "msg", "field"})


def assert_no_data(world: World, response: httpx.Response) -> None:
    """``response`` is an error whose body is only ``{status, code, msg, field?}`` and names
    none of the seeded secrets or ids."""
    assert response.status_code >= 400, response.text
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) <= ERROR_KEYS, f"an outsider's answer carries data: {sorted(body)}"
    text = response.text
    for secret in (SECRET_TEXT, SECRET_TITLE, str(world.card_id), str(world.message_id)):
        assert secret not in text, f"{secret!r} leaked: {text}"

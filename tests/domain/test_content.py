"""The payload rule and the one encoding of a CMD's payload."""

from __future__ import annotations

import json

import pytest

from magpie.domain.content import CMD, check_content, cmd_payload, read_payload


def test_a_cmd_payload_is_compact_utf8_json_that_follows_the_payload_rule() -> None:
    payload = cmd_payload("cardEphemeral", {"text": "Sent to bob — ok", "n": 1})
    assert payload == (
        '{"type":99,"cmd":"cardEphemeral","param":{"text":"Sent to bob — ok","n":1}}'.encode()
    )
    content = read_payload(payload)
    assert content["type"] == CMD and json.loads(payload) == content


def test_the_param_is_copied_not_shared() -> None:
    param = {"seq": 1}
    payload = cmd_payload("syncMessageReaction", param)
    param["seq"] = 2
    assert read_payload(payload)["param"] == {"seq": 1}


@pytest.mark.parametrize("content", [[], "x", {"type": "1"}, {"type": True}, {}])
def test_content_without_an_integer_type_is_refused(content: object) -> None:
    with pytest.raises(ValueError):
        check_content(content)

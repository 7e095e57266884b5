"""The validating specs of ``magpie.api.schema`` (no server)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from magpie.api.schema import (
    AnyObject,
    Array,
    Base64,
    ChannelType,
    Field,
    Flag,
    Integer,
    Object,
    PerNode,
    String,
    Uid,
    request,
)
from magpie.config import load_settings
from magpie.errors import BadRequest, PayloadTooLarge


def test_integer_refuses_bools_floats_and_out_of_range() -> None:
    spec = Integer(0, 10)
    assert spec.parse(10, "n") == 10
    for bad in (True, 1.0, "1", 11, -1):
        with pytest.raises(BadRequest) as info:
            spec.parse(bad, "n")
        assert info.value.field == "n"


def test_flag_takes_0_1_and_bools() -> None:
    assert [Flag().parse(v, "f") for v in (0, 1, False, True)] == [0, 1, 0, 1]
    for bad in (2, -1, 1.0, "1"):
        with pytest.raises(BadRequest):
            Flag().parse(bad, "f")


def test_string_bounds() -> None:
    assert String(3, 1).parse("abc", "s") == "abc"
    for bad in ("", "abcd", 3):
        with pytest.raises(BadRequest):
            String(3, 1).parse(bad, "s")


def test_uid_allow_empty() -> None:
    assert Uid(allow_empty=True).parse("", "u") == ""
    with pytest.raises(BadRequest):
        Uid().parse("", "u")


def test_channel_type_exclude() -> None:
    assert ChannelType(exclude=(1,)).parse(2, "t") == 2
    with pytest.raises(BadRequest):
        ChannelType(exclude=(1,)).parse(1, "t")


def test_base64_limit_at_n_and_n_plus_1() -> None:
    spec = Base64(10)
    assert spec.parse(base64.b64encode(b"x" * 10).decode(), "p") == b"x" * 10
    with pytest.raises(PayloadTooLarge):
        spec.parse(base64.b64encode(b"x" * 11).decode(), "p")
    with pytest.raises(PayloadTooLarge):  # refused before decoding
        spec.parse("A" * 1000, "p")
    for bad in ("@@@@", "abc", 5):
        with pytest.raises(BadRequest):
            spec.parse(bad, "p")


def test_array_limit_and_item_paths() -> None:
    spec = Array(Integer(0, 5), 3, 1)
    assert spec.parse([1, 2, 3], "a") == [1, 2, 3]
    with pytest.raises(PayloadTooLarge):
        spec.parse([1, 2, 3, 4], "a")
    with pytest.raises(BadRequest):
        spec.parse([], "a")
    with pytest.raises(BadRequest) as info:
        spec.parse([1, 9], "a")
    assert info.value.field == "a[1]"


@request
class Point:
    x: int = Field(Integer(0, 9), doc="across")
    y: int = Field(Integer(0, 9), default=0)


@request
class Tagged(Point):
    tags: Sequence[str] = Field(Array(String(8), 4), default=())
    labels: dict[str, int] = Field(AnyObject(), default_factory=dict)
    size: bytes = Field(PerNode(lambda s: Base64(s.max_payload_bytes)), default=b"")


POINT = Object.of(Point)


def test_object_defaults_null_unknown_keys_and_nested_paths() -> None:
    assert POINT.parse({"x": 1, "zzz": "ignored"}, "") == Point(x=1, y=0)
    assert POINT.parse({"x": 1, "y": None}, "") == Point(x=1, y=0)
    with pytest.raises(BadRequest) as info:
        POINT.parse({"y": 1}, "p")
    assert info.value.field == "p.x"
    with pytest.raises(BadRequest) as info:
        POINT.parse([], "")
    assert info.value.field is None
    schema = POINT.schema()
    assert schema["required"] == ["x"] and schema["properties"]["y"]["default"] == 0


def test_the_request_class_is_the_single_declaration() -> None:
    """Field order, specs, defaults (factories too), docs and inherited fields all come from
    the class; a field whose spec depends on the settings is built from them."""
    spec = Object.of(Tagged, load_settings(environ={}, max_payload_bytes=3))
    assert [f.name for f in spec.fields] == ["x", "y", "tags", "labels", "size"]
    first, second = spec.parse({"x": 2}, ""), spec.parse({"x": 2}, "")
    assert first == Tagged(x=2, y=0, tags=(), labels={}, size=b"")
    assert first.labels is not second.labels, "a factory default is fresh per request"
    with pytest.raises(PayloadTooLarge):
        spec.parse({"x": 1, "size": base64.b64encode(b"1234").decode()}, "")
    schema = spec.schema()
    assert schema["required"] == ["x"]
    assert schema["properties"]["x"]["description"] == "across"
    assert schema["properties"]["tags"]["default"] == []
    assert "default" not in schema["properties"]["labels"]
    assert schema["properties"]["size"]["description"] == "≤ 3 bytes"
    with pytest.raises(TypeError, match="settings"):
        Object.of(Tagged)


def test_a_field_without_a_spec_is_refused() -> None:
    @dataclass(frozen=True)
    class Loose:
        x: int

    with pytest.raises(TypeError, match=r"Loose\.x is not declared with Field"):
        Object.of(Loose)

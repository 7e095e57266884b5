"""JSON merge patch (RFC 7396) and the extension limits, each at N and N+1."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from magpie.errors import BadRequest, PayloadTooLarge
from magpie.ext.patch import (
    PatchLimits,
    Shape,
    check_patch,
    document_problem,
    merge_patch,
    shape_of,
)

# RFC 7396 Appendix A: (target, patch, result)
RFC_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_CASES)
def test_rfc7396_appendix_a(target: Any, patch: Any, result: Any) -> None:
    before = (copy.deepcopy(target), copy.deepcopy(patch))
    assert merge_patch(target, patch) == result
    assert (target, patch) == before, "inputs are not modified"


def test_the_result_shares_no_list_with_the_patch() -> None:
    patch = {"a": [1, [2]]}
    out = merge_patch({}, patch)
    out["a"][1].append(3)
    assert patch == {"a": [1, [2]]}


def test_shape() -> None:
    assert shape_of({}) == Shape(size=2, keys=0, depth=1)
    value = {"a": {"b": [1, {"c": "é"}]}, "d": None}
    shape = shape_of(value)
    assert (shape.keys, shape.depth) == (4, 4)
    assert shape.size == len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    assert shape_of(5).depth == 0
    for bad in (float("nan"), float("inf"), "\ud800", {1: 2}, {"a": {"\ud800": 1}}, b"x", {3}):
        with pytest.raises(ValueError):
            shape_of(bad)


def nested(depth: int) -> dict[str, Any]:
    """An object nested ``depth`` deep."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def sized(n: int) -> dict[str, str]:
    """An object of exactly ``n`` bytes as compact JSON."""
    return {"k": "x" * (n - len('{"k":""}'))}


LIMITS = PatchLimits(max_patch_bytes=100, max_extra_bytes=200, max_keys=5, max_depth=3)


def test_patch_bytes_at_n_and_n_plus_1() -> None:
    assert check_patch(sized(100), LIMITS) == sized(100)
    with pytest.raises(PayloadTooLarge) as info:
        check_patch(sized(101), LIMITS)
    assert info.value.field == "extra_patch"


def test_patch_depth_at_n_and_n_plus_1() -> None:
    assert check_patch(nested(3), LIMITS) == nested(3)
    with pytest.raises(BadRequest):
        check_patch(nested(4), LIMITS)


def test_malformed_patches() -> None:
    for bad in ([], "x", None, {"a": float("nan")}, {"a": "\udfff"}):
        with pytest.raises(BadRequest) as info:
            check_patch(bad, LIMITS, "content_edit")
        assert info.value.field == "content_edit"


def test_document_limits_at_n_and_n_plus_1() -> None:
    assert document_problem({f"k{i}": i for i in range(5)}, LIMITS) is None
    assert document_problem({f"k{i}": i for i in range(6)}, LIMITS) == (
        "too_large",
        "extra would have 6 keys (limit 5)",
    )
    assert document_problem({"a": {"b": {"c": 1}}}, LIMITS) is None  # depth 3
    problem = document_problem({"a": {"b": {"c": {}}}}, LIMITS)
    assert problem is not None and problem[0] == "invalid"
    assert document_problem(sized(200), LIMITS) is None
    problem = document_problem(sized(201), LIMITS)
    assert problem is not None and problem[0] == "too_large"
    assert document_problem([], LIMITS) == ("invalid", "extra must be a JSON object")
    problem = document_problem({"x": float("inf")}, LIMITS)
    assert problem is not None and problem[0] == "invalid"

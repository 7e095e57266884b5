"""JSON merge patch (RFC 7396) and the size limits of extension documents.

Pure functions, no Magpie imports but the error tree. :func:`merge_patch` never mutates its
inputs. The limits (STYLE habit 2, each a named setting) bound what one change may carry and
what a message's ``extra`` may grow to, so a sync row stays small:

* ``max_patch_bytes``: a patch (or an edited content) as compact UTF-8 JSON;
* ``max_extra_bytes``: the resulting ``extra`` as compact UTF-8 JSON;
* ``max_keys``: keys of the resulting ``extra``, counted over every nested object;
* ``max_depth``: nesting of objects and arrays (``{}`` and ``[]`` are depth 1, a scalar 0).

Only JSON values are accepted: ``dict`` with ``str`` keys, ``list``, ``str`` (valid Unicode:
JSON ``\\ud800`` escapes decode to lone surrogates), ``int``, finite ``float``, ``bool``,
``None``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from magpie.errors import BadRequest, PayloadTooLarge

__all__ = [
    "PatchLimits",
    "Shape",
    "check_patch",
    "document_problem",
    "encode",
    "merge_patch",
    "shape_of",
]

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PatchLimits:
    """The extension size limits (``config.Settings.ext_*``)."""

    max_patch_bytes: int = 16 * 1024
    max_extra_bytes: int = 64 * 1024
    max_keys: int = 256
    max_depth: int = 8


@dataclass(frozen=True, slots=True)
class Shape:
    """What the limits measure of a JSON value."""

    size: int  # bytes of compact UTF-8 JSON
    keys: int  # keys of every nested object
    depth: int  # nesting of objects/arrays


def _mapping(value: object) -> dict[str, Any]:
    if isinstance(value, Mapping):  # e.g. a read-only MappingProxyType
        return dict(value)
    raise ValueError(f"{type(value).__name__} is not a JSON value")


def encode(value: object) -> str:
    """Compact JSON (``,`` and ``:`` without spaces, UTF-8 text, no NaN): the form that is
    measured and stored."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_mapping
    )


def _check_scalar(value: object) -> None:
    if isinstance(value, str):
        value.encode()  # raises UnicodeEncodeError (a ValueError) on lone surrogates
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite number")
    elif value is not None and not isinstance(value, int):  # bool is an int
        raise ValueError(f"{type(value).__name__} is not a JSON value")


def _children(value: object) -> list[object]:
    """The members of an object or array (checking object keys); ``[]`` for a scalar."""
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("object keys must be strings")
        for key in value:
            _check_scalar(key)
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    _check_scalar(value)
    return []


def shape_of(value: object) -> Shape:
    """Measure ``value``; :class:`ValueError` if it is not a JSON value. Iterative, so a
    deeply nested value cannot exhaust the stack."""
    keys, depth = 0, 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = _children(item)
        if isinstance(item, Mapping | list):
            depth = max(depth, level)
            keys += len(item) if isinstance(item, Mapping) else 0
            stack.extend((child, level + 1) for child in children)
    return Shape(len(encode(value).encode()), keys, depth)


def document_problem(value: object, limits: PatchLimits) -> tuple[str, str] | None:
    """``None`` when ``value`` is a JSON object within the ``extra`` limits, else
    ``(code, message)`` with code ``too_large`` or ``invalid``. For use inside a pure
    decision (:mod:`magpie.ext.changes`), which must not raise."""
    if not isinstance(value, Mapping):
        return "invalid", "extra must be a JSON object"
    try:
        shape = shape_of(value)
    except ValueError as exc:
        return "invalid", f"extra is not valid JSON: {exc}"
    if shape.keys > limits.max_keys:
        return "too_large", f"extra would have {shape.keys} keys (limit {limits.max_keys})"
    if shape.depth > limits.max_depth:
        return "invalid", f"extra would nest {shape.depth} deep (limit {limits.max_depth})"
    if shape.size > limits.max_extra_bytes:
        return "too_large", f"extra would be {shape.size} bytes (limit {limits.max_extra_bytes})"
    return None


def check_patch(patch: object, limits: PatchLimits, field: str = "extra_patch") -> JsonObject:
    """``patch`` (or another client-supplied object such as an edited content, named by
    ``field``) if it is a JSON object within ``max_patch_bytes`` and ``max_depth``;
    :class:`~magpie.errors.BadRequest` (malformed, too deep) or
    :class:`~magpie.errors.PayloadTooLarge` (too many bytes) otherwise."""
    if not isinstance(patch, Mapping):
        raise BadRequest(f"{field} must be a JSON object", field=field)
    try:
        shape = shape_of(patch)
    except ValueError as exc:
        raise BadRequest(f"{field} is not valid JSON: {exc}", field=field) from None
    if shape.size > limits.max_patch_bytes:
        raise PayloadTooLarge(
            f"{field} is {shape.size} bytes (limit {limits.max_patch_bytes})", field=field
        )
    if shape.depth > limits.max_depth:
        raise BadRequest(
            f"{field} nests {shape.depth} deep (limit {limits.max_depth})", field=field
        )
    return dict(patch)


def merge_patch(target: object, patch: object) -> Any:
    """RFC 7396 §2 ``MergePatch(target, patch)``, returning a new value.

    A non-object patch replaces the target; in an object patch, ``null`` removes a key and
    any other value is merged into the key recursively. Inputs are not modified."""
    if not isinstance(patch, Mapping):
        return _copy(patch)
    result: JsonObject = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _copy(value: object) -> Any:
    """A deep copy of a JSON value (so a result never shares lists with a patch)."""
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value

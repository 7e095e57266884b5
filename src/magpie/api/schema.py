"""Declarative request schemas: one declaration both validates bodies and documents them.

A :class:`Spec` turns an untrusted JSON value into a typed Python value or raises
:class:`~magpie.errors.BadRequest` naming the offending field (``header.red_dot``,
``subscribers[3]``), and describes itself as a JSON Schema for ``/openapi.json``.

A request body (or query) is declared once, as a :func:`request` class whose fields say
their spec, default and documentation with :func:`Field`::

    @request
    class TokenReq:
        uid: str = Field(Uid())
        device_flag: int = Field(Integer(0, 2), default=0, doc="0 app, 1 web, 2 pc")

:meth:`Object.of` derives the validating spec from the class, so the handler's typed value,
the validation and the OpenAPI document cannot drift apart (mypy checks that a field's spec
produces the field's type).

Conventions (compatible with WuKongIM's Go decoder, spec §6): unknown keys are ignored; JSON
``null`` counts as absent; booleans are not integers (``true`` is refused where a number is
expected) except for 0/1 flags, which accept both; byte fields are standard base64.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, dataclass_transform, overload

from magpie.core.channels import validate_channel_id, validate_channel_type, validate_uid
from magpie.domain.channels import CHANNEL_ID_PATTERN, MAX_ID_LENGTH, UID_PATTERN
from magpie.errors import BadRequest, PayloadTooLarge

if TYPE_CHECKING:
    from magpie.config import Settings

__all__ = [
    "AnyObject",
    "Array",
    "Base64",
    "ChannelId",
    "ChannelType",
    "Choice",
    "Field",
    "Flag",
    "IntOrString",
    "Integer",
    "Object",
    "PerNode",
    "Spec",
    "String",
    "Uid",
    "request",
]

T = TypeVar("T")
D = TypeVar("D")
C = TypeVar("C")
T_co = TypeVar("T_co", covariant=True)


class Spec(Protocol[T_co]):
    """Parses one JSON value; ``where`` is the field path used in error messages."""

    def parse(self, value: object, where: str) -> T_co:
        """The validated value, or :class:`BadRequest` naming ``where``."""
        ...

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of accepted values."""
        ...


def _bad(where: str, problem: str) -> BadRequest:
    """``BadRequest("<field> <problem>")`` naming the field (none for the whole body)."""
    return BadRequest(f"{where or 'body'} {problem}", field=where or None)


def _utf8(value: str, where: str) -> str:
    """``value`` if it encodes as UTF-8: JSON ``\\ud800`` escapes decode to lone surrogates,
    which no store, hash or response could encode later."""
    if value.isascii():  # the common case, and much cheaper than encoding
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        raise _bad(where, "is not valid Unicode") from None
    return value


def _too_large(where: str, problem: str) -> PayloadTooLarge:
    """``PayloadTooLarge`` (413) naming the field."""
    return PayloadTooLarge(f"{where or 'body'} {problem}", field=where or None)


@dataclass(frozen=True, slots=True)
class Integer:
    """An integer in ``[minimum, maximum]`` (booleans refused)."""

    minimum: int = 0
    maximum: int = 2**63 - 1

    def parse(self, value: object, where: str) -> int:
        """The integer, range-checked."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(where, "must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise _bad(where, f"must be between {self.minimum} and {self.maximum}")
        return value

    def schema(self) -> dict[str, Any]:
        """``integer`` with bounds."""
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


_DECIMAL = re.compile(r"[0-9]{1,19}")  # ASCII digits only: int() also takes '٣'


@dataclass(frozen=True, slots=True)
class IntOrString:
    """An integer in ``[minimum, maximum]`` given as a JSON number or a decimal string:
    JavaScript cannot hold an int64 exactly, so ids (``message_idstr``, spec §4) and HLC
    values travel as strings too."""

    minimum: int = 1
    maximum: int = 2**63 - 1

    def parse(self, value: object, where: str) -> int:
        """The integer, range-checked."""
        if isinstance(value, str) and _DECIMAL.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(where, "must be an integer or a decimal string")
        if not self.minimum <= value <= self.maximum:
            raise _bad(where, f"must be between {self.minimum} and {self.maximum}")
        return value

    def schema(self) -> dict[str, Any]:
        """An integer, or a string of digits."""
        number = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        return {"oneOf": [number, {"type": "string", "pattern": "^[0-9]{1,19}$"}]}


@dataclass(frozen=True, slots=True)
class Choice:
    """One of a fixed set of strings."""

    options: tuple[str, ...]

    def parse(self, value: object, where: str) -> str:
        """The chosen option."""
        if not isinstance(value, str) or value not in self.options:
            raise _bad(where, f"must be one of {', '.join(self.options)}")
        return value

    def schema(self) -> dict[str, Any]:
        """A string enum."""
        return {"type": "string", "enum": list(self.options)}


@dataclass(frozen=True, slots=True)
class AnyObject:
    """Any JSON object (its content is checked by the service that uses it, e.g. the
    extension limits of ``magpie.ext.patch``; the request body limit bounds it here)."""

    description: str = ""

    def parse(self, value: object, where: str) -> dict[str, Any]:
        """The object."""
        if not isinstance(value, Mapping):
            raise _bad(where, "must be a JSON object")
        return dict(value)

    def schema(self) -> dict[str, Any]:
        """``object``."""
        out: dict[str, Any] = {"type": "object"}
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class Flag:
    """A WuKongIM 0/1 flag; ``true``/``false`` are accepted too. Parses to ``int``."""

    def parse(self, value: object, where: str) -> int:
        """0 or 1."""
        if isinstance(value, int) and value in (0, 1):  # bool is an int: True/False pass
            return int(value)
        raise _bad(where, "must be 0 or 1")

    def schema(self) -> dict[str, Any]:
        """``0|1`` (or a boolean)."""
        return {"oneOf": [{"type": "integer", "enum": [0, 1]}, {"type": "boolean"}]}


@dataclass(frozen=True, slots=True)
class String:
    """A string of at most ``max_length`` characters (``min_length`` at least)."""

    max_length: int
    min_length: int = 0

    def parse(self, value: object, where: str) -> str:
        """The string, length-checked."""
        if not isinstance(value, str):
            raise _bad(where, "must be a string")
        if not self.min_length <= len(value) <= self.max_length:
            raise _bad(where, f"must be {self.min_length}–{self.max_length} characters")
        return _utf8(value, where)

    def schema(self) -> dict[str, Any]:
        """``string`` with length bounds."""
        return {"type": "string", "minLength": self.min_length, "maxLength": self.max_length}


@dataclass(frozen=True, slots=True)
class _Checked:
    """A string validated by one of the core validators (which name the field);
    ``allow_empty`` also accepts ``""`` (e.g. a system message's empty ``from_uid``)."""

    check: Callable[[object, str], Any]
    description: str
    pattern: str
    allow_empty: bool = False

    def parse(self, value: object, where: str) -> str:
        """The validated string."""
        if self.allow_empty and value == "":
            return ""
        return _utf8(str(self.check(value, where)), where)

    def schema(self) -> dict[str, Any]:
        """``string`` with the rule in words."""
        low = 0 if self.allow_empty else 1
        pattern = f"^$|{self.pattern}" if self.allow_empty else self.pattern
        return {
            "type": "string",
            "minLength": low,
            "maxLength": MAX_ID_LENGTH,
            "pattern": pattern,
            "description": self.description,
        }


def Uid(*, allow_empty: bool = False) -> Spec[str]:
    """A user id (``magpie.domain.channels.uid_problem``)."""
    words = "user id: 1–128 visible ASCII characters, no '@'"
    return _Checked(validate_uid, words, UID_PATTERN, allow_empty)


def ChannelId() -> Spec[str]:
    """A channel id as the caller sees it (the peer uid for person channels)."""
    words = "channel id (the peer's uid for person channels): 1–128 visible ASCII characters"
    return _Checked(validate_channel_id, words, CHANNEL_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class ChannelType:
    """A WuKongIM channel type 1–12 (``exclude`` lists types this endpoint refuses)."""

    exclude: tuple[int, ...] = ()

    def parse(self, value: object, where: str) -> int:
        """The channel type."""
        kind = validate_channel_type(value, where)
        if kind in self.exclude:
            raise _bad(where, f"{kind} is not allowed here")
        return kind

    def schema(self) -> dict[str, Any]:
        """An ``integer`` enum."""
        allowed = [t for t in range(1, 13) if t not in self.exclude]
        return {"type": "integer", "enum": allowed}


@dataclass(frozen=True, slots=True)
class Base64:
    """Standard base64 decoding to at most ``max_bytes`` bytes (413 above it)."""

    max_bytes: int

    def parse(self, value: object, where: str) -> bytes:
        """The decoded bytes."""
        if not isinstance(value, str):
            raise _bad(where, "must be a base64 string")
        if len(value) > 4 * (self.max_bytes // 3 + 1):  # refuse before decoding
            raise _too_large(where, f"is above {self.max_bytes} bytes")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(where, "is not valid base64") from None
        if len(raw) > self.max_bytes:
            raise _too_large(where, f"is above {self.max_bytes} bytes")
        return raw

    def schema(self) -> dict[str, Any]:
        """``string`` in ``byte`` format."""
        return {"type": "string", "format": "byte", "description": f"≤ {self.max_bytes} bytes"}


@dataclass(frozen=True, slots=True)
class Array(Generic[T]):
    """A JSON array of ``item`` with at most ``max_items`` entries."""

    item: Spec[T]
    max_items: int
    min_items: int = 0

    def parse(self, value: object, where: str) -> list[T]:
        """The parsed items."""
        if not isinstance(value, list):
            raise _bad(where, "must be an array")
        if len(value) > self.max_items:
            raise _too_large(where, f"has more than {self.max_items} items")
        if len(value) < self.min_items:
            raise _bad(where, f"needs at least {self.min_items} items")
        return [self.item.parse(v, f"{where}[{i}]") for i, v in enumerate(value)]

    def schema(self) -> dict[str, Any]:
        """``array`` with item schema and size bounds."""
        return {
            "type": "array",
            "items": self.item.schema(),
            "minItems": self.min_items,
            "maxItems": self.max_items,
        }


_MISSING: Any = object()
#: Where :func:`Field` keeps a field's spec and documentation (``dataclasses.Field.metadata``).
_SPEC = "magpie.api.schema.spec"
_DOC = "magpie.api.schema.doc"


@dataclass(frozen=True, slots=True)
class PerNode(Generic[T]):
    """A field spec that depends on the node's settings (a limit that is a setting, such as
    the payload size): :meth:`Object.of` builds it from the settings it is given."""

    build: Callable[[Settings], Spec[T]]


@overload
def Field(spec: Spec[T] | PerNode[T], *, doc: str = "") -> T: ...


@overload
def Field(spec: Spec[T] | PerNode[T], *, default: D, doc: str = "") -> T | D: ...


@overload
def Field(
    spec: Spec[T] | PerNode[T], *, default_factory: Callable[[], D], doc: str = ""
) -> T | D: ...


def Field(
    spec: Spec[Any] | PerNode[Any],
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    doc: str = "",
) -> Any:
    """One field of a :func:`request` class: its spec, its default (none = required; JSON
    ``null`` counts as absent) and its documentation for the OpenAPI document."""
    metadata = {_SPEC: spec, _DOC: doc}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    if default is _MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(Field,))
def request(cls: type[C]) -> type[C]:
    """Make ``cls`` a request declaration: a frozen, slotted, keyword-only dataclass whose
    fields are declared with :func:`Field` (:meth:`Object.of` validates into it)."""
    return dataclass(frozen=True, slots=True, kw_only=True)(cls)


def _jsonable(value: object) -> bool:
    """Whether a default can be shown as-is in the JSON Schema."""
    return isinstance(value, str | int | float) or value == ()


@dataclass(frozen=True, slots=True)
class _Entry:
    """One object field as :class:`Object` uses it: name, spec, default, documentation."""

    name: str
    spec: Spec[Any]
    default: Any = _MISSING
    factory: Callable[[], Any] | None = None
    description: str = ""
    #: Whether the field must be present (and not ``null``); derived.
    required: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        required = self.default is _MISSING and self.factory is None
        object.__setattr__(self, "required", required)

    def absent(self) -> Any:
        """The value of an absent optional field."""
        return self.factory() if self.factory is not None else self.default


def _entries(kind: type[Any], settings: Settings | None) -> list[_Entry]:
    """The :class:`_Entry` of each field of the :func:`request` class ``kind``, in order."""
    entries = []
    for f in dataclasses.fields(kind):
        spec = f.metadata.get(_SPEC)
        if spec is None:
            raise TypeError(f"{kind.__name__}.{f.name} is not declared with Field()")
        if isinstance(spec, PerNode):
            if settings is None:
                raise TypeError(f"{kind.__name__}.{f.name} depends on the node's settings")
            spec = spec.build(settings)
        default = _MISSING if f.default is dataclasses.MISSING else f.default
        factory = None if f.default_factory is dataclasses.MISSING else f.default_factory
        entries.append(_Entry(f.name, spec, default, factory, f.metadata[_DOC]))
    return entries


@dataclass(frozen=True, slots=True)
class Object(Generic[T]):
    """A JSON object whose fields become keyword arguments of ``build`` (a :func:`request`
    class; build one with :meth:`of`)."""

    build: Callable[..., T]
    fields: Sequence[_Entry]

    @staticmethod
    def of(kind: type[C], settings: Settings | None = None) -> Object[C]:
        """The spec of the :func:`request` class ``kind``; ``settings`` builds its
        :class:`PerNode` fields."""
        return Object(kind, _entries(kind, settings))

    def parse(self, value: object, where: str) -> T:
        """``build(**parsed_fields)``; unknown keys are ignored. (One loop, no call per
        field: this runs for every request.)"""
        if not isinstance(value, Mapping):
            raise _bad(where, "must be a JSON object")
        get = value.get
        parsed: dict[str, Any] = {}
        for f in self.fields:
            name = f.name
            path = f"{where}.{name}" if where else name
            raw = get(name)
            if raw is not None:
                parsed[name] = f.spec.parse(raw, path)
            elif f.required:
                raise BadRequest(f"{path} is required", field=path)
            else:
                parsed[name] = f.absent()
        return self.build(**parsed)

    def schema(self) -> dict[str, Any]:
        """``object`` with properties, defaults and the required list."""
        props: dict[str, Any] = {}
        for f in self.fields:
            prop = dict(f.spec.schema())
            if not f.required and f.factory is None and _jsonable(f.default):
                prop["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
            if f.description:
                prop["description"] = f.description
            props[f.name] = prop
        out: dict[str, Any] = {"type": "object", "properties": props}
        required = [f.name for f in self.fields if f.required]
        if required:
            out["required"] = required
        return out

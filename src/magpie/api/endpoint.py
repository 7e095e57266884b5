"""The route table entry: one declaration drives routing, validation, auth and OpenAPI.

A handler receives the context, the request and the *already validated* input, and does
authorize (when the caller must be a specific user) -> core call -> render.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from magpie.api.schema import Spec

if TYPE_CHECKING:
    from magpie.api.context import ApiContext

__all__ = ["Access", "Endpoint", "Handler"]

T = TypeVar("T")

Handler = Callable[["ApiContext", Request, T], Awaitable[Response]]


class Access(enum.Enum):
    """Who may call an endpoint."""

    #: Anybody (health, readiness, metrics, the OpenAPI document, ``/route``).
    PUBLIC = "public"
    #: The business server only: the API key.
    BUSINESS = "business"
    #: The API key, or a token of the uid the body names (``magpie.api.auth.require_user``).
    USER = "user"


@dataclass(frozen=True, slots=True)
class Endpoint(Generic[T]):
    """One route. ``body`` validates the JSON body, ``query`` the query string (at most one
    of them); ``response`` is the JSON Schema of the 200 answer, for the OpenAPI document."""

    method: str
    path: str
    summary: str
    access: Access
    handler: Handler[T]
    body: Spec[T] | None = None
    query: Spec[T] | None = None
    response: dict[str, Any] = field(default_factory=dict)
    tag: str = "im"
    raw_response: str = ""  # non-JSON media types, comma-separated (``/metrics``, files)
    #: A raw (non-JSON) request body's media type (an upload); ``query`` holds the input.
    raw_body: str = ""
    #: Further error answers to document: ``(status, description)``, or with the answer's
    #: schema when it is more than ``Error``: ``(status, description, schema)``.
    errors: tuple[tuple[int, str] | tuple[int, str, dict[str, Any]], ...] = ()

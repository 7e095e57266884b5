"""The HTTP API: WuKongIM-compatible endpoints for business servers (spec §6), health,
metrics, an OpenAPI document, and outgoing webhooks (spec §6.1).

``magpie.app`` builds an :class:`ApiContext`, starts it, and serves :func:`create_api` with
uvicorn. Layout: ``routes/`` holds the route table by area; ``schema`` the validating specs
the table declares; ``auth`` who may call; ``render`` the WuKongIM JSON shapes; ``webhooks``
the signed, batched, retried outgoing events.
"""

from magpie.api.asgi import create_api
from magpie.api.context import ApiContext

__all__ = ["ApiContext", "create_api"]

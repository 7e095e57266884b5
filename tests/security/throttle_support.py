"""Helpers of the throttling tests: an abuser on 127.0.0.2 and a well-behaved client on
127.0.0.1 (both loopback addresses, so per-address limits tell them apart)."""

from __future__ import annotations

import json

import httpx
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from magpie.app import Node
from magpie.client.raw import ConnectRefused, RawClient
from tests.support.nodes import time_scale

ABUSER = "127.0.0.2"
NORMAL = "127.0.0.1"


def ws_client(node: Node, uid: str, token: str, source: str = NORMAL, **kw: object) -> RawClient:
    """A low-level client of ``node`` connecting from ``source``."""
    return RawClient(
        f"ws://127.0.0.1:{node.ws_port}",
        uid,
        token,
        local_addr=(source, 0),
        **kw,  # type: ignore[arg-type]
    )


async def connect_outcome(client: RawClient) -> int | str:
    """How a CONNECT ended: ``"ok"``, the CONNACK reason code of a refusal, or
    ``"close <code>"`` when the server closed without a CONNACK, ``"dropped"`` when the
    socket was dropped before the WebSocket opened."""
    try:
        await client.connect(timeout=10 * time_scale())
    except ConnectRefused as exc:
        return exc.reason
    except ConnectionClosed as exc:
        return f"close {exc.rcvd.code if exc.rcvd else None}"
    except InvalidStatus as exc:
        return f"http {exc.response.status_code}"
    except (InvalidMessage, ConnectionResetError, EOFError):
        return "dropped"
    return "ok"


def http_client(node: Node, source: str = NORMAL, credential: str = "") -> httpx.AsyncClient:
    """An HTTP client of ``node`` from ``source`` presenting ``credential`` (if any)."""
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}",
        headers=headers,
        transport=httpx.AsyncHTTPTransport(local_address=source),
        timeout=10 * time_scale(),
    )


def refused(node: Node, port: str, rule: str) -> float:
    """``magpie_refused_total{port, rule}`` of ``node``."""
    value = node.metrics.registry.get_sample_value(
        "magpie_refused_total", {"port": port, "rule": rule}
    )
    return value or 0.0


def text(content: str) -> bytes:
    """A text message payload."""
    return json.dumps({"type": 1, "content": content}).encode()

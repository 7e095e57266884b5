"""Helpers for the HTTP API tests."""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

import httpx

from magpie.app import Node
from tests.support.nodes import time_scale

__all__ = ["MAX_PAYLOAD", "as_user", "b64", "db_dump", "text"]

#: ``max_payload_bytes`` of the test node: small, so the N / N+1 tests stay cheap.
MAX_PAYLOAD = 4096


def as_user(node: Node, token: str) -> httpx.AsyncClient:
    """A client presenting a user token."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.api_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10 * time_scale(),
    )


def b64(content: dict[str, Any] | bytes) -> str:
    """A payload as the API takes it."""
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    return base64.b64encode(raw).decode()


def text(s: str) -> str:
    """A base64 text-message payload."""
    return b64({"type": 1, "content": s})


def db_dump(node: Node) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read through a separate connection (committed state)."""
    conn = sqlite3.connect(f"file:{node.settings.db_path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        ]
        # The node's own lease row is renewed on a timer whatever the requests do: its
        # expiry is left out, the rest of the row (which node, where it listens) is kept.
        select = {"nodes": "SELECT node_id, instance, started_at_ms, ws_url, tcp_addr FROM nodes"}
        return {
            t: sorted(conn.execute(select.get(t, f"SELECT * FROM {t}")).fetchall())  # noqa: S608
            for t in tables
        }
    finally:
        conn.close()

"""Multi-node fixtures: a PostgreSQL schema and the shared Redis for each cluster (both
required: skipped without them, failed under ``CI=true``), a webhook receiver in a thread,
and one three-node cluster shared by the tests of a module that leave it intact. The run's
Redis keys are deleted at the end of the session."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from tests.support.cluster import Cluster, start_cluster
from tests.support.postgres import new_schema
from tests.support.redis import delete_prefix, require_redis, run_prefix, shared_url


@pytest.fixture(scope="session", autouse=True)
def _delete_run_keys() -> Iterator[None]:
    yield
    with contextlib.suppress(redis.RedisError, OSError):  # no Redis: nothing was written
        delete_prefix(shared_url(), run_prefix())


@pytest.fixture
def store_url(pg_database: str) -> str:
    """A fresh, empty schema of the session database for one cluster."""
    return new_schema(pg_database, "cl")


@pytest.fixture
def bus_url() -> str:
    return require_redis()


class Hooks:
    """A webhook receiver on a free port, in a thread (it outlives any one event loop):
    answers 200 and records every request's event, event id and JSON body."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                event = self.path.partition("event=")[2]
                with hooks.lock:
                    hooks.hits.append(
                        (event, self.headers.get("x-magpie-event-id", ""), json.loads(body))
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def notified(self) -> list[int]:
        """The message ids of every ``msg.notify`` entry received, in arrival order."""
        with self.lock:
            return [m["message_id"] for e, _, body in self.hits if e == "msg.notify" for m in body]

    def event_ids(self) -> list[str]:
        with self.lock:
            return [i for _, i, _ in self.hits]


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture(scope="module")
def shared(
    pg_database: str, hooks: Hooks, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Three nodes for the tests that leave them running (module scope: started once)."""
    url = require_redis()
    cluster = start_cluster(
        tmp_path_factory.mktemp("shared"),
        new_schema(pg_database, "cls"),
        url,
        retry_interval=0.5,
        retry_attempts=3,
        webhook_url=hooks.url,
        webhook_batch_interval=0.1,
    )
    try:
        cluster.wait_ready_sync()
        yield cluster
    finally:
        cluster.stop()

"""Property-based requests from the node's own ``/openapi.json`` (schemathesis), sent with
the business API key to a ``magpie serve`` process: no answer is a 5xx, every answer has a
documented status and content type and conforms to its documented schema.

The default run is bounded (:data:`EXAMPLES` per operation); ``--run-slow`` runs
:data:`SLOW_EXAMPLES` per operation."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.nodes import API_KEY, time_scale

#: Examples per operation in the default run and with ``--run-slow``.
EXAMPLES = 25
SLOW_EXAMPLES = 600
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30 * time_scale()
    while time.monotonic() < deadline:
        assert proc.poll() is None, "magpie serve exited"
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("magpie serve never answered /health")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``magpie serve`` process (demo page and login on, so every route is there) with a
    group ``g1`` of alice and bob; its base URL."""
    data = tmp_path_factory.mktemp("schemathesis")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env.update(
        MAGPIE_DATA_DIR=str(data),
        MAGPIE_API_PORT=str(port),
        MAGPIE_WS_PORT=str(_free_port()),
        MAGPIE_TCP_PORT="0",  # never the default port: other runs may hold it
        MAGPIE_API_KEY=API_KEY,
        MAGPIE_DEMO_UI="true",
        MAGPIE_DEMO_LOGIN="true",
        MAGPIE_SQLITE_SYNCHRONOUS="OFF",
        MAGPIE_LOG_LEVEL="ERROR",
    )
    log = Path(data, "serve.log").open("wb")  # noqa: SIM115 - closed after the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "magpie.cli", "serve"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, proc)
        group = {"channel_id": "g1", "channel_type": 2, "subscribers": ["alice", "bob"]}
        assert httpx.post(f"{base}/channel", json=group, headers=HEADERS).status_code == 200
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20 * time_scale())
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        errors = Path(data, "serve.log").read_text(errors="replace")
        assert "Traceback" not in errors, errors[-4000:]


def _run(base: str, examples: int, derandomize: bool) -> None:
    """Every operation of the node's own OpenAPI document with ``examples`` generated cases;
    all failures reported together."""
    api = schemathesis.openapi.from_url(f"{base}/openapi.json", headers=HEADERS)
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=derandomize,
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base, headers=HEADERS, checks=CHECKS)

        try:
            check()
        except (Exception, FailureGroup) as exc:  # one operation's failure hides no other
            inner = getattr(exc, "exceptions", ())
            detail = "\n".join(str(e)[:1500] for e in inner) or str(exc)[:1500]
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}\n{detail}")
    assert operations > 25, "the document was read"
    assert not failures, "\n\n".join(failures)


def test_generated_requests_get_documented_answers(served: str) -> None:
    _run(served, EXAMPLES, derandomize=True)


@pytest.mark.slow
def test_generated_requests_long_run(served: str) -> None:
    _run(served, SLOW_EXAMPLES, derandomize=False)

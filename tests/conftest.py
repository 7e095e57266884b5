"""Shared pytest options (slow soak/chaos runs are opt-in), the event loop every async test
runs on (uvloop, as ``magpie serve`` does), the PostgreSQL session database, and the check of
every API answer against its documented schema."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
import uvloop

from tests.support.answers import ANSWERS
from tests.support.postgres import session_database


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run long soak and chaos tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow runs are deselected (reported as such), not skipped: a default run's summary
    then counts only tests that ran, and a skip always means something is missing."""
    if config.getoption("--run-slow"):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test runs on uvloop: the loop production runs (``magpie.cli``)."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database for this test session (dropped at the end);
    skipped when the server is missing, failed under ``CI=true``."""
    yield from session_database()


@pytest.fixture(autouse=True)
def _answers_match_their_documented_schemas(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every answer a node's HTTP API gives during the test (to the test or to the Python
    SDK) matches the response schema of its OpenAPI document (:mod:`tests.support.answers`)."""
    send = httpx.AsyncClient.send

    async def checked(client: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        response = await send(client, request, **kw)
        ANSWERS.check(request, response)
        return response

    monkeypatch.setattr(httpx.AsyncClient, "send", checked)
    ANSWERS.take()
    yield
    problems = ANSWERS.take()
    assert not problems, "answers that disagree with the OpenAPI document:\n" + "\n".join(problems)

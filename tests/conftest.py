"""Shared pytest options (slow soak/chaos runs are opt-in), the event loop every async test
runs on (uvloop, as ``magpie serve`` does) and the PostgreSQL session database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping

import pytest
import uvloop

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

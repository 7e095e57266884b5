"""Bus test fixtures: the run's Redis keys are deleted at the end of the session."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import redis

from tests.support.redis import delete_prefix, run_prefix, shared_url


@pytest.fixture(scope="session", autouse=True)
def _delete_run_keys() -> Iterator[None]:
    yield
    with contextlib.suppress(redis.RedisError, OSError):  # no Redis: nothing was written
        delete_prefix(shared_url(), run_prefix())

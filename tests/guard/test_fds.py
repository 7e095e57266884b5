"""File descriptors: the caps fit the limit, the soft limit is raised, running out is logged
once per interval."""

from __future__ import annotations

import logging
import resource
import socket
import subprocess
import sys
import textwrap

import pytest

from magpie.guard.fds import FdWatch, connection_budget, open_fd_count, raise_nofile_limit


def test_caps_that_fit_are_kept() -> None:
    budget = connection_budget(limit=100_000, reserve=256, ws_cap=50_000, http_cap=1024)
    assert (budget.ws, budget.http, budget.lowered) == (50_000, 1024, False)


def test_no_ws_cap_means_the_room_left_after_http() -> None:
    budget = connection_budget(limit=20_000, reserve=256, ws_cap=0, http_cap=1024)
    assert (budget.ws, budget.http, budget.lowered) == (18_720, 1024, False)
    both_off = connection_budget(limit=1000, reserve=0, ws_cap=0, http_cap=0)
    assert (both_off.ws, both_off.http, both_off.lowered) == (750, 250, False)


def test_caps_that_do_not_fit_are_shared_http_a_quarter_at_most() -> None:
    budget = connection_budget(limit=1024, reserve=256, ws_cap=0, http_cap=1024)
    assert (budget.ws, budget.http, budget.lowered) == (576, 192, True)
    explicit = connection_budget(limit=1024, reserve=256, ws_cap=50_000, http_cap=10)
    assert (explicit.ws, explicit.http, explicit.lowered) == (758, 10, True)
    at_n = connection_budget(limit=1024, reserve=256, ws_cap=758, http_cap=10)
    assert (at_n.ws, at_n.http, at_n.lowered) == (758, 10, False)
    assert connection_budget(limit=1024, reserve=256, ws_cap=759, http_cap=10).lowered
    assert connection_budget(limit=10, reserve=50, ws_cap=5, http_cap=5).ws >= 1


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    script = textwrap.dedent(
        """
        import resource
        from magpie.guard.fds import raise_nofile_limit
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        print(raise_nofile_limit() == resource.getrlimit(resource.RLIMIT_NOFILE), flush=True)
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 64 or hard == 64)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["True", "True"], out.stderr
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_nofile_limit()[0] >= soft


def test_running_out_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    watch = FdWatch(10.0, lambda: now[0], limit=lambda: 1000)
    with caplog.at_level(logging.WARNING, logger="magpie.guard.fds"):
        watch.sample(900)  # plenty left: nothing said
        for _ in range(50):  # at the limit for 5 s: one line
            watch.sample(997)
            now[0] += 0.1
        assert len(caplog.records) == 1
        now[0] += 10
        watch.sample(1000)  # still at it after the interval: one more
        watch.sample(None)  # unknown: ignored
        watch.sample(500)  # over
        watch.sample(996)  # at the limit again (within the margin): a new episode, but
        now[0] += 10  # flapping is still said at most once per interval
        watch.sample(995)  # not at the limit (beyond the margin)
        watch.sample(996)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5, lines
    assert "out of file descriptors (997 open, limit 1000)" in lines[0]
    assert "available again" in lines[2] and "available again" in lines[3]
    assert "out of file descriptors (996 open" in lines[4]
    assert watch.episodes == 3 and not any(r.exc_info for r in caplog.records)


def test_open_fd_count_counts_this_process() -> None:
    before = open_fd_count()
    assert before is not None and before > 0
    extra = [socket.socket() for _ in range(10)]
    try:
        assert open_fd_count() == before + 10
    finally:
        for s in extra:
            s.close()

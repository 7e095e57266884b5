"""The fuzz harness (``fuzz/run.py``, pure-Python engine) runs, finds nothing in our code, and
does find a failure when one is planted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from magpie.protocol.connection import Connection

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_fuzz_{name}", FUZZ_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run() -> ModuleType:
    return _load("run")


def test_fuzz_three_seconds_finds_nothing(run: ModuleType) -> None:
    report = run.fuzz(3.0, seed=1234)
    assert report.failure is None, report.error
    assert report.iterations > 1000


def test_runs_bounds_the_executions_not_the_time(run: ModuleType) -> None:
    """``--runs N`` (``make fuzz-long``: 10^6) executes exactly N inputs."""
    seen: list[bytes] = []
    report = run.fuzz(0.0, seed=5, check=seen.append, runs=2500)
    assert report.failure is None and report.iterations == len(seen) == 2500


def test_planted_failure_is_reported_with_hex(run: ModuleType) -> None:
    def broken(data: bytes) -> None:
        if b"\x90" in data:
            raise KeyError("planted")

    report = run.fuzz(3.0, seed=1, check=broken)
    assert report.failure is not None and b"\x90" in report.failure
    assert report.failure.hex() in report.error and "KeyError" in report.error


def test_any_exception_escaping_check_is_a_failure(run: ModuleType) -> None:
    from magpie.errors import MalformedPacket

    def noisy(data: bytes) -> None:
        raise MalformedPacket("expected")

    report = run.fuzz(0.2, seed=1, check=noisy)
    # check() is the boundary that swallows documented errors; a raw MalformedPacket
    # escaping it is a finding like any other exception.
    assert report.failure is not None


def test_main_exit_codes(run: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    good = bytes((0x10, 0)) + bytes.fromhex("b00c00000005726f6f6d31070001")
    assert run.main(["--replay", good.hex()]) == 0
    assert run.main(["--engine", "python", "--seconds", "1", "--seed", "3"]) == 0
    assert "no failure" in capsys.readouterr().out


def test_seeds_drive_the_connection_state_machine(
    run: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every seed runs clean, and the server/client modes really go through Connection,
    reaching ESTABLISHED and answering packets."""
    targets = run.load_targets()
    sent: list[str] = []

    class Spy(Connection):
        __slots__ = ()

        def send(self, packet: object) -> bytes:
            sent.append(type(packet).__name__)
            return super().send(packet)  # type: ignore[arg-type]

    monkeypatch.setattr(targets, "Connection", Spy)
    for data in targets.seeds():
        targets.check(data)
    assert {"Connect", "Connack", "Sendack", "Pong", "Suback"} <= set(sent)


def test_invariant_broken_by_a_lying_codec(
    run: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round-trip invariant catches an encoder that drops a field."""
    targets = run.load_targets()
    real_encode = targets.encode

    def lossy(packet: object, version: int = 2, limits: object = None) -> bytes:
        if type(packet).__name__ == "Suback":
            packet = type(packet)("", "", 0, 0, 0)
        return real_encode(packet, version, limits or targets.WIDE_LIMITS)  # type: ignore[no-any-return]

    monkeypatch.setattr(targets, "encode", lossy)
    suback = bytes((0x00, 0)) + bytes.fromhex("b00c00000005726f6f6d31070001")
    with pytest.raises(targets.Invariant):
        targets.check(suback)

"""Time-bounded fuzzing of the WuKongIM decoder and connection state machine.

Usage::

    python fuzz/run.py [--seconds 20] [--engine auto|atheris|python] [--seed N]
    python fuzz/run.py --replay HEX        # re-run one input printed by a failure

Engines: ``atheris`` (coverage-guided libFuzzer, used by ``auto`` when importable) or
``python``, a seeded random-mutation loop over the golden vectors (bit flips, byte sets,
truncation, splices, insertions, chunking changes). Either exits 1 and prints the failing
input in hex when anything but a documented ``magpie.errors.ProtocolError`` escapes a target
or an invariant breaks (see ``targets.py``); 0 otherwise. :func:`fuzz` is the entry point
that tests call.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

_HERE = Path(__file__).resolve().parent
#: Largest input the mutation loop builds; the limits in play are far below it.
MAX_INPUT = 4096
#: Inputs that decoded to something are kept, up to this many, as material for mutations.
MAX_CORPUS = 2048


@dataclass(frozen=True, slots=True)
class Report:
    """Outcome of a fuzz run: how many inputs ran, and the first failing one if any."""

    iterations: int
    failure: bytes | None = None
    error: str = ""


def load_targets() -> ModuleType:
    """Import ``targets.py`` next to this file (it imports magpie; load it late for atheris)."""
    spec = importlib.util.spec_from_file_location("magpie_fuzz_targets", _HERE / "targets.py")
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships with us
        raise ImportError("fuzz/targets.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- mutations


def _flip_bit(rng: random.Random, data: bytearray, corpus: list[bytes]) -> None:
    if data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def _set_byte(rng: random.Random, data: bytearray, corpus: list[bytes]) -> None:
    if data:
        data[rng.randrange(len(data))] = rng.choice(
            (0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256))
        )


def _truncate(rng: random.Random, data: bytearray, corpus: list[bytes]) -> None:
    del data[rng.randrange(len(data) + 1) :]


def _delete(rng: random.Random, data: bytearray, corpus: list[bytes]) -> None:
    start = rng.randrange(len(data) + 1)
    del data[start : start + rng.randrange(1, 9)]


def _insert(rng: random.Random, data: bytearray, corpus: list[bytes]) -> None:
    at = rng.randrange(len(data) + 1)
    data[at:at] = rng.randbytes(rng.randrange(1, 9))


def _splice(rng: random.Random, data: bytearray, corpus: list[bytes]) -> None:
    """Replace the tail with a piece of another input (after its 2 control bytes)."""
    other = rng.choice(corpus)[2:]
    start = rng.randrange(len(other) + 1)
    del data[rng.randrange(2, len(data) + 1) if len(data) > 2 else len(data) :]
    data += other[start : start + rng.randrange(1, len(other) + 2)]


def _rechunk(rng: random.Random, data: bytearray, corpus: list[bytes]) -> None:
    """Change mode/version or chunking (the two control bytes)."""
    if len(data) >= 2:
        data[rng.randrange(2)] = rng.randrange(256)


_Mutator = Callable[[random.Random, bytearray, list[bytes]], None]
MUTATORS: tuple[_Mutator, ...] = (
    _flip_bit, _flip_bit, _set_byte, _truncate, _delete, _insert, _splice, _rechunk,
)  # fmt: skip


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    """One new input: a corpus entry with 1 to 4 random mutations."""
    data = bytearray(rng.choice(corpus))
    for _ in range(rng.randrange(1, 5)):
        rng.choice(MUTATORS)(rng, data, corpus)
    return bytes(data[:MAX_INPUT])


# --------------------------------------------------------------------------- engines


def _describe(data: bytes, exc: BaseException) -> str:
    tb = "".join(traceback.format_exception(exc))
    return f"FUZZ FAILURE\ninput (hex): {data.hex()}\n{tb}"


def fuzz(
    seconds: float,
    seed: int | None = None,
    check: Callable[[bytes], None] | None = None,
    runs: int = 0,
) -> Report:
    """Pure-Python engine: mutate seeds for ``seconds`` (or, with ``runs > 0``, for exactly
    ``runs`` executions, whatever the time); stop at the first failure.

    ``check`` defaults to ``targets.check``; tests pass a broken one to see failures caught.
    """
    targets = load_targets()
    run_one = check or targets.check
    rng = random.Random(seed)
    corpus: list[bytes] = list(targets.seeds())
    deadline = time.monotonic() + seconds if runs <= 0 else float("inf")
    iterations = 0
    for data in _inputs(rng, corpus, deadline):
        if 0 < runs <= iterations:
            break
        iterations += 1
        try:
            run_one(data)
        except Exception as exc:  # the point of a fuzzer: anything escaping is a finding
            return Report(iterations, data, _describe(data, exc))
        if len(corpus) < MAX_CORPUS and rng.random() < 0.02:
            corpus.append(data)
    return Report(iterations)


def _inputs(rng: random.Random, corpus: list[bytes], deadline: float) -> Iterator[bytes]:
    """The seeds first, then mutations until the deadline (time checked every 64)."""
    yield from list(corpus)
    while True:
        for _ in range(64):
            yield mutate(rng, corpus)
        if time.monotonic() >= deadline:
            return


def _run_atheris(seconds: int, runs: int = 0) -> int:  # pragma: no cover - `make fuzz`
    """Coverage-guided engine. libFuzzer exits the process itself: non-zero on a finding."""
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    with atheris.instrument_imports(include=["magpie"]):
        targets = load_targets()

    def one_input(data: bytes) -> None:
        try:
            targets.check(data)
        except Exception as exc:
            print(_describe(data, exc), file=sys.stderr, flush=True)
            raise

    corpus_dir = tempfile.mkdtemp(prefix="magpie-fuzz-")
    for i, data in enumerate(targets.seeds()):
        Path(corpus_dir, f"seed-{i:04d}").write_bytes(data)
    # Crash files go beside the working corpus, not into the current directory.
    budget = f"-runs={runs}" if runs > 0 else f"-max_total_time={seconds}"
    argv = [
        sys.argv[0],
        budget,
        f"-max_len={MAX_INPUT}",
        f"-artifact_prefix={corpus_dir}/",
        corpus_dir,
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


def _has_atheris() -> bool:
    return importlib.util.find_spec("atheris") is not None


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--runs", type=int, default=0, help="run exactly this many inputs (overrides --seconds)"
    )
    parser.add_argument("--engine", choices=("auto", "atheris", "python"), default="auto")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--replay", metavar="HEX", help="run one input and report")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return _replay(bytes.fromhex(args.replay))
    use_atheris = args.engine == "atheris" or (args.engine == "auto" and _has_atheris())
    if use_atheris:
        return _run_atheris(args.seconds, args.runs)
    started = time.monotonic()
    report = fuzz(args.seconds, args.seed, runs=args.runs)
    if report.failure is not None:
        print(report.error, file=sys.stderr)
        return 1
    took = time.monotonic() - started
    print(f"python engine: {report.iterations} inputs in {took:.0f}s, no failure")
    return 0


def _replay(data: bytes) -> int:
    try:
        load_targets().check(data)
    except Exception as exc:
        print(_describe(data, exc), file=sys.stderr)
        return 1
    print("no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())

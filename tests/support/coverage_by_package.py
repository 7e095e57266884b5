"""Print the line coverage of ``magpie`` per package from a test run's ``.coverage`` data.

``make test`` runs pytest under coverage (``--cov``, settings in ``pyproject.toml``) and then
``python -m tests.support.coverage_by_package``. A package's figure covers its subpackages
(``magpie.api`` includes ``magpie.api.routes``); modules directly under ``magpie`` (``app``,
``cli``, ``config`` …) are listed one by one. Files no test imported count as not covered.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "magpie"


def unit_of(path: Path) -> str:
    """``magpie.<package>`` for a file of a subpackage, ``magpie.<module>`` for a top-level
    module (``magpie`` for ``magpie/__init__.py``)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if len(parts) > 2:
        return ".".join(parts[:2])
    return ".".join(p for p in parts if p != "__init__")


def tally(cov: coverage.Coverage) -> dict[str, tuple[int, int]]:
    """``unit -> (statements, missed)`` over every source file of the package."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path in sorted(PACKAGE.rglob("*.py")):
        _, statements, _, missing, _ = cov.analysis2(str(path))
        row = totals[unit_of(path)]
        row[0] += len(statements)
        row[1] += len(missing)
    return {unit: (s, m) for unit, (s, m) in totals.items()}


def percent(statements: int, missed: int) -> str:
    """Covered share, one decimal (``100.0%`` for a file without statements)."""
    return f"{100.0 * (statements - missed) / statements if statements else 100.0:.1f}%"


def render(rows: dict[str, tuple[int, int]]) -> str:
    """The table: one line per unit, then the total."""
    width = max(len(unit) for unit in rows) + 2
    lines = [f"{'coverage (lines)':<{width}}{'stmts':>7}{'miss':>7}{'cover':>8}"]
    for unit, (statements, missed) in sorted(rows.items()):
        lines.append(f"{unit:<{width}}{statements:>7}{missed:>7}{percent(statements, missed):>8}")
    statements = sum(s for s, _ in rows.values())
    missed = sum(m for _, m in rows.values())
    lines.append(f"{'TOTAL':<{width}}{statements:>7}{missed:>7}{percent(statements, missed):>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Read the data file and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-file", default=str(ROOT / ".coverage"))
    args = parser.parse_args(argv)
    if not Path(args.data_file).is_file():
        parser.error(f"{args.data_file} not found: run pytest with --cov first")
    cov = coverage.Coverage(data_file=args.data_file, config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    print(render(tally(cov)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

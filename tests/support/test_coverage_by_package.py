"""The per-package coverage table of ``make test``."""

from __future__ import annotations

from tests.support.coverage_by_package import PACKAGE, percent, render, unit_of


def test_files_are_grouped_by_package_and_top_level_module() -> None:
    assert unit_of(PACKAGE / "api" / "routes" / "users.py") == "magpie.api"
    assert unit_of(PACKAGE / "api" / "__init__.py") == "magpie.api"
    assert unit_of(PACKAGE / "app.py") == "magpie.app"
    assert unit_of(PACKAGE / "__init__.py") == "magpie"


def test_table_has_a_row_per_unit_and_the_total() -> None:
    table = render({"magpie.api": (200, 10), "magpie.app": (100, 0), "magpie.web": (0, 0)})
    lines = table.splitlines()
    assert lines[1].split() == ["magpie.api", "200", "10", "95.0%"]
    assert lines[2].split() == ["magpie.app", "100", "0", "100.0%"]
    assert lines[3].split() == ["magpie.web", "0", "0", "100.0%"]
    assert lines[-1].split() == ["TOTAL", "300", "10", "96.7%"]
    assert percent(3, 1) == "66.7%"

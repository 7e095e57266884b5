"""The page bundle's currency check and the build step's failures (build_backend/webbundle.py).

The real build (npm ci + esbuild) runs in ``test_distributions``; these tests work on small
trees of their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.webbundle import load_webbundle

wb = load_webbundle()


def _tree(root: Path) -> Path:
    (root / "web" / "src" / "views").mkdir(parents=True)
    (root / "web" / "package.json").write_text('{"name": "x"}\n')
    (root / "web" / "package-lock.json").write_text("{}\n")
    (root / "web" / "src" / "main.js").write_text("console.log('main');\n")
    (root / "web" / "src" / "views" / "list.js").write_text("export const list = 1;\n")
    return root


def _stamp(root: Path, digest: str | None, body: str = "var Magpie = 1;\n") -> None:
    bundle = root / wb.BUNDLE
    bundle.parent.mkdir(parents=True, exist_ok=True)
    head = "" if digest is None else f"/* magpie-web-bundle sources-sha256={digest} */\n"
    bundle.write_text(head + body)


def test_a_tree_without_a_bundle_is_missing(tmp_path: Path) -> None:
    assert wb.status(_tree(tmp_path)) == "missing"


def test_a_bundle_built_from_these_sources_is_current(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _stamp(root, wb.source_digest(root))
    assert wb.status(root) == "current" and wb.is_current(root)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "web" / "src" / "main.js").write_text("console.log('changed');\n"),
        lambda r: (r / "web" / "src" / "new.js").write_text("export {};\n"),
        lambda r: (r / "web" / "src" / "views" / "list.js").rename(r / "web" / "src" / "l.js"),
        lambda r: (r / "web" / "package-lock.json").write_text('{"lockfileVersion": 3}\n'),
    ],
    ids=["edited", "added", "renamed", "lock-changed"],
)
def test_any_change_of_the_sources_makes_it_stale(tmp_path: Path, change: object) -> None:
    root = _tree(tmp_path)
    _stamp(root, wb.source_digest(root))
    change(root)  # type: ignore[operator]
    assert wb.status(root) == "stale"


def test_a_bundle_without_the_digest_line_counts_as_missing(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _stamp(root, None)  # e.g. built by a plain `npm run build`
    assert wb.status(root) == "missing"


def test_file_times_do_not_matter(tmp_path: Path) -> None:
    """A fresh clone or an unpacked sdist has arbitrary file times: only content counts."""
    import os

    root = _tree(tmp_path)
    _stamp(root, wb.source_digest(root))
    os.utime(root / wb.BUNDLE, (0, 0))  # the bundle looks older than every source
    assert wb.status(root) == "current"


def test_an_sdist_like_tree_needs_no_node_when_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    _stamp(root, wb.source_digest(root))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no npm, no node
    assert wb.ensure(root) is False


def test_without_node_a_stale_bundle_fails_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    _stamp(root, "0" * 64)
    before = (root / wb.BUNDLE).read_bytes()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(wb.BundleError, match=r"Node\.js/npm is not on PATH.*install Node\.js"):
        wb.ensure(root)
    assert (root / wb.BUNDLE).read_bytes() == before


def test_no_sources_and_no_bundle_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(wb.BundleError, match="no web/ sources"):
        wb.ensure(tmp_path)


def test_the_command_line_check_exits_non_zero_when_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tree(tmp_path)
    assert wb.main(["--check", str(root)]) == 1
    assert "missing; run `make web`" in capsys.readouterr().err
    _stamp(root, wb.source_digest(root))
    assert wb.main(["--check", str(root)]) == 0

"""What the packaging tests share: the project root and a clean copy of the tree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.webbundle import load_webbundle

__all__ = ["ROOT", "clean_tree", "in_ci", "load_webbundle"]

ROOT = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    """Whether the run is CI's (``CI=true``): missing prerequisites fail instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def clean_tree(dest: Path) -> Path:
    """A copy of the files a fresh clone of this working tree would have: tracked files and
    untracked ones that are not ignored (no ``.venv``, no ``node_modules``, no built bundle)."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.fail("the packaging tests copy the tree with git; run them in a git checkout")
    listed = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if not source.is_file():  # deleted in the working tree but still in the index
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest

"""``build_backend/webbundle.py`` for the tests: the page bundle's currency check.

The module belongs to the build backend (it is not part of the installed package), so it is
loaded from its file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_webbundle() -> ModuleType:
    """The module ``build_backend/webbundle.py``."""
    path = ROOT / "build_backend" / "webbundle.py"
    spec = importlib.util.spec_from_file_location("magpie_webbundle", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Extension rows leave the API through :mod:`magpie.api.views` only: the raw business view
(``business_row``) only from route modules whose every endpoint takes the business key, and
no other module of the API serialises an extension itself."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import magpie.api
import magpie.api.routes
from magpie.api.endpoint import Access
from magpie.config import Settings


def _route_modules() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(magpie.api.routes.__path__) if m.name[0] != "_"]


def test_the_raw_view_is_served_by_business_only_modules() -> None:
    settings = Settings().replace(demo_login=True, demo_ui=True)
    users_of_raw = []
    for name in _route_modules():
        module = importlib.import_module(f"magpie.api.routes.{name}")
        if "business_row" not in Path(str(module.__file__)).read_text():
            continue
        users_of_raw.append(name)
        access = {ep.path: ep.access for ep in module.endpoints(settings)}
        assert set(access.values()) == {Access.BUSINESS}, (name, access)
    assert sorted(users_of_raw) == ["admin", "business", "ext"], "the checks above saw it"


def test_only_the_views_module_serialises_extensions() -> None:
    folder = Path(str(magpie.api.__file__)).parent
    serialisers = sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*.py")
        if ".to_json(" in path.read_text()
    )
    assert serialisers == ["views.py"]

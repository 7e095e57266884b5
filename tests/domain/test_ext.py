"""The extension row shape, the apply-if-newer rule (I6) and epoch reset (I7); the vocabulary
imports only the standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import magpie.domain
from magpie.domain.ext import Actor, ExtState, Fields, apply_if_newer
from tests.support.ext_cache import ExtCache, apply_all


def snap(mid: int, version: int, ev: int, status: str = "") -> ExtState:
    return ExtState(mid, version=version, extra_version=ev, fields=Fields(status=status))


def test_apply_if_newer() -> None:
    old, new = snap(1, 1, 5, "a"), snap(1, 2, 9, "b")
    assert apply_if_newer(None, old) is old
    assert apply_if_newer(old, new) is new
    assert apply_if_newer(new, old) is new, "an older row never replaces a newer one"
    assert apply_if_newer(new, new) is new
    with pytest.raises(ValueError):
        apply_if_newer(old, snap(2, 5, 10))


def test_tsdd_rows_without_version_compare_by_extra_version() -> None:
    a = ExtState.from_json({"message_id": 7, "extra_version": 100, "revoke": 1})
    b = ExtState.from_json({"message_id": 7, "extra_version": 200, "edited_at": 3})
    assert apply_if_newer(a, b) is b and apply_if_newer(b, a) is b
    assert (a.version, a.fields.revoke, b.fields.edited_at, a.extra) == (0, True, 3, {})


def test_json_round_trip_prefers_the_string_id() -> None:
    row = ExtState(
        message_id=2**62 + 1,
        version=3,
        extra_version=8,
        message_seq=4,
        channel_id="g1",
        channel_type=2,
        fields=Fields(
            status="approved",
            extra={"votes": {"yes": 2}},
            revoke=True,
            revoker="bob",
            readed_count=5,
            content_edit={"type": 1, "content": "x"},
            edited_at=1_700_000_000,
        ),
        updated_at=2**60,
        updated_by=Actor("carol", "web"),
    )
    data = row.to_json()
    assert data["revoke"] == 1 and data["channel_id"] == "g1"
    assert row.to_json("bob")["channel_id"] == "bob"
    assert data["message_id_str"] == str(2**62 + 1)
    assert data["updated_by"] == {"uid": "carol", "device": "web"}
    assert ExtState.from_json(data) == row
    data["message_id"] = float(data["message_id"])  # what a JavaScript client would hold
    assert ExtState.from_json(data).message_id == 2**62 + 1


def test_cache_epoch_change_drops_everything() -> None:
    cache = ExtCache().apply("e1", [snap(1, 1, 1), snap(2, 1, 2)])
    assert (cache.epoch, cache.cursor, sorted(cache.rows)) == ("e1", 2, [1, 2])
    cache = cache.apply("e1", [snap(1, 2, 3), snap(2, 1, 2)])
    assert (cache.cursor, cache.rows[1].version) == (3, 2)
    assert not cache.needs_reset("e1") and cache.needs_reset("e2")
    reset = cache.apply("e2", [snap(1, 1, 1)])
    assert reset == ExtCache("e2"), "rows answering an old-epoch cursor are not applied"
    assert not ExtCache().needs_reset("anything")


@st.composite
def change_streams(draw: st.DrawFn) -> list[ExtState]:
    """What a server emits in order: per message, versions 1, 2, …; extra_version grows."""
    messages = draw(st.lists(st.integers(1, 4), min_size=1, max_size=25))
    versions: dict[int, int] = {}
    stream = []
    for ev, mid in enumerate(messages, start=1):
        versions[mid] = versions.get(mid, 0) + 1
        status = draw(st.sampled_from(["open", "done", "x"]))
        stream.append(snap(mid, versions[mid], ev, status))
    return stream


@settings(max_examples=200, deadline=None)
@given(data=st.data(), stream=change_streams())
def test_any_permutation_with_duplicates_converges(
    data: st.DataObject, stream: list[ExtState]
) -> None:
    duplicates = data.draw(st.lists(st.sampled_from(stream), max_size=len(stream)))
    shuffled = data.draw(st.permutations(stream + duplicates))
    split = data.draw(st.integers(0, len(shuffled)))
    in_order = ExtCache().apply("e", stream)
    # delivered in two sync answers, in any order, with repeats
    mixed = ExtCache().apply("e", shuffled[:split]).apply("e", shuffled[split:])
    assert mixed == in_order
    assert apply_all({}, shuffled) == apply_all({}, stream)
    assert in_order.cursor == len(stream)


def test_the_vocabulary_imports_only_the_standard_library() -> None:
    """Every layer, the client SDK included, may import magpie.domain: it must pull in
    nothing else (import-linter checks the same; this test names the offending module)."""
    folder = Path(magpie.domain.__file__).parent
    modules = sorted(folder.glob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "channels.py", "content.py", "ext.py"}
    for module in modules:
        imported = set()
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, "no relative imports"
                name = node.module or ""
                if not name.startswith("magpie.domain."):  # siblings are the vocabulary too
                    imported.add(name.split(".")[0])
        assert imported <= set(sys.stdlib_module_names), (module.name, imported)
    package = (folder / "__init__.py").read_text()
    assert "import" not in package.split('"""')[-1], "domain/__init__ imports nothing"

"""The store contract for the conversation features (``docs/conversation.md``) on every backend
of the store contract suite: member roles (and, as they land, reactions, reminders, read state,
files and search)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from magpie.domain.members import ADMIN, MEMBER, OWNER, Member
from magpie.store.interface import Store
from tests.store.test_store_contract import BACKENDS, GROUP, Backend, opened


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every backend of the store contract suite."""
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with opened(backend) as s:
        yield s


# --- roles ---------------------------------------------------------------------------------


async def test_members_start_as_plain_members(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["carol", "alice", "bob"])
    assert await store.get_members("g1", GROUP) == [
        Member("alice", MEMBER),
        Member("bob", MEMBER),
        Member("carol", MEMBER),
    ]
    assert await store.get_role("g1", GROUP, "bob") == MEMBER
    assert await store.get_role("g1", GROUP, "erin") is None
    assert await store.get_members("nope", GROUP) == []


async def test_set_role_changes_every_named_member(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["alice", "bob", "carol"])
    assert await store.set_role("g1", GROUP, ["alice", "bob", "alice"], ADMIN)
    assert await store.set_role("g1", GROUP, ["carol"], OWNER)
    roles = {m.uid: m.role for m in await store.get_members("g1", GROUP)}
    assert roles == {"alice": ADMIN, "bob": ADMIN, "carol": OWNER}
    assert await store.set_role("g1", GROUP, ["bob"], MEMBER)
    assert await store.get_role("g1", GROUP, "bob") == MEMBER


async def test_set_role_with_a_non_member_changes_nothing(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["alice", "bob"])
    assert not await store.set_role("g1", GROUP, ["alice", "erin"], ADMIN)
    assert await store.get_role("g1", GROUP, "alice") == MEMBER
    assert not await store.set_role("g2", GROUP, ["alice"], ADMIN)


async def test_a_reset_keeps_the_roles_of_members_who_stay(store: Store) -> None:
    await store.add_subscribers("g1", GROUP, ["alice", "bob", "carol"])
    await store.set_role("g1", GROUP, ["alice", "bob"], ADMIN)
    await store.add_subscribers("g1", GROUP, ["alice", "dave"], reset=True)
    assert await store.get_members("g1", GROUP) == [Member("alice", ADMIN), Member("dave")]
    await store.remove_subscribers("g1", GROUP, ["alice"])
    await store.add_subscribers("g1", GROUP, ["alice"])
    assert await store.get_role("g1", GROUP, "alice") == MEMBER  # a new membership

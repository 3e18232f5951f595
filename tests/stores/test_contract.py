"""The store contract: the same tests, unchanged, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from lumid_core.store.base import Grant, GrantStore, Level

from .conftest import Backend


async def all_grants(store: GrantStore, **filters: str) -> list[Grant]:
    return [g async for g in store.iter_grants(**filters)]


async def test_grant_level_ids_revoke_delete(backend: Backend) -> None:
    s = (await backend.open()).grants
    await s.grant("job", "j1", "alice", Level.WRITE)
    await s.grant("job", "j2", "alice", Level.READ)
    await s.grant("job", "j1", "bob", Level.READ)
    await s.grant("trace", "t1", "alice", Level.WRITE)
    assert await s.level("job", "j1", "alice") is Level.WRITE
    assert await s.level("job", "j1", "bob") is Level.READ
    assert await s.level("job", "j1", "carol") is None
    assert await s.level("trace", "j1", "alice") is None
    assert await s.ids("job", "alice", Level.READ) == {"j1", "j2"}
    assert await s.ids("job", "alice", Level.WRITE) == {"j1"}
    assert await s.ids("job", "carol", Level.READ) == frozenset()
    # A grant never lowers a level; it refreshes last_seen_at and keeps granted_at.
    (before,) = await all_grants(s, kind="job", id="j1", principal_id="alice")
    await asyncio.sleep(0.01)
    await s.grant("job", "j1", "alice", Level.READ)
    (after,) = await all_grants(s, kind="job", id="j1", principal_id="alice")
    assert after.level is Level.WRITE
    assert after.granted_at == before.granted_at
    assert after.last_seen_at > before.last_seen_at
    # ... and raises a lower one.
    await s.grant("job", "j2", "alice", Level.WRITE)
    assert await s.level("job", "j2", "alice") is Level.WRITE
    assert await s.revoke("job", "j1", "bob") is True
    assert await s.revoke("job", "j1", "bob") is False
    assert await s.delete_resource("job", "j1") == 1
    assert await s.delete_resource("job", "j1") == 0
    assert await s.level("job", "j1", "alice") is None
    assert await s.ids("job", "alice", Level.READ) == {"j2"}


async def test_grants_survive_reopen(backend: Backend) -> None:
    first = await backend.open()
    await first.grants.grant("job", "j1", "alice", Level.WRITE)
    await first.close()
    second = await backend.open()
    assert await second.grants.level("job", "j1", "alice") is Level.WRITE


async def test_iter_grants_order_pages_and_filters(backend: Backend) -> None:
    s = (await backend.open()).grants
    # Byte order, not a locale's: upper case before lower case, ASCII before non-ASCII.
    ids = ["b", "B", "a", "é", "a-1", "a_1", "Z"] + [f"p{i:04d}" for i in range(1500)]
    for rid in ids:
        await s.grant("job", rid, "alice", Level.READ)
    await s.grant("job", "a", "bob", Level.WRITE)
    await s.grant("trace", "t", "alice", Level.WRITE)
    everything = await all_grants(s)
    keys = [(g.kind, g.id, g.principal_id) for g in everything]
    assert keys == sorted(keys, key=lambda k: tuple(x.encode() for x in k))
    assert len(keys) == len(ids) + 2
    assert [g.principal_id for g in await all_grants(s, kind="job", id="a")] == ["alice", "bob"]
    only_bob = await all_grants(s, principal_id="bob")
    assert [(g.kind, g.id, g.level) for g in only_bob] == [("job", "a", Level.WRITE)]
    assert [g.id for g in await all_grants(s, kind="trace")] == ["t"]
    assert await all_grants(s, kind="none") == []


async def test_reconcile_sweeps_only_kinds_present_and_keeps_fresh_grants(
    backend: Backend,
) -> None:
    seed = await backend.open()
    for kind, rid, who in [
        ("node", "n1", "sys"),
        ("node", "gone", "sys"),
        ("node", "gone", "bob"),
        ("workflow", "w-gone", "alice"),
        ("trace", "t1", "alice"),
    ]:
        await seed.grants.grant(kind, rid, who, Level.WRITE)
    await seed.close()
    await asyncio.sleep(0.02)
    s = (await backend.open()).grants
    await s.grant("node", "fresh", "sys", Level.WRITE)  # written after open: kept
    result = await s.reconcile([("node", "n1"), ("node", "n1")])
    assert result.kinds == {"node"}
    assert result.live == 2
    assert result.removed == 2
    left = {(g.kind, g.id) for g in await all_grants(s)}
    assert left == {("node", "n1"), ("node", "fresh"), ("workflow", "w-gone"), ("trace", "t1")}
    empty = await s.reconcile([])
    assert empty.kinds == frozenset()
    assert empty.removed == 0
    assert len(await all_grants(s)) == 4


async def test_a_stale_grant_refreshed_after_open_is_kept(backend: Backend) -> None:
    seed = await backend.open()
    await seed.grants.grant("job", "old", "alice", Level.READ)
    await seed.close()
    await asyncio.sleep(0.02)
    s = (await backend.open()).grants
    await s.grant("job", "old", "alice", Level.READ)  # seen again since the open
    assert (await s.reconcile([("job", "other")])).removed == 0
    assert await s.level("job", "old", "alice") is Level.READ


async def test_reconcile_is_atomic(backend: Backend) -> None:
    seed = await backend.open()
    for i in range(50):
        await seed.grants.grant("job", f"j{i}", "alice", Level.WRITE)
    await seed.close()
    await asyncio.sleep(0.02)
    stores = await backend.open()
    s = stores.grants
    before = await all_grants(s)
    await stores.break_delete_of("j25")
    with pytest.raises(Exception, match="injected failure"):
        await s.reconcile([("job", "j0")])
    assert await all_grants(s) == before
    await s.grant("job", "after", "alice", Level.READ)  # the store still works
    assert await s.level("job", "after", "alice") is Level.READ


async def test_import_never_lowers_and_merges_times(backend: Backend) -> None:
    stores = await backend.open()
    s = stores.grants
    await s.grant("job", "j1", "alice", Level.WRITE)
    (existing,) = await all_grants(s)
    imported = [
        Grant(
            "job", "j1", "alice", Level.READ, existing.granted_at - 100, existing.last_seen_at + 100
        ),
        Grant("job", "j2", "bob", Level.READ, 10.0, 20.0),
        # The same key twice in one import: highest level, earliest grant, latest sighting.
        Grant("job", "j2", "bob", Level.WRITE, 5.0, 15.0),
        Grant("job", "j3", "carol", Level.READ, 1.0, 2.0),
    ]
    assert await stores.import_grants(imported) == 4
    got = {(g.id, g.principal_id): g for g in await all_grants(s)}
    assert got["j1", "alice"].level is Level.WRITE
    assert got["j1", "alice"].granted_at == existing.granted_at - 100
    assert got["j1", "alice"].last_seen_at == existing.last_seen_at + 100
    assert got["j2", "bob"].level is Level.WRITE
    assert (got["j2", "bob"].granted_at, got["j2", "bob"].last_seen_at) == (5.0, 20.0)
    # A later import with older times changes nothing.
    assert await stores.import_grants([Grant("job", "j3", "carol", Level.READ, 9.0, 1.0)]) == 1
    j3 = (await all_grants(s, id="j3"))[0]
    assert (j3.granted_at, j3.last_seen_at) == (1.0, 2.0)


async def test_import_is_all_or_nothing(backend: Backend) -> None:
    stores = await backend.open()

    def rows() -> object:
        yield Grant("job", "j1", "alice", Level.READ, 1.0, 1.0)
        raise RuntimeError("bad input")

    with pytest.raises(RuntimeError, match="bad input"):
        await stores.import_grants(rows())
    assert await all_grants(stores.grants) == []


async def test_directory_record_and_email_for(backend: Backend) -> None:
    d = (await backend.open()).directory
    assert await d.email_for("alice") is None
    await d.record("alice", "alice@example.com")
    assert await d.email_for("alice") == "alice@example.com"
    await d.record("alice", "alice@new.example")
    assert await d.email_for("alice") == "alice@new.example"
    other = (await backend.open()).directory  # another process or replica sees it
    assert await other.email_for("alice") == "alice@new.example"
    assert await other.email_for("bob") is None


async def test_directory_record_many_writes_a_batch_at_once(backend: Backend) -> None:
    d = (await backend.open()).directory
    many = getattr(d, "record_many", None)
    assert many is not None  # both backends batch (WriteBehindDirectory uses it)
    await d.record("p0", "old@example.com")
    await many({f"p{i}": f"p{i}@example.com" for i in range(500)})
    await many({})
    other = (await backend.open()).directory
    assert await other.email_for("p0") == "p0@example.com"  # an existing one updated
    assert await other.email_for("p499") == "p499@example.com"


async def test_parent_links(backend: Backend) -> None:
    p = (await backend.open()).parents
    assert await p.parent("task", "t1", "workflow") is None
    await p.link("task", "t1", "workflow", "w1")
    assert await p.parent("task", "t1", "workflow") == "w1"
    await p.link("task", "t1", "workflow", "w2")
    assert await p.parent("task", "t1", "workflow") == "w2"
    assert await p.parent("task", "t1", "node") is None


async def test_concurrent_grants_all_land_and_the_highest_level_wins(backend: Backend) -> None:
    s = (await backend.open()).grants
    levels = [Level.READ, Level.WRITE, Level.READ]
    await asyncio.gather(
        *(s.grant("job", f"j{i % 50}", "alice", levels[i % 3]) for i in range(300)),
        *(s.grant("job", f"j{i}", "bob", Level.READ) for i in range(200)),
    )
    got = {(g.id, g.principal_id): g.level for g in await all_grants(s)}
    assert len(got) == 250
    assert all(got[f"j{i}", "alice"] is Level.WRITE for i in range(50))
    assert await s.ids("job", "bob", Level.READ) == {f"j{i}" for i in range(200)}

"""The permission engine against a small reference model of the policy rules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st
from lumid_hooks import PrincipalContext, ResourceRef

from lumid_core import Database, Grant, Level, PermissionEngine, Policy, SqliteGrantStore
from lumid_core.store import ReconcileResult

LOG = logging.getLogger("tests.permissions")
KINDS = ("doc", "run", "out", "box")
ACTIONS = ("read", "write", "cancel", "admin")
SCOPES = ("s:1", "s:2", "s:3", "s:4", "root")
IDS = ("i1", "i2", "i3")
PRINCIPALS = ("alice", "bob")


class DictStore:
    """An in-memory GrantStore: the engine is under test here, not SQLite."""

    def __init__(self, grants: dict[tuple[str, str, str], Level]) -> None:
        self.grants = grants

    async def grant(self, kind: str, id: str, principal_id: str, level: Level) -> None:
        key = (kind, id, principal_id)
        self.grants[key] = max(level, self.grants.get(key, level))

    async def revoke(self, kind: str, id: str, principal_id: str) -> bool:
        return self.grants.pop((kind, id, principal_id), None) is not None

    async def delete_resource(self, kind: str, id: str) -> int:
        doomed = [k for k in self.grants if k[:2] == (kind, id)]
        for k in doomed:
            del self.grants[k]
        return len(doomed)

    async def level(self, kind: str, id: str, principal_id: str) -> Level | None:
        return self.grants.get((kind, id, principal_id))

    async def ids(self, kind: str, principal_id: str, min_level: Level) -> frozenset[str]:
        return frozenset(
            i
            for (k, i, p), lv in self.grants.items()
            if k == kind and p == principal_id and lv >= min_level
        )

    async def reconcile(self, live: Iterable[tuple[str, str]]) -> ReconcileResult:
        raise NotImplementedError

    async def iter_grants(
        self, *, kind: str | None = None, id: str | None = None, principal_id: str | None = None
    ) -> AsyncIterator[Grant]:
        for (k, i, p), lv in sorted(self.grants.items()):
            if kind in (None, k) and id in (None, i) and principal_id in (None, p):
                yield Grant(k, i, p, lv, 0.0, 0.0)


@dataclass(frozen=True)
class Case:
    policy: Policy
    grants: dict[tuple[str, str, str], Level]
    scopes: list[str]
    principal: str


def model_allows(
    case: Case, kind: str, rid: str | None, action: str, *, listing: bool = False
) -> bool:
    """The rules as a reader would state them, one sentence per line.

    `listing`: as `accessible_ids` decides a member (grant scopes never count there).
    """
    p = case.policy
    held_scopes = set(case.scopes)
    known = kind in p.kinds and action in p.action_levels
    is_admin = bool(held_scopes & p.admin_scopes)
    has_kind_scope = bool(held_scopes & p.kind_scopes.get((kind, action), frozenset()))
    has_grant_scope = bool(held_scopes & p.grant_scopes.get((kind, action), frozenset()))
    fleet_read = action == "read" and kind in p.fleet_kinds
    needed = p.action_levels.get(action)
    grant = case.grants.get((p.owner_kinds.get(kind, kind), rid or "", case.principal))
    has_grant = needed is not None and grant is not None and grant >= needed
    if not known:
        return False
    if is_admin:
        return True
    if rid is None:
        return has_kind_scope
    if has_grant_scope and has_grant and not listing:
        return True
    return has_kind_scope and (fleet_read or has_grant)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    scope_sets = st.frozensets(st.sampled_from(SCOPES), max_size=3)
    kind_scopes = draw(
        st.dictionaries(st.tuples(st.sampled_from(KINDS), st.sampled_from(ACTIONS)), scope_sets)
    )
    owner = draw(st.sampled_from([{}, {"out": "run"}]))
    fleet = draw(st.frozensets(st.sampled_from(KINDS), max_size=2))
    # Grant scopes only for pairs a grant decides (what Policy.build accepts).
    eligible = sorted(
        (k, a)
        for (k, a) in kind_scopes
        if a in ("read", "write", "cancel") and not (a == "read" and k in fleet)
    )
    grant_scopes = (
        draw(st.dictionaries(st.sampled_from(eligible), scope_sets, max_size=3)) if eligible else {}
    )
    policy = Policy.build(
        kinds=KINDS,
        admin_scopes=draw(st.frozensets(st.sampled_from(SCOPES), max_size=2)),
        kind_scopes=kind_scopes,
        owner_kinds=owner,
        fleet_kinds=fleet,
        grant_scopes=grant_scopes,
    )
    grants = draw(
        st.dictionaries(
            st.tuples(st.sampled_from(KINDS), st.sampled_from(IDS), st.sampled_from(PRINCIPALS)),
            st.sampled_from(list(Level)),
        )
    )
    return Case(policy, grants, draw(st.lists(st.sampled_from(SCOPES), max_size=4)), "alice")


def principal(case: Case) -> PrincipalContext:
    return PrincipalContext(
        principal_id=case.principal,
        org_id="o",
        external_id=case.principal,
        principal_type="user",
        scopes=case.scopes,
    )


async def engine_allows(
    engine: PermissionEngine, who: PrincipalContext, kind: str, rid: str | None, action: str
) -> bool:
    denial: HTTPException | None = None
    try:
        await engine.require(who, ResourceRef(kind=kind, id=rid), action, LOG)
    except HTTPException as exc:
        denial = exc
    if denial is None:
        return True
    assert denial.status_code == 403
    assert action in str(denial.detail)
    assert kind in str(denial.detail)
    if rid is not None:
        assert rid in str(denial.detail)
    return False


@settings(max_examples=300, deadline=None)
@given(
    case=cases(),
    kind=st.sampled_from((*KINDS, "nope")),
    rid=st.sampled_from((None, *IDS)),
    action=st.sampled_from((*ACTIONS, "frob")),
)
def test_require_matches_the_model(case: Case, kind: str, rid: str | None, action: str) -> None:
    engine = PermissionEngine(name="t", policy=case.policy, store=DictStore(dict(case.grants)))
    got = asyncio.run(engine_allows(engine, principal(case), kind, rid, action))
    assert got == model_allows(case, kind, rid, action)


@settings(max_examples=300, deadline=None)
@given(
    case=cases(),
    kind=st.sampled_from((*KINDS, "nope")),
    action=st.sampled_from((*ACTIONS, "frob")),
)
def test_accessible_ids_agrees_with_require(case: Case, kind: str, action: str) -> None:
    engine = PermissionEngine(name="t", policy=case.policy, store=DictStore(dict(case.grants)))
    who = principal(case)

    async def check() -> None:
        visible = await engine.accessible_ids(who, kind, action, LOG)
        for rid in (*IDS, "never-granted"):
            allowed = model_allows(case, kind, rid, action, listing=True)
            if visible is None:
                # No filter: the list shows everything, so every member must be allowed.
                assert allowed
            else:
                assert (rid in visible) == allowed
        if visible is None:
            assert case.policy.is_admin(case.scopes) or (
                action == "read"
                and kind in case.policy.fleet_kinds
                and case.policy.scope_allows(case.scopes, kind, action)
            )

    asyncio.run(check())


@settings(max_examples=200, deadline=None)
@given(
    case=cases(),
    extra=st.sampled_from(SCOPES),
    kind=st.sampled_from(KINDS),
    rid=st.sampled_from((None, *IDS)),
    action=st.sampled_from(ACTIONS),
)
def test_more_scopes_never_take_access_away(
    case: Case, extra: str, kind: str, rid: str | None, action: str
) -> None:
    wider = Case(case.policy, case.grants, [*case.scopes, extra], case.principal)
    if model_allows(case, kind, rid, action):
        engine = PermissionEngine(name="t", policy=case.policy, store=DictStore(dict(case.grants)))
        assert asyncio.run(engine_allows(engine, principal(wider), kind, rid, action))


def test_admin_action_is_never_granted() -> None:
    policy = Policy.build(
        kinds=["system"], admin_scopes=["adm"], kind_scopes={("system", "admin"): ["ops"]}
    )
    store = DictStore({("system", "s1", "alice"): Level.WRITE})
    engine = PermissionEngine(name="t", policy=policy, store=store)
    who = principal(Case(policy, {}, ["ops"], "alice"))
    assert asyncio.run(engine_allows(engine, who, "system", None, "admin"))
    assert not asyncio.run(engine_allows(engine, who, "system", "s1", "admin"))


def test_policy_build_rejects_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="unknown pair"):
        Policy.build(kinds=["a"], admin_scopes=[], kind_scopes={("b", "read"): ["x"]})
    with pytest.raises(ValueError, match="owner_kinds"):
        Policy.build(kinds=["a"], admin_scopes=[], kind_scopes={}, owner_kinds={"a": "z"})
    with pytest.raises(ValueError, match="fleet_kinds"):
        Policy.build(kinds=["a"], admin_scopes=[], kind_scopes={}, fleet_kinds=["z"])
    read_a = {("a", "read"): ["x"]}
    for bad, fleet in (
        ({("a", "write"): ["y"]}, ()),  # admin only: no scope may open it
        ({("a", "read"): ["y"]}, ("a",)),  # a fleet read takes no grant
        ({("b", "read"): ["y"]}, ()),
    ):
        with pytest.raises(ValueError, match="grant_scopes"):
            Policy.build(
                kinds=["a"],
                admin_scopes=[],
                kind_scopes=read_a,
                fleet_kinds=fleet,
                grant_scopes=bad,
            )


def test_grant_scopes_need_the_grant_and_never_list() -> None:
    policy = Policy.build(
        kinds=["doc"],
        admin_scopes=[],
        kind_scopes={("doc", "read"): ["doc:read"], ("doc", "write"): ["doc:write"]},
        grant_scopes={("doc", "read"): ["doc:write"]},
    )
    store = DictStore({("doc", "d1", "alice"): Level.WRITE})
    engine = PermissionEngine(name="t", policy=policy, store=store)
    alice = principal(Case(policy, {}, ["doc:write"], "alice"))
    bob = principal(Case(policy, {}, ["doc:write"], "bob"))
    assert asyncio.run(engine_allows(engine, alice, "doc", "d1", "read"))
    assert not asyncio.run(engine_allows(engine, bob, "doc", "d1", "read"))  # no grant
    assert not asyncio.run(engine_allows(engine, alice, "doc", None, "read"))  # kind level
    assert asyncio.run(engine.accessible_ids(alice, "doc", "read", LOG)) == frozenset()


async def test_engine_on_sqlite_with_owner_kind(db_path: Path) -> None:
    policy = Policy.build(
        kinds=["task", "result"],
        admin_scopes=["*"],
        kind_scopes={("result", "read"): ["results:read"], ("task", "read"): ["tasks:read"]},
        owner_kinds={"result": "task"},
    )
    db = await Database.open(db_path)
    try:
        store = SqliteGrantStore(db)
        engine = PermissionEngine(name="t", policy=policy, store=store)
        await store.grant("task", "t1", "alice", Level.WRITE)
        alice = principal(Case(policy, {}, ["results:read"], "alice"))
        bob = principal(Case(policy, {}, ["results:read"], "bob"))
        assert await engine_allows(engine, alice, "result", "t1", "read")
        assert not await engine_allows(engine, bob, "result", "t1", "read")
        assert await engine.accessible_ids(alice, "result", "read", LOG) == frozenset({"t1"})
        assert await engine.accessible_ids(bob, "result", "read", LOG) == frozenset()
    finally:
        await db.close()


def _covering_engine(grants: dict[tuple[str, str, str], Level]) -> PermissionEngine:
    policy = Policy.build(
        kinds=["doc", "run"],
        admin_scopes=["root"],
        kind_scopes={("doc", "read"): ["s:1"], ("doc", "write"): ["s:1"]},
    )
    return PermissionEngine(
        name="t",
        policy=policy,
        store=DictStore(grants),
        covering={"doc": lambda rid: [("run", rid.partition("/")[0])]},
    )


async def test_covering_grant_allows_only_at_the_needed_level_with_the_kind_scope() -> None:
    engine = _covering_engine({("run", "r1", "alice"): Level.READ})
    alice = PrincipalContext(
        principal_id="alice", org_id="o", external_id="a", principal_type="user", scopes=["s:1"]
    )
    await engine.require(alice, ResourceRef(kind="doc", id="r1/x"), "read", LOG)
    for rid, action, why in [
        ("r1/x", "write", "no grant"),  # the covering grant is READ only
        ("r2/x", "read", "no grant"),  # another resource's grant never covers it
    ]:
        with pytest.raises(HTTPException) as denied:
            await engine.require(alice, ResourceRef(kind="doc", id=rid), action, LOG)
        assert denied.value.status_code == 403
        assert why in str(denied.value.detail)
    unscoped = PrincipalContext(
        principal_id="alice", org_id="o", external_id="a", principal_type="user", scopes=[]
    )
    with pytest.raises(HTTPException, match="needs scope"):
        await engine.require(unscoped, ResourceRef(kind="doc", id="r1/x"), "read", LOG)
    # Listings never count a covering grant.
    assert await engine.accessible_ids(alice, "doc", "read", LOG) == frozenset()


def test_covering_an_unknown_kind_is_refused() -> None:
    policy = Policy.build(kinds=["doc"], admin_scopes=["root"], kind_scopes={})
    with pytest.raises(ValueError, match="covering names unknown kinds"):
        PermissionEngine(
            name="t", policy=policy, store=DictStore({}), covering={"nope": lambda rid: []}
        )

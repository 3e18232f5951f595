"""The permission engine: a host's `Policy` applied to principals' scopes and grants.

Rules, in order, for `require(principal, (kind, id), action)`:

1. an unknown kind or action is denied;
2. a principal holding any admin scope is allowed everything;
3. the principal needs one of the kind-level scopes the policy maps to
   `(kind, action)` (a known pair with no entry is admin-only); for a concrete id,
   one of the policy's `grant_scopes` for the pair counts too (e.g. the scope that
   creates workflows reads one's own), but only together with the grant of rule 6;
4. with `id=None` (a kind-level check) that is enough;
5. reading a member of a fleet kind (shared infrastructure) is enough too;
6. otherwise the principal needs a grant at the level the action requires, on the
   resource itself or, for kinds owned through another kind (result -> task), on
   the owning resource with the same id. `admin` is never satisfied by a grant.

When rule 6 (or the id length limit) denies a concrete id of a kind the engine was
given `covering` for, one more chance: the principal holding the kind scope and a
grant at the needed level on any of the resources `covering[kind](id)` names (e.g.
an artifact's job, a prefix's ancestors) is allowed.

`accessible_ids` follows the same rules: `None` (no filter) for admins and fleet
reads, else the frozenset of ids the principal holds grants on (empty when a rule
above denies). `grant_scopes` and `covering` never count there: listing needs the
kind scope and a grant on the id itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from fastapi import HTTPException
from lumid_hooks import PrincipalContext, ResourceRef

from .limits import MAX_ID_BYTES
from .store import GrantStore, Level
from .unavailable import guarded

__all__ = ["DEFAULT_ACTION_LEVELS", "Covering", "PermissionEngine", "Policy"]

DEFAULT_ACTION_LEVELS: Final[Mapping[str, Level | None]] = MappingProxyType(
    {"read": Level.READ, "write": Level.WRITE, "cancel": Level.WRITE, "admin": None}
)

Covering = Callable[[str], Iterable[tuple[str, str]]]
"""An id -> the `(kind, id)` resources whose grant also covers it (pure, no I/O)."""


def _frozen(
    mapping: Mapping[tuple[str, str], Iterable[str]],
) -> Mapping[tuple[str, str], frozenset[str]]:
    return MappingProxyType({key: frozenset(value) for key, value in mapping.items()})


@dataclass(frozen=True)
class Policy:
    """What a host's kinds, actions and scopes mean. Pure data; no I/O."""

    kinds: frozenset[str]
    admin_scopes: frozenset[str]
    kind_scopes: Mapping[tuple[str, str], frozenset[str]]
    action_levels: Mapping[str, Level | None] = DEFAULT_ACTION_LEVELS
    owner_kinds: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    fleet_kinds: frozenset[str] = frozenset()
    grant_scopes: Mapping[tuple[str, str], frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """(kind, action) -> more scopes that pass a check on a concrete id, and only when
    the grant the action needs is held too (never kind-level checks or listings)."""

    @classmethod
    def build(
        cls,
        *,
        kinds: Iterable[str],
        admin_scopes: Iterable[str],
        kind_scopes: Mapping[tuple[str, str], Iterable[str]],
        action_levels: Mapping[str, Level | None] = DEFAULT_ACTION_LEVELS,
        owner_kinds: Mapping[str, str] | None = None,
        fleet_kinds: Iterable[str] = (),
        grant_scopes: Mapping[tuple[str, str], Iterable[str]] | None = None,
    ) -> Policy:
        """Build a policy from plain iterables, checking it is self-consistent."""
        policy = cls(
            kinds=frozenset(kinds),
            admin_scopes=frozenset(admin_scopes),
            kind_scopes=_frozen(kind_scopes),
            action_levels=MappingProxyType(dict(action_levels)),
            owner_kinds=MappingProxyType(dict(owner_kinds or {})),
            fleet_kinds=frozenset(fleet_kinds),
            grant_scopes=_frozen(grant_scopes or {}),
        )
        for kind, action in policy.kind_scopes:
            if kind not in policy.kinds or action not in policy.action_levels:
                raise ValueError(f"kind_scopes names unknown pair ({kind!r}, {action!r})")
        for kind, owner in policy.owner_kinds.items():
            if kind not in policy.kinds or owner not in policy.kinds:
                raise ValueError(f"owner_kinds maps unknown kind {kind!r} -> {owner!r}")
        if not policy.fleet_kinds <= policy.kinds:
            raise ValueError("fleet_kinds names unknown kinds")
        for kind, action in policy.grant_scopes:
            fleet_read = action == "read" and kind in policy.fleet_kinds
            listed = (kind, action) in policy.kind_scopes  # else the pair is admin only
            if not listed or policy.action_levels.get(action) is None or fleet_read:
                raise ValueError(
                    f"grant_scopes names a pair not decided by a grant ({kind!r}, {action!r})"
                )
        return policy

    def is_admin(self, scopes: Iterable[str]) -> bool:
        """Whether any of `scopes` is an admin scope."""
        admin = self.admin_scopes
        return any(s in admin for s in scopes)

    def scope_allows(self, scopes: Iterable[str], kind: str, action: str) -> bool:
        """Whether `scopes` hold a kind-level scope for `(kind, action)` (never a grant scope)."""
        wanted = self.kind_scopes.get((kind, action))
        return wanted is not None and any(s in wanted for s in scopes)


class PermissionEngine:
    """`lumid_hooks.PermissionChecker` over a `Policy` and a `GrantStore`.

    `name` is the hook's name hosts log; `covering` maps a kind of the policy to the
    resources whose grant also covers one of its ids (see the module docstring).
    Raises ValueError when `covering` names a kind the policy does not know.
    """

    def __init__(
        self,
        *,
        name: str,
        policy: Policy,
        store: GrantStore,
        covering: Mapping[str, Covering] | None = None,
    ) -> None:
        unknown = sorted(set(covering or {}) - policy.kinds)
        if unknown:
            raise ValueError(f"covering names unknown kinds {unknown!r}")
        self.name = name
        self.policy = policy
        self._store = store
        self._levels = policy.action_levels
        self._kinds = policy.kinds
        self._admin = policy.admin_scopes
        self._kind_scopes = policy.kind_scopes
        self._owner = policy.owner_kinds
        self._fleet = policy.fleet_kinds
        self._grant_scopes = policy.grant_scopes
        self._covering: Mapping[str, Covering] = MappingProxyType(dict(covering or {}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def require(
        self,
        principal: PrincipalContext,
        resource: ResourceRef,
        action: str,
        logger: logging.Logger,
    ) -> None:
        """Return if `principal` may `action` `resource`, else raise.

        Raises `HTTPException(403)` naming the rule that denied, or
        `HTTPException(503)` when the grant store cannot be reached.
        """
        kind = resource.kind
        rid = resource.id
        try:
            if kind not in self._kinds or action not in self._levels:
                raise _deny(kind, rid, action, "unknown kind or action")
            if rid is not None and len(rid) > _SHORT_ID_CHARS and id_too_long(rid):
                raise _deny(kind, rid[:64] + "...", action, f"id longer than {MAX_ID_BYTES} bytes")
            scopes = principal.scopes
            admin = self._admin
            for s in scopes:
                if s in admin:
                    return
            wanted = self._kind_scopes.get((kind, action))
            if wanted is None:
                raise _deny(kind, rid, action, "admin only")
            for s in scopes:
                if s in wanted:
                    break
            else:
                # Off the hot path: only a principal without the kind scope gets here.
                extra = self._grant_scopes.get((kind, action)) if rid is not None else None
                if extra is None or not any(s in extra for s in scopes):
                    raise _deny(kind, rid, action, "needs scope " + " or ".join(sorted(wanted)))
            if rid is None or (action == "read" and kind in self._fleet):
                return
            needed = self._levels[action]
            if needed is None:
                raise _deny(kind, rid, action, "admin only")
            held = await guarded(
                self._store.level(self._owner.get(kind, kind), rid, principal.principal_id),
                "require",
            )
            if held is None or held < needed:
                logger.debug(
                    "%s: %s may not %s %s %s", self.name, principal.principal_id, action, kind, rid
                )
                raise _deny(kind, rid, action, "no grant" if held is None else "grant too low")
        except HTTPException as denied:
            cover = self._covering.get(kind)
            if denied.status_code != 403 or rid is None or cover is None:  # 503: store down
                raise
            if not await self._covered(principal, kind, rid, action, cover):
                raise
            logger.debug(
                "%s: %s may %s %s %s through a covering grant",
                self.name,
                principal.principal_id,
                action,
                kind,
                rid,
            )

    async def _covered(
        self, principal: PrincipalContext, kind: str, rid: str, action: str, cover: Covering
    ) -> bool:
        if not self.policy.scope_allows(principal.scopes, kind, action):
            return False
        needed = self._levels.get(action)
        if needed is None:
            return False
        pid = principal.principal_id
        for ckind, cid in cover(rid):
            held = await guarded(self._store.level(ckind, cid, pid), "require")
            if held is not None and held >= needed:
                return True
        return False

    async def accessible_ids(
        self,
        principal: PrincipalContext,
        kind: str,
        action: str,
        logger: logging.Logger,
    ) -> frozenset[str] | None:
        """The ids of `kind` the principal may `action`; None means all of them.

        Raises `HTTPException(503)` when the grant store cannot be reached.
        """
        policy = self.policy
        if kind not in self._kinds or action not in self._levels:
            return frozenset()
        if policy.is_admin(principal.scopes):
            return None
        if not policy.scope_allows(principal.scopes, kind, action):
            return frozenset()
        if action == "read" and kind in self._fleet:
            return None
        needed = self._levels[action]
        if needed is None:
            return frozenset()
        return await guarded(
            self._store.ids(self._owner.get(kind, kind), principal.principal_id, needed),
            "accessible_ids",
        )


_SHORT_ID_CHARS: Final = MAX_ID_BYTES // 4
"""Ids of at most this many characters are within MAX_ID_BYTES however encoded."""


def id_too_long(rid: str) -> bool:
    """Whether `rid` exceeds MAX_ID_BYTES in UTF-8 (no grant can exist for it)."""
    return len(rid.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES


def _deny(kind: str, rid: str | None, action: str, why: str) -> HTTPException:
    target = f"{kind} {rid!r}" if rid is not None else f"any {kind}"
    return HTTPException(status_code=403, detail=f"forbidden: {action} on {target} ({why})")

"""The host-neutral steps: identity, permission checks, registrar (who, which hook, expected).

Each step is a frozen dataclass holding only data; `play` makes the host's call(s)
against the session's bindings and reports each outcome on the session's `Walk`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumid_hooks import PrincipalContext, ResourceRef

from .report import show
from .session import Session, log

__all__ = [
    "Cached",
    "Guards",
    "Listing",
    "NoPrincipal",
    "Reconcile",
    "Register",
    "Require",
    "Resolve",
    "Revoked",
]


def _describe(p: PrincipalContext) -> str:
    scopes = f"{len(p.scopes)} scopes" if len(p.scopes) > 3 else f"scopes={list(p.scopes)}"
    return f"{p.principal_id} ({p.principal_type}, {p.external_id}), {scopes}"


# -- identity --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolve:
    """`who`'s token through the identity chain must resolve to `who`'s lum.id subject."""

    who: str
    scheme: str = "Bearer"
    env_var: str | None = None
    """Take the token from this operator variable instead of `who`'s own."""
    says: str = ""

    async def play(self, s: Session) -> None:
        """Resolve, check the subject, remember the principal for later steps."""
        token = s.env[self.env_var] if self.env_var else s.people[self.who].token
        principal = await s.chain(f"{self.scheme} {token}")
        ok = principal is not None and principal.principal_id == s.people[self.who].sub
        detail = _describe(principal) if principal is not None else "did not resolve"
        if s.walk.check(self.says or f"{self.who:<6} resolved", ok, detail) and principal:
            s.principals[self.who] = principal


@dataclass(frozen=True)
class NoPrincipal:
    """An Authorization header that must resolve to no principal (the host answers 401)."""

    authorization: str | None
    says: str
    offline: bool = False
    """Also expect no introspection call to lum.id."""

    async def play(self, s: Session) -> None:
        """Run the chain and count lum.id's introspections around it."""
        before = s.lumid.introspections()
        principal = await s.chain(self.authorization)
        quiet = not self.offline or s.lumid.introspections() == before
        s.walk.check(self.says, principal is None and quiet)


@dataclass(frozen=True)
class Revoked:
    """A token lum.id revoked must resolve to no principal, whatever its scopes."""

    scopes: tuple[str, ...]
    says: str = "revoked token -> no principal (host answers 401)"

    async def play(self, s: Session) -> None:
        """Issue a token on the emulator, revoke it, run the chain."""
        token = s.lumid.add_token("mallory", scopes=list(self.scopes), email="m@lumid.example")
        s.lumid.revoke(token)
        s.walk.check(self.says, await s.chain(f"Bearer {token}") is None)


@dataclass(frozen=True)
class Cached:
    """`who` again: served from the plugin's positive cache, no new introspection."""

    who: str
    says: str

    async def play(self, s: Session) -> None:
        """Resolve again and compare lum.id's introspection count."""
        before = s.lumid.introspections()
        principal = await s.chain(f"Bearer {s.people[self.who].token}")
        s.walk.check(self.says, principal is not None and s.lumid.introspections() == before)


# -- permissions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Require:
    """`require(kind, id, action)` for `who`: allowed, or denied with `denied` status."""

    who: str
    kind: str
    id: str | None
    action: str
    denied: int | None = None
    why: str = ""

    async def play(self, s: Session) -> None:
        """Run every checker's `require`."""
        call = f"require({self.kind}, {self.id or '-'}, {self.action})"
        call += f" {self.why}" if self.why else ""
        check = s.require(self.who, self.kind, self.id, self.action)
        if self.denied is None:
            await s.walk.allowed(self.who, call, check)
        else:
            await s.walk.denied(self.who, call, check, self.denied)


@dataclass(frozen=True)
class Listing:
    """`accessible_ids(kind, action)` for `who` must be exactly `expect` (EVERY: no filter)."""

    who: str
    kind: str
    action: str
    expect: frozenset[str] | None

    async def play(self, s: Session) -> None:
        """Intersect every checker's answer, as the hosts do."""
        call = f"accessible_ids({self.kind}, {self.action})"
        result = s.accessible(self.who, self.kind, self.action)
        await s.walk.allowed(self.who, call, result, show(self.expect))


@dataclass(frozen=True)
class Guards:
    """The submission guards for `who`: all pass, or one denies with `denied` status."""

    who: str
    why: str
    denied: int | None = None

    async def play(self, s: Session) -> None:
        """Run every guard in order."""
        call = f"submission guards ({self.why})"
        if self.denied is None:
            passed = f"{len(s.bindings.submission_guards)} guard(s) passed"
            await s.walk.allowed(self.who, call, s.guards(self.who), passed)
        else:
            await s.walk.denied(self.who, call, s.guards(self.who), self.denied)


# -- registrar -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Register:
    """`who` creates `refs`: every registrar's `register` must succeed."""

    who: str
    refs: tuple[ResourceRef, ...]
    says: str

    async def play(self, s: Session) -> None:
        """Register each ref with every registrar (an exception fails the step)."""
        principal = s.principal(self.who)
        for ref in self.refs:
            for registrar in s.bindings.resource_registrars:
                await registrar.register(principal, ref, log)
        s.walk.check(self.says, True)


@dataclass(frozen=True)
class Reconcile:
    """The startup sweep with the live refs: every registrar's `reconcile` must succeed."""

    refs: tuple[ResourceRef, ...]
    says: str

    async def play(self, s: Session) -> None:
        """Reconcile every registrar (an exception fails the step)."""
        for registrar in s.bindings.resource_registrars:
            await registrar.reconcile(list(self.refs), log)
        s.walk.check(self.says, True)

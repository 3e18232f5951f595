"""A walk's session: the loaded bindings, the emulators, the principals, and the hosts' calls.

Steps (`steps`, `host_steps`) hold only data; each `play`s against a `Session`, which
makes the calls the way the hosts compose them (identity chain in order, every
`require` must pass, `accessible_ids` intersected).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from lumid_hooks import HookBindings, PrincipalContext, ResourceRef

from lumid_fakes import FakeLumId, FakeOptimizer, FakeRunmesh

from .report import Walk, show

if TYPE_CHECKING:
    from flowmesh_hook import SupplierResolver
    from lumilake_hook import OptimizerProvider

__all__ = ["EVERY", "Person", "Section", "Session", "Step", "StepError", "log"]

log = logging.getLogger("host")

EVERY: Final = None
"""A listing's expectation when the principal sees every resource (no filter)."""


class StepError(RuntimeError):
    """A step could not be played (e.g. it needs a principal an earlier step did not resolve)."""


@dataclass(frozen=True)
class Person:
    """A lum.id account of the walk, with the token the emulator issued for it."""

    label: str
    sub: str
    email: str
    role: str
    scopes: tuple[str, ...]
    token: str


@dataclass
class Session:
    """What the steps of one scenario share: the loaded bindings, the emulators, the
    operator's environment and the principals resolved so far."""

    walk: Walk
    env: Mapping[str, str]
    bindings: HookBindings
    people: Mapping[str, Person]
    lumid: FakeLumId
    any_case_scheme: bool
    """Lumilake matches the bearer scheme in any case; FlowMesh strips exactly "Bearer "."""
    suppliers: Sequence[SupplierResolver] = ()
    optimizers: Sequence[OptimizerProvider] = ()
    runmesh: FakeRunmesh | None = None
    optimizer: FakeOptimizer | None = None
    principals: dict[str, PrincipalContext] = field(default_factory=dict)

    def principal(self, who: str) -> PrincipalContext:
        """The principal an earlier `Resolve` step stored under `who`."""
        try:
            return self.principals[who]
        except KeyError:
            raise StepError(f"{who} was not resolved by an earlier step") from None

    def need_runmesh(self) -> FakeRunmesh:
        """The Runmesh emulator, for the billing steps."""
        if self.runmesh is None:
            raise StepError("this scenario runs no Runmesh emulator")
        return self.runmesh

    def need_optimizer(self) -> FakeOptimizer:
        """The remote optimizer emulator, for the optimizer steps."""
        if self.optimizer is None:
            raise StepError("this scenario runs no optimizer emulator")
        return self.optimizer

    async def chain(self, authorization: str | None) -> PrincipalContext | None:
        """The hosts' identity chain over an Authorization header, providers in order."""
        token = ""
        if authorization is not None:
            scheme, _, rest = authorization.partition(" ")
            if scheme == "Bearer" or (self.any_case_scheme and scheme.lower() == "bearer"):
                token = rest
        for provider in self.bindings.identity_providers:
            principal = await provider.resolve(token, log)
            if principal is not None:
                return principal
        return None

    async def require(self, who: str, kind: str, id: str | None, action: str) -> None:
        """Every permission checker's `require` (the hosts compose them with AND)."""
        principal = self.principal(who)
        for checker in self.bindings.permission_checkers:
            await checker.require(principal, ResourceRef(kind=kind, id=id), action, log)

    async def accessible(self, who: str, kind: str, action: str) -> str:
        """The hosts' listing filter: results intersected, None = no filter."""
        principal = self.principal(who)
        result: frozenset[str] | None = None
        for checker in self.bindings.permission_checkers:
            ids = await checker.accessible_ids(principal, kind, action, log)
            if ids is not None:
                result = ids if result is None else result & ids
        return show(result)

    async def guards(self, who: str) -> str:
        """Every submission guard, in order (POST /workflows)."""
        principal = self.principal(who)
        for guard in self.bindings.submission_guards:
            await guard.check(principal, log)
        return f"{len(self.bindings.submission_guards)} guard(s) passed"


class Step(Protocol):
    """One call (or a few) the host makes, with what the walk expects of it."""

    async def play(self, s: Session) -> None:
        """Make the call(s) and report each outcome on `s.walk`."""
        ...


@dataclass(frozen=True)
class Section:
    """A titled group of steps, printed as one block."""

    title: str
    steps: tuple[Step, ...]

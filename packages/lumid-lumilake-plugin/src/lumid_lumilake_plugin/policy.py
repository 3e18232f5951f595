"""What Lumilake's kinds, actions and lum.id scopes mean (pure data, no I/O).

docs/lumilake.md publishes this table; keep the two in step.

- Admins (`*`, `lumilake:*`, `lumilake:admin`) may do everything. Another
  service's admin scope (`flowmesh:admin`) does not count: lum.id scopes are per
  service, and a FlowMesh operator token must not become a Lumilake admin token.
- Kind-level scopes accept lum.id's documented names and the earlier plugin's.
  Reading one's own jobs (and their artifacts) needs any jobs scope: whoever may
  submit or cancel a job may see it. Concrete jobs, traces and artifacts also need
  a grant (the registrar gives creators WRITE).
- Workers are a fleet: `lumilake:workers:read` sees all of them.
- Tables and object prefixes are never registered by Lumilake: a check needs a
  jobs-submitting scope AND a grant an operator added (`lumid grant ...`), so
  nothing is open to everyone until someone decides it is.
- Any (kind, action) pair not listed (system, worker write, ...) is admin only.
"""

from __future__ import annotations

from typing import Final

from lumilake_hook import ResourceAction, ResourceKind

from lumid_core import Policy

__all__ = ["ADMIN_SCOPES", "ARTIFACT", "JOB", "KIND_SCOPES", "LUMILAKE_POLICY", "OBJECT_PREFIX"]

ADMIN_SCOPES: Final = frozenset({"*", "lumilake:*", "lumilake:admin"})

_K = ResourceKind
_A = ResourceAction

# The kinds the permissions adapter resolves through other grants (permissions.py).
JOB: Final = str(_K.JOB)
ARTIFACT: Final = str(_K.ARTIFACT)
OBJECT_PREFIX: Final = str(_K.OBJECT_PREFIX)

# lum.id's documented names first, then the earlier plugin's.
_SUBMIT: Final = frozenset({"lumilake:jobs:submit", "lumilake:jobs:write"})
_CANCEL: Final = frozenset({"lumilake:jobs:cancel"})
# Whoever may submit or cancel a job may see it.
_JOB_READ: Final = _SUBMIT | _CANCEL | {"lumilake:jobs:read"}

KIND_SCOPES: Final[dict[tuple[str, str], frozenset[str]]] = {
    (_K.JOB, _A.READ): _JOB_READ,
    (_K.JOB, _A.WRITE): _SUBMIT,
    (_K.JOB, _A.CANCEL): _CANCEL,
    (_K.ARTIFACT, _A.READ): _JOB_READ,
    (_K.TRACE, _A.READ): frozenset({"lumilake:trace:read", "lumilake:jobs:read"}),
    (_K.WORKER, _A.READ): frozenset({"lumilake:workers:read"}),
    (_K.TABLE, _A.READ): _SUBMIT | {"lumilake:metadata:write"},
    (_K.TABLE, _A.WRITE): _SUBMIT | {"lumilake:metadata:write"},
    (_K.OBJECT_PREFIX, _A.READ): _SUBMIT,
    (_K.OBJECT_PREFIX, _A.WRITE): _SUBMIT,
}

LUMILAKE_POLICY: Final = Policy.build(
    kinds=[str(k) for k in ResourceKind],
    admin_scopes=ADMIN_SCOPES,
    kind_scopes={(str(k), str(a)): v for (k, a), v in KIND_SCOPES.items()},
    fleet_kinds=[str(_K.WORKER)],
)

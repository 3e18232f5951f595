"""FlowMesh's authorization policy, applied by `lumid_core.PermissionEngine`.

- admin scopes: `*`, `flowmesh:*`, `flowmesh:admin` (allowed everything);
- kind-level scopes per (kind, action) below; any pair not listed (system admin,
  task write, cancel on results / nodes / workers, ...) needs an admin scope;
- cancelling a workflow or stopping a task is a workflow write: owners holding
  `flowmesh:workflows:write` (and the WRITE grant the submitter gets) may do it;
- a concrete id also needs a grant (WRITE for write/cancel, READ for read); a RESULT
  id is a task id and is checked against the TASK grant;
- the scope that creates workflows (`flowmesh:workflows:write`, all that a
  `flowmesh:write` PAT brings) also reads, by id, the workflows, tasks and results
  the principal holds a grant on (GRANT_SCOPES): a client that submits can poll what
  it submitted. Listings still need the read scopes;
- NODE and WORKER are fleet kinds: their read scope alone reads any of them and
  lists them all (the fleet's own credential owns them); mutating one needs a grant.
"""

from __future__ import annotations

from typing import Final

from flowmesh_hook import ResourceAction, ResourceKind

from lumid_core import Policy

__all__ = ["ADMIN_SCOPES", "FLOWMESH_POLICY", "GRANT_SCOPES", "KIND_SCOPES"]

ADMIN_SCOPES: Final = frozenset({"*", "flowmesh:*", "flowmesh:admin"})

_K = ResourceKind
_A = ResourceAction

KIND_SCOPES: Final[dict[tuple[str, str], frozenset[str]]] = {
    (_K.WORKFLOW, _A.READ): frozenset({"flowmesh:workflows:read"}),
    (_K.WORKFLOW, _A.WRITE): frozenset({"flowmesh:workflows:write"}),
    # lum.id has no cancel scope: stopping your own work is part of writing it.
    (_K.WORKFLOW, _A.CANCEL): frozenset({"flowmesh:workflows:write"}),
    (_K.TASK, _A.READ): frozenset({"flowmesh:tasks:read"}),
    (_K.TASK, _A.CANCEL): frozenset({"flowmesh:workflows:write"}),
    (_K.RESULT, _A.READ): frozenset({"flowmesh:results:read"}),
    (_K.RESULT, _A.WRITE): frozenset({"flowmesh:results:write"}),
    (_K.NODE, _A.READ): frozenset({"flowmesh:nodes:read"}),
    (_K.NODE, _A.WRITE): frozenset({"flowmesh:nodes:write"}),
    (_K.WORKER, _A.READ): frozenset({"flowmesh:workers:read"}),
    (_K.WORKER, _A.WRITE): frozenset({"flowmesh:workers:write"}),
    (_K.SYSTEM, _A.READ): frozenset({"flowmesh:system:read"}),
}

# Concrete-id reads the creating scope also passes, with the grant (never listings).
_CREATOR: Final = frozenset({"flowmesh:workflows:write"})
GRANT_SCOPES: Final[dict[tuple[str, str], frozenset[str]]] = {
    (_K.WORKFLOW, _A.READ): _CREATOR,
    (_K.TASK, _A.READ): _CREATOR,
    (_K.RESULT, _A.READ): _CREATOR,
}

FLOWMESH_POLICY: Final = Policy.build(
    kinds=[str(k) for k in ResourceKind],
    admin_scopes=ADMIN_SCOPES,
    kind_scopes={(str(k), str(a)): v for (k, a), v in KIND_SCOPES.items()},
    owner_kinds={str(_K.RESULT): str(_K.TASK)},
    fleet_kinds=[str(_K.NODE), str(_K.WORKER)],
    grant_scopes={(str(k), str(a)): v for (k, a), v in GRANT_SCOPES.items()},
)

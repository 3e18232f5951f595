"""FlowMesh's authorization policy, applied by `lumid_core.PermissionEngine`.

- admin scopes: `*`, `flowmesh:*`, `flowmesh:admin` (allowed everything);
- kind-level scopes per (kind, action) below; any pair not listed (system admin,
  task write, cancel on results / nodes / workers, ...) needs an admin scope;
- cancelling a workflow or stopping a task is a workflow write: owners holding
  `flowmesh:workflows:write` (and the WRITE grant the submitter gets) may do it;
- a concrete id also needs a grant (WRITE for write/cancel, READ for read); a RESULT
  id is a task id and is checked against the TASK grant;
- NODE and WORKER are fleet kinds: their read scope alone reads any of them and
  lists them all (the fleet's own credential owns them); mutating one needs a grant.
"""

from __future__ import annotations

from typing import Final

from flowmesh_hook import ResourceAction, ResourceKind

from lumid_core import Policy

__all__ = ["ADMIN_SCOPES", "FLOWMESH_POLICY", "KIND_SCOPES"]

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

FLOWMESH_POLICY: Final = Policy.build(
    kinds=[str(k) for k in ResourceKind],
    admin_scopes=ADMIN_SCOPES,
    kind_scopes={(str(k), str(a)): v for (k, a), v in KIND_SCOPES.items()},
    owner_kinds={str(_K.RESULT): str(_K.TASK)},
    fleet_kinds=[str(_K.NODE), str(_K.WORKER)],
)

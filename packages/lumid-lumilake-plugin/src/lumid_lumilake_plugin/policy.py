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

__all__ = [
    "ADMIN_SCOPES",
    "KIND_SCOPES",
    "LUMILAKE_POLICY",
    "build_policy",
]

JOB: Final = ResourceKind.JOB.value
TRACE: Final = ResourceKind.TRACE.value
ARTIFACT: Final = ResourceKind.ARTIFACT.value
WORKER: Final = ResourceKind.WORKER.value
TABLE: Final = ResourceKind.TABLE.value
OBJECT_PREFIX: Final = ResourceKind.OBJECT_PREFIX.value
READ: Final = ResourceAction.READ.value
WRITE: Final = ResourceAction.WRITE.value
CANCEL: Final = ResourceAction.CANCEL.value

ADMIN_SCOPES: Final = ("*", "lumilake:*", "lumilake:admin")

# lum.id's documented names first, then the earlier plugin's.
_SUBMIT: Final = ("lumilake:jobs:submit", "lumilake:jobs:write")
_CANCEL: Final = ("lumilake:jobs:cancel",)
_JOB_READ: Final = (*_SUBMIT, *_CANCEL, "lumilake:jobs:read")

KIND_SCOPES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    (JOB, READ): _JOB_READ,
    (JOB, WRITE): _SUBMIT,
    (JOB, CANCEL): _CANCEL,
    (ARTIFACT, READ): _JOB_READ,
    (TRACE, READ): ("lumilake:trace:read", "lumilake:jobs:read"),
    (WORKER, READ): ("lumilake:workers:read",),
    (TABLE, READ): (*_SUBMIT, "lumilake:metadata:write"),
    (TABLE, WRITE): (*_SUBMIT, "lumilake:metadata:write"),
    (OBJECT_PREFIX, READ): _SUBMIT,
    (OBJECT_PREFIX, WRITE): _SUBMIT,
}


def build_policy() -> Policy:
    return Policy.build(
        kinds=[k.value for k in ResourceKind],
        admin_scopes=ADMIN_SCOPES,
        kind_scopes=KIND_SCOPES,
        fleet_kinds=[WORKER],
    )


LUMILAKE_POLICY: Final = build_policy()

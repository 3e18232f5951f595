r"""Lumilake's permission checker: the core engine plus two Lumilake resolutions.

When the engine denies a concrete id for want of a grant (never for want of a
scope), two more grants may still allow it (the engine's `covering`):

- an artifact `"{job_id}/{filename}"` may be read by whoever may read its job, so
  a job's outputs stay readable when their own registration is missing. Only ids
  with exactly one `/` qualify (Lumilake's route parameters cannot hold a `/`), so
  one job's grant can never reach another job's artifacts; a filename `.` or `..`,
  or holding a `\` (also percent-encoded, like `/`), never qualifies;
- an object prefix is covered by a grant on any ancestor at a `/` boundary
  (`s3://bucket/team/` covers `s3://bucket/team/job-7/`, never
  `s3://bucket/team-b/`); prefixes with `.`, `..`, an encoded `/`, a `\` (also
  percent-encoded) or empty segments get exact matches only.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final
from urllib.parse import unquote

from lumid_core import GrantStore, PermissionEngine
from lumid_core.permissions import Covering

from .policy import ARTIFACT, JOB, LUMILAKE_POLICY, OBJECT_PREFIX

__all__ = ["COVERING", "LumilakePermissions", "artifact_job_id", "prefix_ancestors"]

_MAX_DEPTH: Final = 32


def artifact_job_id(artifact_id: str) -> str | None:
    """The job of an artifact id `"{job_id}/{filename}"`, or None if not of that shape."""
    job_id, sep, filename = artifact_id.partition("/")
    if not sep or not job_id or not filename or _dot_segment(filename):
        return None
    decoded = unquote(filename)
    if "/" in decoded or "\\" in decoded:  # a `/` or `\`, also percent-encoded
        return None
    return job_id


def _dot_segment(part: str) -> bool:
    r"""Whether `part` is `.`/`..` or may carry a `/` or `\` past a layer that decodes it.

    That is `.` or `..`, also percent-encoded (a layer below may decode it), or a
    segment hiding an encoded `/` or a `\` (`x%2F..`), which may decode to one.
    """
    decoded = unquote(part)
    return decoded in (".", "..") or (decoded != part and "/" in decoded) or "\\" in decoded


def prefix_ancestors(prefix: str) -> list[str]:
    """Ancestors of an object prefix at `/` boundaries, nearest first (never itself)."""
    scheme, sep, rest = prefix.partition("://")
    if not sep:
        scheme, rest = "", prefix
    head = scheme + sep
    parts = rest.split("/")
    if len(parts) > _MAX_DEPTH or any(_dot_segment(p) for p in parts):
        return []
    if any(p == "" for p in parts[1:-1]) or (sep and not parts[0]):
        return []
    out: list[str] = []
    for i in range(len(parts) - 1, 0, -1):
        base = head + "/".join(parts[:i])
        for candidate in (base + "/", base):
            if candidate and candidate != prefix and candidate not in out:
                out.append(candidate)
    return out


def _artifact_covered_by(artifact_id: str) -> list[tuple[str, str]]:
    job_id = artifact_job_id(artifact_id)
    return [] if job_id is None else [(JOB, job_id)]


def _prefix_covered_by(prefix: str) -> list[tuple[str, str]]:
    return [(OBJECT_PREFIX, ancestor) for ancestor in prefix_ancestors(prefix)]


COVERING: Final[Mapping[str, Covering]] = MappingProxyType(
    {ARTIFACT: _artifact_covered_by, OBJECT_PREFIX: _prefix_covered_by}
)
"""The two Lumilake resolutions, as the core engine's `covering` (module docstring)."""


class LumilakePermissions(PermissionEngine):
    """The core permission engine over `LUMILAKE_POLICY` with Lumilake's `COVERING`."""

    def __init__(self, *, name: str, store: GrantStore) -> None:
        super().__init__(name=name, policy=LUMILAKE_POLICY, store=store, covering=COVERING)

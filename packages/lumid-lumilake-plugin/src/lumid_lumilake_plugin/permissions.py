"""Lumilake's permission checker: the core engine plus two Lumilake resolutions.

When the engine denies a concrete id for want of a grant (never for want of a
scope), two more grants may still allow it:

- an artifact `"{job_id}/{filename}"` may be read by whoever may read its job, so
  a job's outputs stay readable when their own registration is missing. Only ids
  with exactly one `/` qualify (Lumilake's route parameters cannot hold a `/`), so
  one job's grant can never reach another job's artifacts; a filename `.` or `..`,
  or holding a `\\` (also percent-encoded, like `/`), never qualifies;
- an object prefix is covered by a grant on any ancestor at a `/` boundary
  (`s3://bucket/team/` covers `s3://bucket/team/job-7/`, never
  `s3://bucket/team-b/`); prefixes with `.`, `..`, an encoded `/`, a `\\` (also
  percent-encoded) or empty segments get exact matches only.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import unquote

from fastapi import HTTPException
from lumid_hooks import PrincipalContext, ResourceRef

from lumid_core import GrantStore, PermissionEngine

from .policy import ARTIFACT, JOB, OBJECT_PREFIX

__all__ = ["LumilakePermissions", "artifact_job_id", "prefix_ancestors"]

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
    """`.` or `..`, also percent-encoded (a layer below may decode it), or a segment
    hiding an encoded `/` or a `\\` (`x%2F..`), which may decode to one."""
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


class LumilakePermissions:
    """`lumid_hooks.PermissionChecker` for Lumilake (see the module docstring)."""

    def __init__(self, *, name: str, engine: PermissionEngine, store: GrantStore) -> None:
        self.name = name
        self._engine = engine
        self._policy = engine.policy
        self._store = store

    def __repr__(self) -> str:
        return f"LumilakePermissions(name={self.name!r})"

    async def require(
        self,
        principal: PrincipalContext,
        resource: ResourceRef,
        action: str,
        logger: logging.Logger,
    ) -> None:
        try:
            await self._engine.require(principal, resource, action, logger)
        except HTTPException as denied:
            rid = resource.id
            if denied.status_code != 403 or rid is None:  # e.g. 503: the store is down
                raise
            if resource.kind not in (ARTIFACT, OBJECT_PREFIX):
                raise
            if not await self._covered(principal, resource.kind, rid, action):
                raise
            logger.debug(
                "%s: %s may %s %s %s through a covering grant",
                self.name,
                principal.principal_id,
                action,
                resource.kind,
                rid,
            )

    async def _covered(self, principal: PrincipalContext, kind: str, rid: str, action: str) -> bool:
        policy = self._policy
        if not policy.scope_allows(principal.scopes, kind, action):
            return False
        needed = policy.action_levels.get(action)
        if needed is None:
            return False
        if kind == ARTIFACT:
            job_id = artifact_job_id(rid)
            candidates = [] if job_id is None else [(JOB, job_id)]
        else:
            candidates = [(OBJECT_PREFIX, a) for a in prefix_ancestors(rid)]
        pid = principal.principal_id
        for ckind, cid in candidates:
            held = await self._store.level(ckind, cid, pid)
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
        return await self._engine.accessible_ids(principal, kind, action, logger)

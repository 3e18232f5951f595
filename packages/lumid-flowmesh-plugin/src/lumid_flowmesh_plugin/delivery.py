"""The Runmesh delivery adapter: turns one stored billing row into a Runmesh post."""

from __future__ import annotations

import time
from typing import Final

from lumid_core import PrincipalDirectory
from lumid_core.outbox import Deliver, Held, Outcome
from lumid_core.outbox import OutboxEntry as Entry
from lumid_core.store.parents import ParentLinks

from .entries import entry_body, text
from .registrar import workflow_of
from .runmesh import RunmeshClient

__all__ = ["EMAIL_TTL_SECONDS", "runmesh_delivery"]

EMAIL_TTL_SECONDS: Final = 1.0
"""How long delivery reuses a principal's email read from the directory."""
_FRESH_SECONDS: Final = 5.0
"""A row younger than this had its workflow looked up at emit: no second look."""


class _Emails:
    """Principal -> email for delivery, each read reused for `EMAIL_TTL_SECONDS`.

    An email change reaches billing within that time; bounded like the identity cache.
    """

    def __init__(self, directory: PrincipalDirectory, cap: int = 10_000) -> None:
        self._directory = directory
        self._cap = cap
        self._seen: dict[str, tuple[float, str]] = {}

    async def get(self, principal_id: str) -> str | None:
        """The email of `principal_id`, or None while the directory has none."""
        now = time.monotonic()
        hit = self._seen.get(principal_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        email = await self._directory.email_for(principal_id)
        if email is not None:
            if len(self._seen) >= self._cap:
                self._seen.clear()
            self._seen[principal_id] = (now + EMAIL_TTL_SECONDS, email)
        return email


def runmesh_delivery(
    client: RunmeshClient, directory: PrincipalDirectory, parents: ParentLinks
) -> Deliver:
    """The outbox worker's `deliver`: address each row by email, post it to Runmesh.

    A row whose principal has no email yet is held on that principal; a row stored
    without a workflow id gets one looked up again when it is no longer fresh.
    """
    emails = _Emails(directory)

    async def deliver(entry: Entry) -> Outcome:
        payload = entry.payload
        principal_id = text(payload.get("userSub"))
        email = await emails.get(principal_id)
        if email is None:
            return Held(principal_id, f"no email known for {principal_id}")
        if not payload.get("workflowId") and time.time() - entry.created_at > _FRESH_SECONDS:
            late = await workflow_of(parents, entry.key)  # registered after the emit looked
            if late is not None:
                payload = {**payload, "workflowId": late}
        return await client.post_entry(entry_body(payload, email))

    return deliver

"""The balance guard: refuse a submission (402) when Runmesh says the balance is short.

It fails open: any Runmesh failure (down, slow, wrong secret, odd reply), or a failed
read of the principal's email, allows the submission with a rate-limited warning. Its
requests use their own connection pool and a hard deadline, so they never wait behind
billing deliveries.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import HTTPException
from lumid_hooks import PrincipalContext

from lumid_core import PrincipalDirectory
from lumid_core.logs import RateLimitedLog

from .runmesh import RunmeshClient

__all__ = ["BalanceGuard"]


class BalanceGuard:
    """`lumid_hooks.SubmissionGuard` for principals of `LUMID_ORG_ID` with a known email."""

    def __init__(
        self,
        *,
        name: str,
        client: RunmeshClient,
        directory: PrincipalDirectory,
        org_id: str,
        topup_url: str | None,
        logger: logging.Logger,
        required: str = "0.01",
    ) -> None:
        self.name = name
        self._client = client
        self._directory = directory
        self._org_id = org_id
        self._topup = topup_url
        self._required = required
        self._deadline = client.guard_timeout
        self._warn = RateLimitedLog(logger, 60.0)

    def __repr__(self) -> str:
        return f"BalanceGuard(name={self.name!r})"

    async def check(self, principal: PrincipalContext, logger: logging.Logger) -> None:
        """Raise a 402 when Runmesh says the submitter's balance is short.

        Principals of another org and principals with no known email pass unchecked.
        Fails open: a Runmesh outage, a slow answer or a database fault lets the
        submission through (logged, rate-limited).
        """
        if principal.org_id != self._org_id:
            return
        try:
            email = await self._directory.email_for(principal.principal_id)
            if email is None:
                return
            async with asyncio.timeout(self._deadline):
                verdict = await self._client.check_balance(email, self._required)
        except Exception as exc:  # RunmeshUnavailable, TimeoutError, a db fault: fail open
            reason = str(exc) or type(exc).__name__
            self._warn.warning(
                "fail-open",
                "%s: Runmesh balance check failed (%s); allowing the submission",
                self.name,
                reason,
            )
            return
        if verdict.sufficient:
            return
        where = f" at {self._topup}" if self._topup else " in your Runmesh account"
        raise HTTPException(
            status_code=402,
            detail=(
                f"insufficient Runmesh balance ({verdict.balance}); at least "
                f"{self._required} is needed to submit: top up{where}"
            ),
        )

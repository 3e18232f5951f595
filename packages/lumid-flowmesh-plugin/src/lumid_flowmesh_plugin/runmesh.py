"""The Runmesh billing bridge client: entries, balance checks and a cheap probe.

Two connection pools, on purpose: billing deliveries use one bounded pool (at most
`LUMID_BILLING_CONCURRENCY` connections) and balance checks / the probe use their
own, so a submission's balance check is never queued behind a backlog of deliveries.
The bridge secret travels only in the `X-Bridge-Secret` header; it never appears in
a reason, a log line or a repr. Every exchange has one deadline (the delivery or the
guard timeout) for the whole reply and a cap on its body (`lumid_core.http.exchange`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from lumid_core.http import (
    DEFAULT_MAX_REPLY_BYTES,
    PooledClient,
    UpstreamError,
    UpstreamReply,
    exchange,
)
from lumid_core.outbox import Dead, Delivered, Outcome, Retry

__all__ = [
    "BALANCE_PATH",
    "ENTRY_PATH",
    "Balance",
    "ProbeResult",
    "RunmeshClient",
    "RunmeshUnavailable",
]

ENTRY_PATH: Final = "/billing/flowmesh-entry"
BALANCE_PATH: Final = "/billing/check-balance"
PROBE_EMAIL: Final = "lumid-doctor-probe@lumid.invalid"
_USER_AGENT: Final = "lumid-flowmesh-plugin"
_BAD_CREDENTIAL: Final = (
    "Runmesh rejected the bridge secret (HTTP {status}); check FLOWMESH_BRIDGE_SECRET"
)


class RunmeshUnavailable(UpstreamError):
    """Runmesh gave no usable answer (the message never holds the secret)."""


@dataclass(frozen=True)
class Balance:
    """Runmesh's answer to a balance check: enough or not, and the balance as sent."""

    sufficient: bool
    balance: str


@dataclass(frozen=True)
class ProbeResult:
    """What `lumid doctor` learnt from probing Runmesh: usable or not, and why.

    `variable` names what to fix when it is not usable.
    """

    ok: bool
    detail: str
    variable: str = "RUNMESH_BILLING_BASE_URL"


def _envelope(reply: UpstreamReply) -> Mapping[str, Any] | None:
    try:
        body = json.loads(reply.body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        return None
    if not isinstance(body, dict) or not isinstance(body.get("code"), int):
        return None
    return body


def _msg(body: Mapping[str, Any]) -> str:
    msg = body.get("msg")
    if msg is None:
        return "no message"
    # Stored as a dead letter's reason and logged: no lone surrogate may pass.
    return str(msg)[:300].encode("utf-8", "backslashreplace").decode("utf-8")


class RunmeshClient:
    """`POST {RUNMESH_BILLING_BASE_URL}/billing/...` with `X-Bridge-Secret`."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        delivery_timeout: float = 10.0,
        delivery_concurrency: int = 16,
        guard_timeout: float = 2.0,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        if not secret:
            raise ValueError("FLOWMESH_BRIDGE_SECRET is empty")
        self.base_url = base_url.rstrip("/")
        self.entry_url = self.base_url + ENTRY_PATH
        self.balance_url = self.base_url + BALANCE_PATH
        self.guard_timeout = guard_timeout
        self.delivery_timeout = delivery_timeout
        self._max_reply = max_reply_bytes
        headers = {"X-Bridge-Secret": secret, "User-Agent": _USER_AGENT}
        # Keep-alive pools of lumid-core (`PooledClient`): exchanges skip httpx's
        # per-request work (docs/performance.md).
        self._delivery = PooledClient(
            delivery_concurrency, timeout=delivery_timeout, headers=headers
        )
        self._guard = PooledClient(32, timeout=guard_timeout, headers=headers)

    def __repr__(self) -> str:
        return f"RunmeshClient(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        """Close both connection pools (delivery and balance checks)."""
        await self._delivery.aclose()
        await self._guard.aclose()

    async def _guarded(self, body: Mapping[str, Any]) -> UpstreamReply:
        """A balance-check exchange on the guard's pool, within the guard timeout."""
        return await exchange(
            self._guard,
            "POST",
            self.balance_url,
            deadline=self.guard_timeout,
            max_bytes=self._max_reply,
            json=dict(body),
        )

    async def post_entry(self, body: Mapping[str, Any]) -> Outcome:
        """Post one billing entry and classify the reply (never raises)."""
        try:
            reply = await exchange(
                self._delivery,
                "POST",
                self.entry_url,
                deadline=self.delivery_timeout,
                max_bytes=self._max_reply,
                json=dict(body),
            )
        except UpstreamError as exc:
            return Retry(str(exc))
        status = reply.status
        if status in (401, 403):
            return Dead(_BAD_CREDENTIAL.format(status=status))
        if status >= 500 or status in (408, 425, 429):
            return Retry(f"HTTP {status}")
        if status != 200:
            return Dead(f"HTTP {status}: {reply.text(300)}")
        envelope = _envelope(reply)
        if envelope is None:
            # A proxy's page or a half-written reply: not Runmesh's verdict yet.
            return Retry("HTTP 200 without a Runmesh envelope")
        code = envelope["code"]
        if code == 200:
            data = envelope.get("data")
            idempotent = isinstance(data, dict) and data.get("idempotent") is True
            return Delivered("already recorded (idempotent)" if idempotent else None)
        return Dead(f"Runmesh code {code}: {_msg(envelope)}")

    async def check_balance(self, email: str, required: str = "0.01") -> Balance:
        """Ask whether `email` has at least `required`; raises RunmeshUnavailable."""
        body = {"userEmail": email, "requiredAmount": required}
        try:
            reply = await self._guarded(body)
        except UpstreamError as exc:
            raise RunmeshUnavailable(str(exc)) from None
        if reply.status != 200:
            if reply.status in (401, 403):
                raise RunmeshUnavailable(_BAD_CREDENTIAL.format(status=reply.status))
            raise RunmeshUnavailable(f"HTTP {reply.status}")
        envelope = _envelope(reply)
        if envelope is None:
            raise RunmeshUnavailable("reply is not a Runmesh envelope")
        if envelope["code"] != 200:
            raise RunmeshUnavailable(f"Runmesh code {envelope['code']}: {_msg(envelope)}")
        data = envelope.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("sufficient"), bool):
            raise RunmeshUnavailable("reply has no boolean data.sufficient")
        raw = data.get("balance")
        try:
            balance = str(Decimal(str(raw))) if raw is not None else "unknown"
        except InvalidOperation:
            balance = "unknown"
        return Balance(sufficient=data["sufficient"], balance=balance)

    async def probe(self) -> ProbeResult:
        """Cheap reachability and secret check for `lumid doctor`.

        Posts a balance check for a reserved address that is no user (it charges
        nothing): any Runmesh envelope means reachable with the secret accepted;
        HTTP 401/403 means the secret is wrong.
        """
        body = {"userEmail": PROBE_EMAIL, "requiredAmount": "0.01"}
        try:
            reply = await self._guarded(body)
        except UpstreamError as exc:
            return ProbeResult(False, f"{self.balance_url}: {exc}")
        status = reply.status
        if status in (401, 403):
            return ProbeResult(
                False, _BAD_CREDENTIAL.format(status=status), "FLOWMESH_BRIDGE_SECRET"
            )
        if status != 200:
            return ProbeResult(False, f"{self.balance_url}: HTTP {status}")
        if _envelope(reply) is None:
            return ProbeResult(False, f"{self.balance_url}: reply is not a Runmesh envelope")
        return ProbeResult(True, f"{self.base_url} reachable, bridge secret accepted")

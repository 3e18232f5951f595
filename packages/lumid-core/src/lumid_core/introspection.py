"""One lum.id token introspection: a bounded exchange turned into a clean verdict.

`introspect` is shared by the identity provider and `lumid doctor`. Whatever lum.id
sends, it returns a `Verdict` (a principal, or inactive with a reason) or raises
`IntrospectionError` (the caller answers 503); never another exception. A verdict
holds only strings that can be UTF-8 encoded (into SQLite, logs, a terminal).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import httpx
from lumid_hooks import PrincipalContext

from .http import ReplyTooLarge, UpstreamError, UpstreamTimeout, exchange

__all__ = [
    "Failure",
    "IntrospectionError",
    "Verdict",
    "decode_introspection",
    "introspect",
    "parse_introspection",
]

_MAX_REASON: Final = 200


class Failure(StrEnum):
    """Why an introspection gave no verdict (the doctor phrases each its own way)."""

    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    TOO_LARGE = "too large"
    STATUS = "status"
    NOT_JSON = "not json"
    SHAPE = "shape"


class IntrospectionError(UpstreamError):
    """lum.id gave no usable verdict (the caller gets a 503); `str()` is the reason."""

    def __init__(self, reason: str, failure: Failure = Failure.SHAPE) -> None:
        super().__init__(reason)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class Verdict:
    """lum.id's answer: `principal` when active, else None with lum.id's `reason`."""

    principal: PrincipalContext | None
    email: str | None = None
    exp: float | None = None
    reason: str = "inactive"


def _clean(value: str, what: str) -> str:
    """`value` if it can be UTF-8 encoded (no lone surrogate), else a shape error."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise IntrospectionError(f"{what} is not valid Unicode") from None
    return value


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason:
        return "inactive"
    text = reason[:_MAX_REASON]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "inactive"
    return text if text.isprintable() else "inactive"


def parse_introspection(
    body: Any, org_id: str, now: float | None = None
) -> tuple[PrincipalContext, str | None, float | None] | None:
    """Turn an introspection reply into (principal, email, exp), or None if inactive.

    An active reply whose `exp` is not after `now` (wall-clock seconds; default the
    current time) is inactive. Raises `IntrospectionError` when the reply is not
    shaped like lum.id's, or holds a string that cannot be UTF-8 encoded.
    """
    verdict = _verdict(body, org_id, time.time() if now is None else now)
    if verdict.principal is None:
        return None
    return (verdict.principal, verdict.email, verdict.exp)


def _verdict(body: Any, org_id: str, now: float) -> Verdict:
    if not isinstance(body, dict):
        raise IntrospectionError("reply is not a JSON object")
    active = body.get("active")
    if not isinstance(active, bool):
        raise IntrospectionError("reply has no boolean 'active'")
    if not active:
        return Verdict(None, reason=_reason(body))
    sub = body.get("sub")
    if not isinstance(sub, str) or not sub:
        return Verdict(None, reason="active reply without a 'sub'")
    sub = _clean(sub, "'sub'")
    scopes_field = body.get("scopes")
    if scopes_field is not None:
        if not isinstance(scopes_field, list) or not all(isinstance(s, str) for s in scopes_field):
            raise IntrospectionError("'scopes' is not a list of strings")
        scopes: list[str] = [_clean(s, "a scope") for s in scopes_field]
    else:
        scope = body.get("scope")
        if scope is None:
            scopes = []
        elif isinstance(scope, str):
            scopes = _clean(scope, "'scope'").split()
        else:
            raise IntrospectionError("'scope' is not a string")
    role = body.get("role")
    if role is not None and not isinstance(role, str):
        raise IntrospectionError("'role' is not a string")
    email = body.get("email")
    email = _clean(email, "'email'") if isinstance(email, str) and email else None
    exp = _exp(body.get("exp"))
    if exp is not None and exp <= now:
        return Verdict(None, reason="expired ('exp' is in the past)")
    principal = PrincipalContext(
        principal_id=sub,
        org_id=org_id,
        external_id=sub,
        principal_type=_clean(role, "'role'") if role else "user",
        scopes=scopes,
    )
    return Verdict(principal, email, exp)


def _exp(value: object) -> float | None:
    """`exp` as a finite float, or None (absent, not a number, or out of range)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        exp = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return exp if math.isfinite(exp) else None


def decode_introspection(raw: bytes, org_id: str, now: float | None = None) -> Verdict:
    """Decode and parse a 200 reply body; raises only `IntrospectionError`."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise IntrospectionError("reply is nested too deeply", Failure.NOT_JSON) from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an int too long to read
        raise IntrospectionError("reply is not JSON", Failure.NOT_JSON) from None
    return _verdict(body, org_id, time.time() if now is None else now)


async def introspect(
    client: httpx.AsyncClient,
    url: str,
    token: str,
    *,
    org_id: str,
    deadline: float,
    max_bytes: int,
    wall_clock: Callable[[], float] = time.time,
) -> Verdict:
    """`POST url` with the token as form field `token` and decode lum.id's verdict.

    The whole exchange must finish within `deadline` seconds and the reply be at most
    `max_bytes`. Raises `IntrospectionError` (never holding the token) when lum.id
    gives no clean verdict.
    """
    try:
        reply = await exchange(
            client, "POST", url, deadline=deadline, max_bytes=max_bytes, data={"token": token}
        )
    except UpstreamTimeout as exc:
        raise IntrospectionError(str(exc), Failure.TIMEOUT) from None
    except ReplyTooLarge as exc:
        raise IntrospectionError(str(exc), Failure.TOO_LARGE) from None
    except UpstreamError as exc:
        raise IntrospectionError(str(exc), Failure.UNREACHABLE) from None
    if reply.status != 200:
        raise IntrospectionError(f"HTTP {reply.status}", Failure.STATUS)
    return decode_introspection(reply.body, org_id, wall_clock())

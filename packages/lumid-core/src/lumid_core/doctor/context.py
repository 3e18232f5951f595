"""What a host's doctor checks get: the settings, the environment and the open resources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from lumid_core.db import Database
from lumid_core.identity import LumIdIdentityProvider
from lumid_core.introspection import Failure, IntrospectionError
from lumid_core.settings import LumidSettings

from .report import Introspection

if TYPE_CHECKING:
    from lumid_core.pg import PgDatabase

__all__ = ["DoctorContext"]


@dataclass
class DoctorContext:
    """What a host's checks get: validated settings and the core's open resources."""

    settings: LumidSettings
    http: httpx.AsyncClient
    environ: Mapping[str, str]
    db: Database | PgDatabase | None = None
    """The open store (SQLite, or PostgreSQL under LUMID_DATABASE_URL); None when the
    database check failed or there is no database file yet."""
    db_not_created: bool = False
    """True when there is no database file yet and the server could create it."""
    lumid_ok: bool = False
    """True when lum.id answered the dummy introspection correctly."""

    async def introspect(self, token: str) -> Introspection:
        """Ask lum.id about `token` as the identity provider does; never raises, never logs it."""
        settings = self.settings
        provider = LumIdIdentityProvider(name="lumid doctor", settings=settings, client=self.http)
        try:
            verdict = await provider.ask(token)
        except IntrospectionError as exc:
            return Introspection(error=_phrase(exc, settings))
        except Exception as exc:  # the doctor reports, it never tracebacks
            return Introspection(error=f"failed unexpectedly ({type(exc).__name__})")
        if verdict.principal is None:
            return Introspection(inactive_reason=verdict.reason)
        return Introspection(principal=verdict.principal)


def _phrase(exc: IntrospectionError, settings: LumidSettings) -> str:
    """The doctor's wording of an introspection failure."""
    match exc.failure:
        case Failure.TIMEOUT:
            timeout = settings.lumid_introspect_timeout_seconds
            return f"no reply within {timeout:g}s (LUMID_INTROSPECT_TIMEOUT_SECONDS)"
        case Failure.UNREACHABLE:
            return f"cannot reach it ({exc})"
        case Failure.STATUS:
            return f"answered {exc}, expected 200"
        case Failure.TOO_LARGE:
            return f"sent a reply too large to read: {exc} (LUMID_MAX_REPLY_BYTES)"
        case Failure.NOT_JSON:
            return f"answered 200 with a body that is not JSON ({exc})"
        case Failure.SHAPE:
            return f"answered 200 with an unexpected shape ({exc})"

"""The shared PostgreSQL store for replicated servers (selected by LUMID_DATABASE_URL).

Grants, principals, parent links and the billing outbox, implementing the same
interfaces as the SQLite store; see docs/scaling.md.
"""

from .database import ENV_VAR, PgDatabase, PgStoreError, redact
from .directory import PgPrincipalDirectory
from .grants import PgGrantStore
from .outbox import PgOutbox
from .parents import PgParentLinks
from .schema import SCHEMA_VERSION

__all__ = [
    "ENV_VAR",
    "SCHEMA_VERSION",
    "PgDatabase",
    "PgGrantStore",
    "PgOutbox",
    "PgParentLinks",
    "PgPrincipalDirectory",
    "PgStoreError",
    "redact",
]

"""Grant storage: the `GrantStore` interface and its SQLite implementation."""

from typing import TYPE_CHECKING, Any

from .base import Grant, GrantStore, Level, ReconcileResult

if TYPE_CHECKING:
    from .sqlite import SqliteGrantStore


def __getattr__(name: str) -> Any:
    # SQLite (aiosqlite, asyncio) loads on first use: `lumid --help` needs only `base`.
    if name == "SqliteGrantStore":
        from .sqlite import SqliteGrantStore

        return SqliteGrantStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Grant", "GrantStore", "Level", "ReconcileResult", "SqliteGrantStore"]

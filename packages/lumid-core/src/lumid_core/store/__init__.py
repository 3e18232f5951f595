"""Grant storage: the `GrantStore` interface and its SQLite implementation."""

from .base import Grant, GrantStore, Level, ReconcileResult
from .sqlite import SqliteGrantStore

__all__ = ["Grant", "GrantStore", "Level", "ReconcileResult", "SqliteGrantStore"]

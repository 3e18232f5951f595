"""Bounds shared by the CLI and the plugins' hooks, defined once."""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_ID_BYTES"]

MAX_ID_BYTES: Final = 1024
"""The longest resource id, principal or kind (UTF-8 bytes) a grant may hold. The CLI
refuses longer ones; the hooks deny them (require -> 403, register -> refused)."""

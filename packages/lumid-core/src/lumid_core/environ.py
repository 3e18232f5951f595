"""One setting read from the environment exactly as `LumidSettings` reads it.

For code that must start fast and so cannot import pydantic (the `lumid` CLI):
names match case-insensitively (`lumid_acl_db_path` works like
`LUMID_ACL_DB_PATH`) and an empty value counts as unset, as pydantic-settings does
with `case_sensitive=False, env_ignore_empty=True`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_ACL_DB_PATH", "env_setting"]

DEFAULT_ACL_DB_PATH: Final = Path("/app/plugin-data/lumid_acl.sqlite")


def env_setting(name: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The value of setting `name` (any case), or None when unset or empty.

    When several spellings are set, the last one in the environment wins, as it
    does for pydantic-settings (it lowercases every name into one mapping).
    """
    found: str | None = None
    wanted = name.lower()
    for key, value in environ.items():
        if value != "" and key.lower() == wanted:
            found = value
    return found

"""`operator_env`: a server process's environment for the duration of a block."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["operator_env"]


@contextmanager
def operator_env(env: Mapping[str, str]) -> Iterator[None]:
    """Set `env` in the process environment while the block runs, then restore it.

    A plugin reads its settings from the process environment when the host calls
    `install()` (there is no other channel), so walks and benchmarks set the
    operator's variables for the lifespan only; a variable that was unset before
    is removed again, one that was set gets its old value back.
    """
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

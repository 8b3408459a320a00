"""Identifiers with the prefixes OpenAI uses (`event_`, `item_`, `resp_`, `call_`, `sess_`, ...).

The generator is an object so tests can inject a deterministic one.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable

__all__ = ["IdGenerator", "new_id"]


def new_id(prefix: str) -> str:
    """A random id such as ``item_5f0c2d8e1a9b4c7d6e3f2a1b``."""
    return f"{prefix}_{secrets.token_hex(12)}"


class IdGenerator:
    """Makes ids; deterministic (`prefix_000001`, ...) when ``deterministic=True``."""

    def __init__(self, *, deterministic: bool = False) -> None:
        self._counter = itertools.count(1)
        self._make: Callable[[str], str] = self._sequential if deterministic else new_id

    def _sequential(self, prefix: str) -> str:
        return f"{prefix}_{next(self._counter):06d}"

    def __call__(self, prefix: str) -> str:
        return self._make(prefix)

"""Small typed readers for fields of decoded server events.

A server may leave a field out, send ``null`` or send the wrong type. ``str(event.get("item_id"))``
turns a missing id into the string ``"None"`` — a phantom item the client then tracks, truncates
or replays. These readers return ``None`` (or the given default) instead, so the caller decides
what a missing field means. Nothing here raises on bad input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ident", "integer", "mapping", "mappings", "text"]


def ident(event: Mapping[str, Any], key: str) -> str | None:
    """A non-empty string id, else None (never ``"None"``)."""
    value = event.get(key)
    return value if isinstance(value, str) and value else None


def text(event: Mapping[str, Any], key: str, default: str = "") -> str:
    """A string field; ``default`` when missing or not a string."""
    value = event.get(key)
    return value if isinstance(value, str) else default


def integer(event: Mapping[str, Any], key: str, default: int = 0) -> int:
    """An integer field (bools are not integers here); ``default`` otherwise."""
    value = event.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return default


def mapping(event: Mapping[str, Any], key: str) -> dict[str, Any]:
    """An object field; an empty dict when missing, ``null`` or not an object."""
    value = event.get(key)
    return value if isinstance(value, dict) else {}


def mappings(event: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """A list of objects; entries that are not objects are skipped."""
    value = event.get(key)
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, dict)]

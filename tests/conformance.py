"""Conformance oracle: the official ``openai`` SDK's ``openai.types.realtime`` models.

Every event our server sends and every event our client sends is checked against the SDK's
unions, strictly: the SDK models allow unknown keys, so we walk the parsed model and refuse any
key the SDK does not know (a session object may add ``id``, ``object`` and ``expires_at``).
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Union

from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import BaseModel, Field, TypeAdapter

__all__ = ["check_client_event", "check_server_event", "unknown_fields"]


def _discriminated(alias: Any) -> TypeAdapter[Any]:
    members = typing.get_args(typing.get_args(alias)[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # noqa: UP007


_SERVER = _discriminated(RealtimeServerEvent)
_CLIENT = _discriminated(RealtimeClientEvent)

# session.created/updated.session is typed with the request model; real servers add these.
_ALLOWED_EXTRA = {"$.session.id", "$.session.object", "$.session.expires_at"}


def unknown_fields(obj: Any, path: str = "$") -> list[str]:
    """Paths of keys the SDK model did not declare (they land in ``model_extra``)."""
    out: list[str] = []
    if isinstance(obj, BaseModel):
        out += [f"{path}.{k}" for k in (obj.model_extra or {})]
        for name in type(obj).model_fields:
            out += unknown_fields(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += unknown_fields(v, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out += unknown_fields(v, f"{path}.{k}")
    return out


def _check(adapter: TypeAdapter[Any], event: dict[str, Any]) -> Any:
    model = adapter.validate_python(event)
    extra = [p for p in unknown_fields(model) if p not in _ALLOWED_EXTRA]
    if extra:
        raise AssertionError(f"unknown fields in {event.get('type')}: {extra}")
    return model


def check_server_event(event: dict[str, Any]) -> Any:
    """Raise unless ``event`` is a valid GA server event with no unknown keys."""
    return _check(_SERVER, event)


def check_client_event(event: dict[str, Any]) -> Any:
    """Raise unless ``event`` is a valid GA client event with no unknown keys."""
    return _check(_CLIENT, event)

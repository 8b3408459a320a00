"""Builders of the events a client sends (``session.update``, ``response.create``...).

``event_id`` is the client's own and optional; fields that are ``None`` are left out (as the
official SDK does), so what we send validates against ``openai.types.realtime``.
"""

from __future__ import annotations

from typing import Any

from .event_names import Event

__all__ = [
    "conversation_item_create",
    "conversation_item_delete",
    "conversation_item_retrieve",
    "conversation_item_truncate",
    "input_audio_buffer_append",
    "input_audio_buffer_clear",
    "input_audio_buffer_commit",
    "output_audio_buffer_clear",
    "response_cancel",
    "response_create",
    "session_update",
]


def _event(kind: str, event_id: str | None, **fields: Any) -> Event:
    out: Event = {"type": kind}
    if event_id is not None:
        out["event_id"] = event_id
    for key, value in fields.items():
        if value is not None:
            out[key] = value
    return out


def session_update(session: dict[str, Any], *, event_id: str | None = None) -> Event:
    return _event("session.update", event_id, session={"type": "realtime", **session})


def input_audio_buffer_append(audio_b64: str, *, event_id: str | None = None) -> Event:
    return _event("input_audio_buffer.append", event_id, audio=audio_b64)


def input_audio_buffer_commit(*, event_id: str | None = None) -> Event:
    return _event("input_audio_buffer.commit", event_id)


def input_audio_buffer_clear(*, event_id: str | None = None) -> Event:
    return _event("input_audio_buffer.clear", event_id)


def conversation_item_create(
    item: dict[str, Any], *, previous_item_id: str | None = None, event_id: str | None = None
) -> Event:
    return _event(
        "conversation.item.create", event_id, previous_item_id=previous_item_id, item=item
    )


def conversation_item_retrieve(item_id: str, *, event_id: str | None = None) -> Event:
    return _event("conversation.item.retrieve", event_id, item_id=item_id)


def conversation_item_truncate(
    item_id: str, audio_end_ms: int, *, content_index: int = 0, event_id: str | None = None
) -> Event:
    return _event(
        "conversation.item.truncate",
        event_id,
        item_id=item_id,
        content_index=content_index,
        audio_end_ms=int(audio_end_ms),
    )


def conversation_item_delete(item_id: str, *, event_id: str | None = None) -> Event:
    return _event("conversation.item.delete", event_id, item_id=item_id)


def response_create(
    response: dict[str, Any] | None = None, *, event_id: str | None = None
) -> Event:
    return _event("response.create", event_id, response=response)


def response_cancel(*, response_id: str | None = None, event_id: str | None = None) -> Event:
    return _event("response.cancel", event_id, response_id=response_id)


def output_audio_buffer_clear(*, event_id: str | None = None) -> Event:
    return _event("output_audio_buffer.clear", event_id)

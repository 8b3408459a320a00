"""Event names and event shapes of the GA Realtime protocol, written once.

Builders return plain dicts ready for ``json.dumps``; the client and the local server both call
them, so an event has one shape in the whole project. Builders omit optional fields that are
``None`` (as the official SDK does) so what we send validates against ``openai.types.realtime``.

Reading goes through :func:`parse_event`, which maps beta names a server may still send to their
GA names and never pays for model validation (the audio-delta path is hot).
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = [
    "BETA_TO_GA",
    "CLIENT_EVENT_TYPES",
    "SERVER_EVENT_TYPES",
    "parse_event",
]

Event = dict[str, Any]

# --- names -----------------------------------------------------------------------------------

CLIENT_EVENT_TYPES: Final = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "conversation.item.delete",
        "response.create",
        "response.cancel",
        "output_audio_buffer.clear",
    }
)

SERVER_EVENT_TYPES: Final = frozenset(
    {
        "error",
        "session.created",
        "session.updated",
        "conversation.created",
        "conversation.item.created",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.deleted",
        "conversation.item.retrieved",
        "conversation.item.truncated",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.dtmf_event_received",
        "response.created",
        "response.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "rate_limits.updated",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
    }
)

#: Beta names a server may still send; we read them as their GA twins.
BETA_TO_GA: Final = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "conversation.item.created": "conversation.item.added",
}


def parse_event(raw: str | bytes) -> Event:
    """Decode one frame into an event dict with a GA ``type``.

    Raises ``ValueError`` for frames that are not a JSON object with a string ``type``, and for
    frames nested too deeply to decode (``json.loads`` would raise ``RecursionError``).
    """
    try:
        event = json.loads(raw)
    except RecursionError:
        raise ValueError("event nested too deeply") from None
    if not isinstance(event, dict):
        raise ValueError("a Realtime event is a JSON object")
    kind = event.get("type")
    if not isinstance(kind, str):
        raise ValueError("the 'type' field is missing")
    ga = BETA_TO_GA.get(kind)
    if ga is not None:
        event["type"] = ga
    return event


def _event(kind: str, event_id: str | None, **fields: Any) -> Event:
    out: Event = {"type": kind}
    if event_id is not None:
        out["event_id"] = event_id
    for key, value in fields.items():
        if value is not None:
            out[key] = value
    return out


# --- items and content parts ---------------------------------------------------------------


def input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def input_image(image_url: str, detail: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "input_image", "image_url": image_url}
    if detail is not None:
        part["detail"] = detail
    return part


def message_item(
    role: str,
    content: list[dict[str, Any]],
    *,
    item_id: str | None = None,
    status: str | None = None,
    with_object: bool = False,
) -> dict[str, Any]:
    """A ``message`` item (``system``, ``user`` or ``assistant``)."""
    item: dict[str, Any] = {"type": "message", "role": role, "content": content}
    if item_id is not None:
        item["id"] = item_id
    if with_object:
        item["object"] = "realtime.item"
    if status is not None:
        item["status"] = status
    return item


def user_text_item(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    return message_item("user", [input_text(text)], item_id=item_id)


def assistant_text_item(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    """An assistant message the client may create (GA: ``output_text`` content)."""
    return message_item("assistant", [{"type": "output_text", "text": text}], item_id=item_id)


def system_text_item(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    return message_item("system", [input_text(text)], item_id=item_id)


def function_call_item(
    *,
    call_id: str,
    name: str,
    arguments: str,
    item_id: str | None = None,
    status: str | None = None,
    with_object: bool = False,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }
    if item_id is not None:
        item["id"] = item_id
    if with_object:
        item["object"] = "realtime.item"
    if status is not None:
        item["status"] = status
    return item


def function_call_output_item(
    call_id: str, output: str, *, item_id: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "function_call_output", "call_id": call_id, "output": output}
    if item_id is not None:
        item["id"] = item_id
    return item


# --- client events ---------------------------------------------------------------------------


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


# --- server events ---------------------------------------------------------------------------
# Every server event carries a server-made ``event_id``; builders take it first.


def error(
    event_id: str,
    *,
    message: str,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    client_event_id: str | None = None,
) -> Event:
    """OpenAI's error shape: ``code``, ``param`` and ``event_id`` always present, maybe null."""
    return {
        "type": "error",
        "event_id": event_id,
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


def session_created(event_id: str, session: dict[str, Any]) -> Event:
    return {"type": "session.created", "event_id": event_id, "session": session}


def session_updated(event_id: str, session: dict[str, Any]) -> Event:
    return {"type": "session.updated", "event_id": event_id, "session": session}


def conversation_item_added(
    event_id: str, item: dict[str, Any], previous_item_id: str | None
) -> Event:
    return {
        "type": "conversation.item.added",
        "event_id": event_id,
        "previous_item_id": previous_item_id,
        "item": item,
    }


def conversation_item_done(
    event_id: str, item: dict[str, Any], previous_item_id: str | None
) -> Event:
    return {
        "type": "conversation.item.done",
        "event_id": event_id,
        "previous_item_id": previous_item_id,
        "item": item,
    }


def conversation_item_deleted(event_id: str, item_id: str) -> Event:
    return {"type": "conversation.item.deleted", "event_id": event_id, "item_id": item_id}


def conversation_item_retrieved(event_id: str, item: dict[str, Any]) -> Event:
    return {"type": "conversation.item.retrieved", "event_id": event_id, "item": item}


def conversation_item_truncated(
    event_id: str, item_id: str, content_index: int, audio_end_ms: int
) -> Event:
    return {
        "type": "conversation.item.truncated",
        "event_id": event_id,
        "item_id": item_id,
        "content_index": content_index,
        "audio_end_ms": audio_end_ms,
    }


def input_audio_transcription_delta(
    event_id: str, item_id: str, delta: str, content_index: int = 0
) -> Event:
    return {
        "type": "conversation.item.input_audio_transcription.delta",
        "event_id": event_id,
        "item_id": item_id,
        "content_index": content_index,
        "delta": delta,
    }


def input_audio_transcription_completed(
    event_id: str,
    item_id: str,
    transcript: str,
    *,
    usage: dict[str, Any],
    content_index: int = 0,
) -> Event:
    return {
        "type": "conversation.item.input_audio_transcription.completed",
        "event_id": event_id,
        "item_id": item_id,
        "content_index": content_index,
        "transcript": transcript,
        "usage": usage,
    }


def input_audio_transcription_failed(
    event_id: str, item_id: str, *, message: str, code: str | None = None, content_index: int = 0
) -> Event:
    return {
        "type": "conversation.item.input_audio_transcription.failed",
        "event_id": event_id,
        "item_id": item_id,
        "content_index": content_index,
        "error": {"type": "server_error", "code": code, "message": message, "param": None},
    }


def speech_started(event_id: str, item_id: str, audio_start_ms: int) -> Event:
    return {
        "type": "input_audio_buffer.speech_started",
        "event_id": event_id,
        "item_id": item_id,
        "audio_start_ms": audio_start_ms,
    }


def speech_stopped(event_id: str, item_id: str, audio_end_ms: int) -> Event:
    return {
        "type": "input_audio_buffer.speech_stopped",
        "event_id": event_id,
        "item_id": item_id,
        "audio_end_ms": audio_end_ms,
    }


def input_audio_buffer_committed(
    event_id: str, item_id: str, previous_item_id: str | None
) -> Event:
    return {
        "type": "input_audio_buffer.committed",
        "event_id": event_id,
        "item_id": item_id,
        "previous_item_id": previous_item_id,
    }


def input_audio_buffer_cleared(event_id: str) -> Event:
    return {"type": "input_audio_buffer.cleared", "event_id": event_id}


def input_audio_buffer_timeout_triggered(
    event_id: str, item_id: str, audio_start_ms: int, audio_end_ms: int
) -> Event:
    return {
        "type": "input_audio_buffer.timeout_triggered",
        "event_id": event_id,
        "item_id": item_id,
        "audio_start_ms": audio_start_ms,
        "audio_end_ms": audio_end_ms,
    }


def response_created(event_id: str, response: dict[str, Any]) -> Event:
    return {"type": "response.created", "event_id": event_id, "response": response}


def response_done(event_id: str, response: dict[str, Any]) -> Event:
    return {"type": "response.done", "event_id": event_id, "response": response}


def response_output_item_added(
    event_id: str, response_id: str, output_index: int, item: dict[str, Any]
) -> Event:
    return {
        "type": "response.output_item.added",
        "event_id": event_id,
        "response_id": response_id,
        "output_index": output_index,
        "item": item,
    }


def response_output_item_done(
    event_id: str, response_id: str, output_index: int, item: dict[str, Any]
) -> Event:
    return {
        "type": "response.output_item.done",
        "event_id": event_id,
        "response_id": response_id,
        "output_index": output_index,
        "item": item,
    }


def _located(
    kind: str,
    event_id: str,
    response_id: str,
    item_id: str,
    output_index: int,
    content_index: int,
    **fields: Any,
) -> Event:
    return {
        "type": kind,
        "event_id": event_id,
        "response_id": response_id,
        "item_id": item_id,
        "output_index": output_index,
        "content_index": content_index,
        **fields,
    }


def response_content_part_added(
    event_id: str,
    response_id: str,
    item_id: str,
    output_index: int,
    content_index: int,
    part: dict[str, Any],
) -> Event:
    """``part`` is ``{"type": "audio", "transcript": ""}`` or ``{"type": "text", "text": ""}``."""
    return _located(
        "response.content_part.added",
        event_id,
        response_id,
        item_id,
        output_index,
        content_index,
        part=part,
    )


def response_content_part_done(
    event_id: str,
    response_id: str,
    item_id: str,
    output_index: int,
    content_index: int,
    part: dict[str, Any],
) -> Event:
    return _located(
        "response.content_part.done",
        event_id,
        response_id,
        item_id,
        output_index,
        content_index,
        part=part,
    )


def response_output_audio_delta(
    event_id: str, response_id: str, item_id: str, output_index: int, content_index: int, delta: str
) -> Event:
    return _located(
        "response.output_audio.delta",
        event_id,
        response_id,
        item_id,
        output_index,
        content_index,
        delta=delta,
    )


def response_output_audio_done(
    event_id: str, response_id: str, item_id: str, output_index: int, content_index: int
) -> Event:
    return _located(
        "response.output_audio.done", event_id, response_id, item_id, output_index, content_index
    )


def response_output_audio_transcript_delta(
    event_id: str, response_id: str, item_id: str, output_index: int, content_index: int, delta: str
) -> Event:
    return _located(
        "response.output_audio_transcript.delta",
        event_id,
        response_id,
        item_id,
        output_index,
        content_index,
        delta=delta,
    )


def response_output_audio_transcript_done(
    event_id: str,
    response_id: str,
    item_id: str,
    output_index: int,
    content_index: int,
    transcript: str,
) -> Event:
    return _located(
        "response.output_audio_transcript.done",
        event_id,
        response_id,
        item_id,
        output_index,
        content_index,
        transcript=transcript,
    )


def response_output_text_delta(
    event_id: str, response_id: str, item_id: str, output_index: int, content_index: int, delta: str
) -> Event:
    return _located(
        "response.output_text.delta",
        event_id,
        response_id,
        item_id,
        output_index,
        content_index,
        delta=delta,
    )


def response_output_text_done(
    event_id: str, response_id: str, item_id: str, output_index: int, content_index: int, text: str
) -> Event:
    return _located(
        "response.output_text.done",
        event_id,
        response_id,
        item_id,
        output_index,
        content_index,
        text=text,
    )


def response_function_call_arguments_delta(
    event_id: str, response_id: str, item_id: str, output_index: int, call_id: str, delta: str
) -> Event:
    return {
        "type": "response.function_call_arguments.delta",
        "event_id": event_id,
        "response_id": response_id,
        "item_id": item_id,
        "output_index": output_index,
        "call_id": call_id,
        "delta": delta,
    }


def response_function_call_arguments_done(
    event_id: str,
    response_id: str,
    item_id: str,
    output_index: int,
    call_id: str,
    name: str,
    arguments: str,
) -> Event:
    return {
        "type": "response.function_call_arguments.done",
        "event_id": event_id,
        "response_id": response_id,
        "item_id": item_id,
        "output_index": output_index,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def rate_limits_updated(event_id: str, rate_limits: list[dict[str, Any]]) -> Event:
    return {"type": "rate_limits.updated", "event_id": event_id, "rate_limits": rate_limits}


# --- objects inside server events -------------------------------------------------------------


def response_usage(
    *,
    input_text_tokens: int,
    input_audio_tokens: int,
    output_text_tokens: int,
    output_audio_tokens: int,
    cached_tokens: int = 0,
) -> dict[str, Any]:
    """``response.usage``: totals are the sums of their details; cached tokens are a subset of
    the input tokens (never added on top)."""
    input_tokens = input_text_tokens + input_audio_tokens
    output_tokens = output_text_tokens + output_audio_tokens
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {
            "text_tokens": input_text_tokens,
            "audio_tokens": input_audio_tokens,
            "image_tokens": 0,
            "cached_tokens": cached_tokens,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {
            "text_tokens": output_text_tokens,
            "audio_tokens": output_audio_tokens,
        },
    }


def response_object(
    response_id: str,
    *,
    status: str,
    output: list[dict[str, Any]],
    conversation_id: str | None,
    output_modalities: list[str],
    max_output_tokens: int | str,
    audio_format: dict[str, Any],
    voice: str,
    status_details: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``response`` of ``response.created`` / ``response.done`` (``RealtimeResponse``)."""
    return {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": status_details,
        "output": output,
        "conversation_id": conversation_id,
        "output_modalities": output_modalities,
        "max_output_tokens": max_output_tokens,
        "audio": {"output": {"format": audio_format, "voice": voice}},
        "metadata": metadata,
        "usage": usage,
    }


def rate_limit(name: str, *, limit: int, remaining: int, reset_seconds: float) -> dict[str, Any]:
    """One entry of ``rate_limits.updated`` (``name`` is ``requests`` or ``tokens``)."""
    return {"name": name, "limit": limit, "remaining": remaining, "reset_seconds": reset_seconds}


def output_audio_buffer_cleared(event_id: str, response_id: str) -> Event:
    return {"type": "output_audio_buffer.cleared", "event_id": event_id, "response_id": response_id}

"""Builders of the events a server sends, and of the objects inside them (a response, its usage,
a rate limit).

Every server event carries a server-made ``event_id``; builders take it first. Fields the
official shapes always carry are present even when null (``error.code``, ``response.metadata``).
"""

from __future__ import annotations

from typing import Any

from .event_names import Event

__all__ = [
    "conversation_item_added",
    "conversation_item_deleted",
    "conversation_item_done",
    "conversation_item_retrieved",
    "conversation_item_truncated",
    "error",
    "input_audio_buffer_cleared",
    "input_audio_buffer_committed",
    "input_audio_buffer_timeout_triggered",
    "input_audio_transcription_completed",
    "input_audio_transcription_delta",
    "input_audio_transcription_failed",
    "output_audio_buffer_cleared",
    "rate_limit",
    "rate_limits_updated",
    "response_content_part_added",
    "response_content_part_done",
    "response_created",
    "response_done",
    "response_function_call_arguments_delta",
    "response_function_call_arguments_done",
    "response_object",
    "response_output_audio_delta",
    "response_output_audio_done",
    "response_output_audio_transcript_delta",
    "response_output_audio_transcript_done",
    "response_output_item_added",
    "response_output_item_done",
    "response_output_text_delta",
    "response_output_text_done",
    "response_usage",
    "session_created",
    "session_updated",
    "speech_started",
    "speech_stopped",
]


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


def output_audio_buffer_cleared(event_id: str, response_id: str) -> Event:
    return {"type": "output_audio_buffer.cleared", "event_id": event_id, "response_id": response_id}


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

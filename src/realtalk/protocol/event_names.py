"""The event names of the GA Realtime protocol, and reading a frame into an event.

:func:`parse_event` maps beta names a server may still send to their GA names and never pays for
model validation (the audio-delta path is hot).
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["BETA_TO_GA", "CLIENT_EVENT_TYPES", "SERVER_EVENT_TYPES", "Event", "parse_event"]

#: An event as it goes on the wire: a JSON object with a ``type``.
Event = dict[str, Any]

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

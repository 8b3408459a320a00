"""A client frame made ready to handle: decoded, validated, its audio decoded.

Pure: nothing here reads or changes a session, so :class:`~realtalk.server.connection.Connection`
may run it in a worker thread for a large frame (a 20 MB append must not hold the event loop,
that is every other session) and then handle the result on the loop. Whatever is wrong with the
frame comes back as a :class:`ProtocolError`, never as an exception: the session answers it with
an ``error`` event and goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from realtalk.protocol.errors import ProtocolError
from realtalk.protocol.frames import decode_frame
from realtalk.protocol.validate import decode_audio, prepare_client_event

__all__ = ["APPEND_AUDIO", "Prepared", "prepare_event", "prepare_frame"]

logger = logging.getLogger("realtalk.server")

#: The decoded audio of an append, in :attr:`Prepared.audio` (parts of an item: their index).
APPEND_AUDIO = -1
#: A client's ``event_id`` longer than this is not echoed in errors (it would be ours to hold).
MAX_CLIENT_EVENT_ID = 512


@dataclass(frozen=True, slots=True)
class Prepared:
    """A client event checked and ready to handle, or the problem that stops it."""

    event: dict[str, Any] | None  # None when there is a problem
    problem: ProtocolError | None
    client_event_id: str | None  # echoed in the error event answering a problem
    #: Audio decoded with the validation, by content index (:data:`APPEND_AUDIO` for an append).
    audio: dict[int, bytes] = field(default_factory=dict)


def prepare_frame(frame: str | bytes, max_values: int) -> tuple[Any, Prepared]:
    """The decoded event (None when the frame is not JSON) and what :func:`prepare_event`
    makes of it."""
    event = decode_frame(frame, max_values=max_values)
    if isinstance(event, ProtocolError):
        return None, Prepared(None, event, None)
    return event, prepare_event(event)


def prepare_event(event: Any) -> Prepared:
    """Validate, drop ``null`` optional fields, decode audio."""
    client_event_id = event.get("event_id") if isinstance(event, dict) else None
    if not isinstance(client_event_id, str) or len(client_event_id) > MAX_CLIENT_EVENT_ID:
        client_event_id = None
    audio: dict[int, bytes] = {}
    try:
        checked, problem = prepare_client_event(event)
        if checked is not None:
            problem = _decode_audio_of(checked, audio)
    except RecursionError:
        checked, problem = (
            None,
            ProtocolError("invalid_event", "The event is nested too deeply."),
        )
    except Exception:  # a validator bug must not end the session either
        logger.exception("validating a client event failed")
        checked = None
        problem = ProtocolError("invalid_event", "The event could not be validated.")
    return Prepared(checked, problem, client_event_id, audio)


def _decode_audio_of(event: dict[str, Any], out: dict[int, bytes]) -> ProtocolError | None:
    """Decode the base64 audio an event carries into ``out`` (work done with the validation)."""
    kind = event["type"]
    if kind == "input_audio_buffer.append":
        data = decode_audio(event["audio"])
        if isinstance(data, ProtocolError):
            return data
        out[APPEND_AUDIO] = data
    elif kind == "conversation.item.create" and event["item"].get("type") == "message":
        for index, part in enumerate(event["item"]["content"]):
            if part.get("type") == "input_audio" and "audio" in part:
                data = decode_audio(part["audio"], f"item.content[{index}].audio")
                if isinstance(data, ProtocolError):
                    return data
                out[index] = data
    return None

"""The errors the local server answers a client event with, worded as OpenAI words them.

A handler raises :class:`RequestError`; the connection turns it into one ``error`` event carrying
the client's ``event_id`` and goes on serving: no bad input ends a session.
"""

from __future__ import annotations

from realtalk.protocol.errors import ProtocolError

__all__ = [
    "RequestError",
    "active_response",
    "cancel_not_active",
    "commit_empty",
    "item_not_found",
    "truncate_too_long",
    "truncate_unsupported",
]


class RequestError(Exception):
    """A client event that cannot be served; carries the :class:`ProtocolError` to send back."""

    def __init__(self, problem: ProtocolError) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _fail(code: str, message: str, param: str | None = None) -> RequestError:
    return RequestError(ProtocolError(code, message, param))


def item_not_found(action: str, item_id: str) -> RequestError:
    """``action`` is ``truncate``, ``delete`` or ``retrieve`` (OpenAI's code names the action)."""
    verb = {"truncate": "truncating", "delete": "deleting", "retrieve": "retrieving"}[action]
    return _fail(
        f"item_{action}_invalid_item_id",
        f"Error {verb} item: the item with id '{item_id}' does not exist.",
        "item_id",
    )


def previous_item_not_found(previous_item_id: str) -> RequestError:
    return _fail(
        "invalid_value",
        f"Error adding item: the previous item with id '{previous_item_id}' does not exist.",
        "previous_item_id",
    )


def duplicate_item(item_id: str) -> RequestError:
    return _fail(
        "invalid_value",
        f"Error adding item: an item with id '{item_id}' already exists.",
        "item.id",
    )


def truncate_unsupported() -> RequestError:
    return _fail(
        "unsupported_content_type", "Only model output audio messages can be truncated", "item_id"
    )


def truncate_bad_content_index(content_index: int) -> RequestError:
    return _fail(
        "invalid_value",
        f"Invalid value for 'content_index': item has no audio content at index {content_index}.",
        "content_index",
    )


def truncate_too_long(audio_ms: int, audio_end_ms: int) -> RequestError:
    return _fail(
        "invalid_value",
        f"Audio content of {audio_ms}ms is already shorter than {audio_end_ms}ms",
        "audio_end_ms",
    )


def commit_empty(buffered_ms: float) -> RequestError:
    return _fail(
        "input_audio_buffer_commit_empty",
        "Error committing input audio buffer: buffer too small. Expected at least 100ms of "
        f"audio, but buffer only has {buffered_ms:.2f}ms of audio.",
    )


def active_response(response_id: str) -> RequestError:
    return _fail(
        "conversation_already_has_active_response",
        f"Conversation already has an active response in progress: {response_id}. "
        "Wait until the response is finished before creating a new one.",
    )


def cancel_not_active(response_id: str | None = None) -> RequestError:
    message = "Cancellation failed: no active response found"
    if response_id is not None:
        message += f" with id '{response_id}'"
    return _fail("response_cancel_not_active", message, "response_id" if response_id else None)


def invalid(param: str, message: str) -> RequestError:
    return _fail("invalid_value", f"Invalid value for '{param}': {message}", param)


def buffer_full(max_ms: int) -> RequestError:
    return _fail(
        "input_audio_buffer_full",
        f"The input audio buffer holds the maximum of {max_ms} ms of uncommitted audio; the "
        "audio beyond it was not added. Commit or clear the buffer before appending more.",
        "audio",
    )


def too_many_responses(limit: int) -> RequestError:
    return _fail(
        "too_many_responses",
        f"At most {limit} responses may be in progress at once on one session; wait for one "
        "to finish or cancel one.",
        "response",
    )


def conversation_full(what: str) -> RequestError:
    return _fail(
        "conversation_full",
        f"The conversation is full ({what}); delete items before adding more.",
        "item",
    )

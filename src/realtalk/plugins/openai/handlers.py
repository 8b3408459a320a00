"""Server event handlers: what the client does with each GA server event.

Each handler takes the model and one decoded event, updates state, emits the model's events and
queues client events; none awaits, so the receive loop never blocks on them and unit tests feed
event sequences without a socket (:meth:`OpenAIRealtime.feed`). Beta event names were already
mapped to GA ones by :func:`realtalk.protocol.parse_event`; events not listed in
:data:`HANDLERS` are ignored (logged at debug level), never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from realtalk.errors import FatalServerError, ServerError
from realtalk.protocol import BENIGN_CODES
from realtalk.realtime.base import ModelError

from . import barge_in, reconnect
from .connection import is_fatal
from .tools_runner import ToolCall

if TYPE_CHECKING:
    from .realtime import OpenAIRealtime

__all__ = ["HANDLERS"]

logger = logging.getLogger("realtalk.client")

Event = dict[str, Any]

_USER_TURN_GRACE_S = 3.0  # after speech_stopped, how long to wait for the server's reply


def on_session_created(model: OpenAIRealtime, event: Event) -> None:
    session = event.get("session") or {}
    logger.debug("session created: %s", session.get("id"))


def on_session_updated(model: OpenAIRealtime, event: Event) -> None:
    model._effective_session = event.get("session") or {}
    live = model._session
    if live is not None and live.ready is not None and not live.ready.done():
        live.ready.set_result(model._effective_session)


def on_item_added(model: OpenAIRealtime, event: Event) -> None:
    item = event.get("item") or {}
    model._mirror.added(item, event.get("previous_item_id"))


def on_item_done(model: OpenAIRealtime, event: Event) -> None:
    model._mirror.done(event.get("item") or {})


def on_item_deleted(model: OpenAIRealtime, event: Event) -> None:
    model._mirror.deleted(str(event.get("item_id")))


def on_item_truncated(model: OpenAIRealtime, event: Event) -> None:
    item_id = str(event.get("item_id"))
    received = model._audio_out.received_ms(item_id) if model._audio_out else 0
    model._mirror.truncated(item_id, int(event.get("audio_end_ms") or 0), received)


# user speech -------------------------------------------------------------------------------


def on_speech_started(model: OpenAIRealtime, event: Event) -> None:
    model._user_turn_open = True
    if model._user_turn_handle is not None:
        model._user_turn_handle.cancel()
        model._user_turn_handle = None
    if model._interrupt_on_speech():
        barge_in.barge_in(model, explicit=False)
    turn = model._metrics.current_turn
    if turn is not None and turn.responses:
        model.emit("turn_metrics", model._metrics.turn_completed())
    model._metrics.user_speech_started()
    model.emit("user_speech_started", {})


def on_speech_stopped(model: OpenAIRealtime, event: Event) -> None:
    # The user stopped speaking at audio_end_ms on the audio clock, not when this arrived.
    end_ms = event.get("audio_end_ms")
    spoken_end = (
        model._audio_clock.time_of(float(end_ms)) if isinstance(end_ms, int | float) else None
    )
    model._metrics.user_speech_ended(spoken_end)
    model.emit("user_speech_ended", {})
    td = model._turn_detection()
    if td is None or not td.get("create_response", True):
        _user_turn_over(model)
    elif model._loop is not None:
        # The server answers the turn itself; if it does not (noise, an error), go on anyway.
        model._user_turn_handle = model._loop.call_later(_USER_TURN_GRACE_S, _user_turn_over, model)


def on_buffer_cleared(model: OpenAIRealtime, event: Event) -> None:
    _user_turn_over(model)


def _user_turn_over(model: OpenAIRealtime) -> None:
    model._user_turn_handle = None
    if model._user_turn_open:
        model._user_turn_open = False
        model._pump()


def on_input_transcript_delta(model: OpenAIRealtime, event: Event) -> None:
    item_id = str(event.get("item_id"))
    text = model._text.get("u:" + item_id, "") + str(event.get("delta") or "")
    model._text["u:" + item_id] = text
    model._transcription("user", text, item_id, final=False)


def on_input_transcript_completed(model: OpenAIRealtime, event: Event) -> None:
    item_id = str(event.get("item_id"))
    model._text.pop("u:" + item_id, None)
    text = str(event.get("transcript") or "")
    model._mirror.set_transcript(item_id, text)
    usage = event.get("usage")
    model._metrics.transcription_usage(usage if isinstance(usage, dict) else None)
    model._transcription("user", text, item_id, final=True)


def on_input_transcript_failed(model: OpenAIRealtime, event: Event) -> None:
    error = event.get("error") or {}
    model._emit_error(
        ModelError(
            f"transcription of the user's audio failed: {error.get('message') or 'unknown'}",
            code=error.get("code") or "transcription_failed",
            type=error.get("type"),
        )
    )


# responses ---------------------------------------------------------------------------------


def on_response_created(model: OpenAIRealtime, event: Event) -> None:
    response = event.get("response") or {}
    state = model._responses.created(response)
    model._user_turn_open = False
    if model._user_turn_handle is not None:
        model._user_turn_handle.cancel()
        model._user_turn_handle = None
    model._follow_up.response_started(model._mirror.is_acknowledged)
    model._metrics.response_created(state.response_id)
    model.emit(
        "response_created",
        {
            "response_id": state.response_id,
            "kind": state.kind,
            "metadata": response.get("metadata"),
        },
    )


def on_audio_delta(model: OpenAIRealtime, event: Event) -> None:
    out = model._audio_out
    state = model._responses.get(event.get("response_id"))
    if out is None or (state is not None and state.cancelled):
        return
    item_id = str(event.get("item_id"))
    if state is not None:
        if model._responses.audio_item(state, item_id):
            model._playing.add(item_id)
            if model._session is not None:
                model._session.audio_items.add(item_id)
        if not state.audio_seen:
            state.audio_seen = True
            model._metrics.first_audio_received()
    out.push(item_id, str(event.get("delta") or ""))


def on_audio_done(model: OpenAIRealtime, event: Event) -> None:
    item_id = str(event.get("item_id"))
    state = model._responses.get(event.get("response_id"))
    if state is not None:
        state.ended_items.add(item_id)
    if model._audio_out is not None and (state is None or not state.cancelled):
        model._audio_out.end(item_id)


def on_agent_text_delta(model: OpenAIRealtime, event: Event) -> None:
    item_id = str(event.get("item_id"))
    delta = str(event.get("delta") or "")
    text = model._text.get("a:" + item_id, "") + delta
    model._text["a:" + item_id] = text
    model._mirror.append_transcript(item_id, delta)
    out = model._audio_out
    audio_transcript = event.get("type") == "response.output_audio_transcript.delta"
    if audio_transcript and out is not None and model._paces_transcripts:
        # shown when the audio received so far (where this piece starts) has played
        model._pacer.delta(item_id, text, out.received_ms(item_id))
        model._pace()
    else:
        model._transcription("agent", text, item_id, final=False)


def on_agent_transcript_done(model: OpenAIRealtime, event: Event) -> None:
    item_id = str(event.get("item_id"))
    model._text.pop("a:" + item_id, None)
    text = str(event.get("transcript") or "")
    model._mirror.set_transcript(item_id, text)
    out = model._audio_out
    if out is None or not model._paces_transcripts:
        _agent_final(model, text, item_id)
        return
    state = model._responses.get(event.get("response_id"))
    if state is not None and state.cancelled:
        model._pacer.cut(item_id)  # cut off: the final text is what was heard
        return
    received = out.received_ms(item_id)
    model._pacer.done(item_id, text, received, has_audio=received > 0)
    model._pace()


def on_agent_text_done(model: OpenAIRealtime, event: Event) -> None:
    item_id = str(event.get("item_id"))
    model._text.pop("a:" + item_id, None)
    _agent_final(model, str(event.get("text") or ""), item_id)


def _agent_final(model: OpenAIRealtime, text: str, item_id: str) -> None:
    model._transcription("agent", text, item_id, final=True)
    model.emit("text_response", {"text": text, "type": "done"})


def on_arguments_done(model: OpenAIRealtime, event: Event) -> None:
    call_id = str(event.get("call_id") or "")
    if call_id:
        model._pending_calls[call_id] = ToolCall(
            call_id=call_id,
            name=str(event.get("name") or ""),
            arguments=str(event.get("arguments") or ""),
            item_id=event.get("item_id"),
            response_id=event.get("response_id"),
        )


def on_output_item_done(model: OpenAIRealtime, event: Event) -> None:
    item = event.get("item") or {}
    if item.get("type") == "function_call" and item.get("status") != "incomplete":
        _start_call(model, item, event.get("response_id"))


def _start_call(model: OpenAIRealtime, item: dict[str, Any], response_id: str | None) -> None:
    call_id = str(item.get("call_id") or "")
    if not call_id or model._runner.started(call_id):
        return
    model._pending_calls.pop(call_id, None)
    model._runner.start(
        ToolCall(
            call_id=call_id,
            name=str(item.get("name") or ""),
            arguments=str(item.get("arguments") or ""),
            item_id=item.get("id"),
            response_id=response_id,
        )
    )


def on_response_done(model: OpenAIRealtime, event: Event) -> None:
    response = event.get("response") or {}
    state = model._responses.done(response)
    status = state.status
    # Calls the server completed but whose output_item.done we did not see (or that a beta
    # server announced only through function_call_arguments.done).
    for item in response.get("output") or ():
        if item.get("type") == "function_call" and item.get("status") == "completed":
            _start_call(model, item, state.response_id)
    for call_id, call in list(model._pending_calls.items()):
        if call.response_id == state.response_id:
            del model._pending_calls[call_id]
            if status != "cancelled":
                model._runner.start(call)
    if status == "cancelled" and not state.cancelled:
        state.cancelled = True  # cancelled by the server: its audio must not play on
        barge_in.cut_items(model, state.audio_items)
    elif status == "failed":
        details = response.get("status_details") or {}
        error = details.get("error") or {}
        code = error.get("code")
        model._emit_error(
            ModelError(
                f"response {state.response_id} failed: {error.get('message') or 'no reason'}",
                code=code,
                type=error.get("type"),
                fatal=is_fatal(code, error.get("type")),
            )
        )
    model._metrics.response_done(response)
    if model._vad_relaxed and not model._responses.waiting_protected():
        barge_in.set_vad_relaxed(model, False)
    model.emit(
        "response_done",
        {
            "response_id": state.response_id,
            "kind": state.kind,
            "status": status,
            "usage": response.get("usage"),
        },
    )
    model._pump()
    model._maybe_complete_turn()
    reconnect.maybe_recycle(model)


# errors ------------------------------------------------------------------------------------


def on_error(model: OpenAIRealtime, event: Event) -> None:
    payload = event.get("error") or {}
    code = payload.get("code")
    error_type = payload.get("type")
    client_event_id = payload.get("event_id")
    fatal = is_fatal(code, error_type)
    error = ModelError(
        str(payload.get("message") or "unknown server error"),
        code=code,
        type=error_type,
        param=payload.get("param"),
        event_id=client_event_id,
        fatal=fatal,
    )
    session = model._session
    if code == "session_expired" and session is not None:
        session.expired = True  # the server closes next; we reconnect with the conversation
    refused = model._responses.refused(
        client_event_id, retry=code == "conversation_already_has_active_response"
    )
    if refused is not None:
        logger.debug("response.create %s refused (%s)", refused.request_id, code)
    if (
        session is not None
        and session.ready is not None
        and not session.ready.done()
        and client_event_id is not None
        and client_event_id == session.update_event_id
    ):
        exc_type = FatalServerError if fatal else ServerError
        session.ready.set_exception(
            exc_type(
                f"the server rejected the session settings: {error.message}",
                type=error_type or "invalid_request_error",
                code=code,
                param=error.param,
                event_id=client_event_id,
            )
        )
    model._emit_error(error)
    if fatal and code not in BENIGN_CODES:
        model._fatal = error
        if session is not None and session.ready is not None and session.ready.done():
            model._spawn(model.aclose())
    model._pump()


HANDLERS: dict[str, Callable[[OpenAIRealtime, Event], None]] = {
    "session.created": on_session_created,
    "session.updated": on_session_updated,
    "conversation.item.added": on_item_added,
    "conversation.item.done": on_item_done,
    "conversation.item.deleted": on_item_deleted,
    "conversation.item.truncated": on_item_truncated,
    "conversation.item.input_audio_transcription.delta": on_input_transcript_delta,
    "conversation.item.input_audio_transcription.completed": on_input_transcript_completed,
    "conversation.item.input_audio_transcription.failed": on_input_transcript_failed,
    "input_audio_buffer.speech_started": on_speech_started,
    "input_audio_buffer.speech_stopped": on_speech_stopped,
    "input_audio_buffer.cleared": on_buffer_cleared,
    "response.created": on_response_created,
    "response.output_audio.delta": on_audio_delta,
    "response.output_audio.done": on_audio_done,
    "response.output_audio_transcript.delta": on_agent_text_delta,
    "response.output_audio_transcript.done": on_agent_transcript_done,
    "response.output_text.delta": on_agent_text_delta,
    "response.output_text.done": on_agent_text_done,
    "response.function_call_arguments.done": on_arguments_done,
    "response.output_item.done": on_output_item_done,
    "response.done": on_response_done,
    "error": on_error,
}

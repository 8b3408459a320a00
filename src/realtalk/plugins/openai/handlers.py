"""Server event handlers: what the client core does with each GA server event.

Each handler takes the :class:`~.client.OpenAIRealtimeClient` and one decoded event, updates its
state and queues client events and actions through the core's methods; none performs I/O. Beta
event names were already mapped to GA ones by :func:`realtalk.protocol.parse_event`; events not
listed in :data:`HANDLERS` are ignored (logged at debug level), never fatal. Fields are read with
:mod:`realtalk.protocol.readers`: an event without the id it needs is ignored, never tracked as
an item called ``"None"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from realtalk.protocol import readers as read
from realtalk.realtime.base import ModelError

from . import barge_in
from .connection import is_fatal
from .link import ArmTimer, CancelTimer
from .tools_runner import ToolCall

if TYPE_CHECKING:
    from .state import ClientState

__all__ = ["HANDLERS", "MAX_ITEM_TEXT_CHARS"]

logger = logging.getLogger("realtalk.client")

Event = dict[str, Any]

#: Interim transcript text kept per item; a server streaming more is cut off (and reported).
MAX_ITEM_TEXT_CHARS = 100_000
_MAX_TEXT_ITEMS = 64  # items with interim text at once (a server never finishing any)
_MAX_REPORTED = 256  # overflowing items remembered, so each is reported once
USER_TURN_GRACE_S = 3.0  # after speech_stopped, how long to wait for the server's reply


def _overflow(c: ClientState, key: str, message: str, code: str) -> None:
    """Report an overflow once per item (bounded memory for a server that keeps trying)."""
    if key in c.overflow_reported:
        return
    if len(c.overflow_reported) >= _MAX_REPORTED:
        c.overflow_reported.clear()
    c.overflow_reported.add(key)
    c.report(ModelError(message, code=code))


def _text_delta(c: ClientState, key: str, delta: str) -> str | None:
    """Interim text of one item (``key``), capped; None once the cap was passed."""
    text = c.text.get(key, "")
    if len(text) + len(delta) > MAX_ITEM_TEXT_CHARS:
        message = f"text of item {key[2:]} passed {MAX_ITEM_TEXT_CHARS} characters; rest dropped"
        _overflow(c, key, message, "text_overflow")
        return None
    text += delta
    c.text[key] = text
    c.text.move_to_end(key)
    if len(c.text) > _MAX_TEXT_ITEMS:
        c.text.popitem(last=False)
    return text


def _transcription(c: ClientState, role: str, text: str, item_id: str, final: bool) -> None:
    c.emit(
        "realtime_model_transcription",
        {"role": role, "text": text, "is_final": final, "item_id": item_id},
    )


def on_session_created(c: ClientState, event: Event) -> None:
    logger.debug("session created: %s", read.ident(read.mapping(event, "session"), "id"))


def on_session_updated(c: ClientState, event: Event) -> None:
    c.session_updated(read.mapping(event, "session"))


def on_item_added(c: ClientState, event: Event) -> None:
    c.mirror.added(read.mapping(event, "item"), read.ident(event, "previous_item_id"))


def on_item_done(c: ClientState, event: Event) -> None:
    c.mirror.done(read.mapping(event, "item"))


def on_item_deleted(c: ClientState, event: Event) -> None:
    item_id = read.ident(event, "item_id")
    if item_id is not None:
        c.mirror.deleted(item_id)


def on_item_truncated(c: ClientState, event: Event) -> None:
    item_id = read.ident(event, "item_id")
    if item_id is None:
        return
    received = c.audio_out.received_ms(item_id) if c.audio_out else 0
    c.mirror.truncated(item_id, read.integer(event, "audio_end_ms"), received)


# user speech -------------------------------------------------------------------------------


def on_speech_started(c: ClientState, event: Event) -> None:
    c.user_turn_open = True
    c.act(CancelTimer("user_turn"))
    if c.interrupt_on_speech():
        barge_in.barge_in(c, explicit=False)
    turn = c.metrics.current_turn
    if turn is not None and turn.responses:
        c.emit("turn_metrics", c.metrics.turn_completed())
    c.metrics.user_speech_started()
    c.emit("user_speech_started", {})


def on_speech_stopped(c: ClientState, event: Event) -> None:
    # The user stopped speaking at audio_end_ms on the audio clock, not when this arrived.
    end_ms = event.get("audio_end_ms")
    spoken_end = c.audio_clock.time_of(float(end_ms)) if isinstance(end_ms, int | float) else None
    c.metrics.user_speech_ended(spoken_end)
    c.emit("user_speech_ended", {})
    td = c.turn_detection()
    if td is None or not td.get("create_response", True):
        c.user_turn_over()
    else:
        # The server answers the turn itself; if it does not (noise, an error), go on anyway.
        c.act(ArmTimer("user_turn", USER_TURN_GRACE_S))


def on_buffer_cleared(c: ClientState, event: Event) -> None:
    c.user_turn_over()


def on_input_transcript_delta(c: ClientState, event: Event) -> None:
    item_id = read.ident(event, "item_id")
    if item_id is None:
        return
    text = _text_delta(c, "u:" + item_id, read.text(event, "delta"))
    if text is not None:
        _transcription(c, "user", text, item_id, False)


def on_input_transcript_completed(c: ClientState, event: Event) -> None:
    item_id = read.ident(event, "item_id")
    if item_id is None:
        return
    c.text.pop("u:" + item_id, None)
    text = read.text(event, "transcript")
    c.mirror.set_transcript(item_id, text)
    usage = event.get("usage")
    c.metrics.transcription_usage(usage if isinstance(usage, dict) else None)
    _transcription(c, "user", text, item_id, True)


def on_input_transcript_failed(c: ClientState, event: Event) -> None:
    error = read.mapping(event, "error")
    c.report(
        ModelError(
            f"transcription of the user's audio failed: {error.get('message') or 'unknown'}",
            code=read.ident(error, "code") or "transcription_failed",
            type=read.ident(error, "type"),
        )
    )


# responses ---------------------------------------------------------------------------------


def on_response_created(c: ClientState, event: Event) -> None:
    response = read.mapping(event, "response")
    state = c.responses.created(response, read.ident(event, "event_id"))
    c.user_turn_open = False
    c.act(CancelTimer("user_turn"))
    c.follow_up.response_started(c.mirror.is_acknowledged)
    c.metrics.response_created(state.response_id)
    c.progress()
    c.watch()
    c.emit(
        "response_created",
        {
            "response_id": state.response_id,
            "kind": state.kind,
            "metadata": response.get("metadata"),
        },
    )


def on_audio_delta(c: ClientState, event: Event) -> None:
    out = c.audio_out
    item_id = read.ident(event, "item_id")
    state = c.responses.get(read.ident(event, "response_id"))
    if out is None or item_id is None or (state is not None and state.cancelled):
        return
    c.progress()
    if state is not None:
        if c.responses.audio_item(state, item_id):
            c.playing.add(item_id)
            c.link_audio_items.add(item_id)
        if not state.audio_seen:
            state.audio_seen = True
            c.metrics.first_audio_received()
    delta = read.text(event, "delta")
    cap_s = c.config.max_output_buffer_s
    if out.output.queued_ms + out.wire.ms_for_bytes(len(delta) * 3 // 4) > cap_s * 1000:
        message = f"audio of item {item_id} dropped: {cap_s:g} s already queued for playout"
        _overflow(c, item_id, message, "audio_overflow")
        return
    out.push(item_id, delta)


def on_audio_done(c: ClientState, event: Event) -> None:
    item_id = read.ident(event, "item_id")
    if item_id is None:
        return
    c.progress()
    state = c.responses.get(read.ident(event, "response_id"))
    if state is not None:
        state.ended_items.add(item_id)
    if c.audio_out is not None and (state is None or not state.cancelled):
        c.audio_out.end(item_id)


def on_agent_text_delta(c: ClientState, event: Event) -> None:
    item_id = read.ident(event, "item_id")
    if item_id is None:
        return
    c.progress()
    delta = read.text(event, "delta")
    text = _text_delta(c, "a:" + item_id, delta)
    if text is None:
        return
    c.mirror.append_transcript(item_id, delta)
    out = c.audio_out
    audio_transcript = event.get("type") == "response.output_audio_transcript.delta"
    if audio_transcript and out is not None and c.paces_transcripts:
        # shown when the audio received so far (where this piece starts) has played
        c.pacer.delta(item_id, text, out.received_ms(item_id))
        c.pace()
    else:
        _transcription(c, "agent", text, item_id, False)


def on_agent_transcript_done(c: ClientState, event: Event) -> None:
    item_id = read.ident(event, "item_id")
    if item_id is None:
        return
    c.text.pop("a:" + item_id, None)
    text = read.text(event, "transcript")
    c.mirror.set_transcript(item_id, text)
    out = c.audio_out
    if out is None or not c.paces_transcripts:
        _agent_final(c, text, item_id)
        return
    c.progress()
    state = c.responses.get(read.ident(event, "response_id"))
    if state is not None and state.cancelled:
        c.pacer.cut(item_id)  # cut off: the final text is what was heard
        return
    received = out.received_ms(item_id)
    c.pacer.done(item_id, text, received, has_audio=received > 0)
    c.pace()


def on_agent_text_done(c: ClientState, event: Event) -> None:
    item_id = read.ident(event, "item_id")
    if item_id is None:
        return
    c.text.pop("a:" + item_id, None)
    _agent_final(c, read.text(event, "text"), item_id)


def _agent_final(c: ClientState, text: str, item_id: str) -> None:
    c.progress()
    _transcription(c, "agent", text, item_id, True)
    c.emit("text_response", {"text": text, "type": "done"})


def on_arguments_done(c: ClientState, event: Event) -> None:
    call_id = read.ident(event, "call_id")
    c.progress()
    if call_id is not None:
        c.pending_calls[call_id] = ToolCall(
            call_id=call_id,
            name=read.text(event, "name"),
            arguments=read.text(event, "arguments"),
            item_id=read.ident(event, "item_id"),
            response_id=read.ident(event, "response_id"),
        )


def on_output_item_done(c: ClientState, event: Event) -> None:
    item = read.mapping(event, "item")
    c.progress()
    if item.get("type") == "function_call" and item.get("status") != "incomplete":
        _start_call(c, item, read.ident(event, "response_id"))


def _start_call(c: ClientState, item: dict[str, Any], response_id: str | None) -> None:
    call_id = read.ident(item, "call_id")
    if call_id is None or call_id in c.calls_started:
        return
    c.pending_calls.pop(call_id, None)
    c.start_call(
        ToolCall(
            call_id=call_id,
            name=read.text(item, "name"),
            arguments=read.text(item, "arguments"),
            item_id=read.ident(item, "id"),
            response_id=response_id,
        )
    )


def on_response_done(c: ClientState, event: Event) -> None:
    response = read.mapping(event, "response")
    state = c.responses.done(response)
    status = state.status
    # Calls the server completed but whose output_item.done we did not see (or that a beta
    # server announced only through function_call_arguments.done).
    for item in read.mappings(response, "output"):
        if item.get("type") == "function_call" and item.get("status") == "completed":
            _start_call(c, item, state.response_id)
    for call_id, call in list(c.pending_calls.items()):
        if call.response_id == state.response_id:
            del c.pending_calls[call_id]
            if status != "cancelled":
                c.start_call(call)
    if status == "cancelled" and not state.cancelled:
        state.cancelled = True  # cancelled by the server: its audio must not play on
        barge_in.cut_items(c, state.audio_items)
    elif status == "failed":
        error = read.mapping(read.mapping(response, "status_details"), "error")
        code = read.ident(error, "code")
        c.report(
            ModelError(
                f"response {state.response_id} failed: {error.get('message') or 'no reason'}",
                code=code,
                type=read.ident(error, "type"),
                fatal=is_fatal(code, read.ident(error, "type")),
            )
        )
    c.metrics.response_done(response)
    if c.vad_relaxed and not c.responses.waiting_protected():
        barge_in.relax_vad(c, False)
    c.emit(
        "response_done",
        {
            "response_id": state.response_id,
            "kind": state.kind,
            "status": status,
            "usage": response.get("usage"),
        },
    )
    c.pump()
    c.maybe_complete_turn()
    c.maybe_recycle()


# errors ------------------------------------------------------------------------------------


def on_error(c: ClientState, event: Event) -> None:
    payload = read.mapping(event, "error")
    code = read.ident(payload, "code")
    error_type = read.ident(payload, "type")
    client_event_id = read.ident(payload, "event_id")
    error = ModelError(
        str(payload.get("message") or "unknown server error"),
        code=code,
        type=error_type,
        param=read.ident(payload, "param"),
        event_id=client_event_id,
        fatal=is_fatal(code, error_type),
    )
    refused = c.responses.refused(
        client_event_id, retry=code == "conversation_already_has_active_response"
    )
    if refused is not None:
        logger.debug("response.create %s refused (%s)", refused.request_id, code)
    c.server_error(error)


HANDLERS: dict[str, Callable[[ClientState, Event], None]] = {
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

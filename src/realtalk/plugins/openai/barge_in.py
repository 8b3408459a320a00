"""Barge-in: silence the agent at once and tell the server what the user really heard.

Why: after an interruption the model must not believe the user heard its whole reply (the seed
never truncated), a truncation past the audio the server produced is refused ("Audio content of
X ms is already shorter than Y ms"), and a 0 ms truncation is refused too. So the AudioOutput is
flushed *every* time, the item being played is truncated at the played position clamped to the
audio received, and items of which nothing was played are deleted.

Non-interruptible replies: server VAD with ``interrupt_response`` would cancel them on the server,
so :func:`set_vad_relaxed` turns ``interrupt_response`` off with a ``session.update`` just before
such a reply is requested and back on once it is done; meanwhile the user's speech does not flush
its audio (only audio of an interruptible response started meanwhile is cut).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from realtalk.protocol import events

from .audio import BargeIn, barge_in_events

if TYPE_CHECKING:
    from .realtime import OpenAIRealtime, OpenAISession
    from .responses import ResponseState

__all__ = ["barge_in", "cut_items", "end_audio_of", "set_vad_relaxed"]

logger = logging.getLogger("realtalk.client")


def barge_in(model: OpenAIRealtime, *, explicit: bool) -> BargeIn | None:
    """Silence the agent now and tell the server what the user heard."""
    active = model._responses.active
    if active is not None and (explicit or active.interruptible):
        active.cancelled = True
        if explicit:
            model._send(
                events.response_cancel(response_id=active.response_id, event_id=model._ids("event"))
            )
    out = model._audio_out
    if out is None:
        return None
    if not explicit and model._responses.protected_items:
        # Non-interruptible audio plays on; only audio of a response cut now is dropped.
        if active is not None and active.cancelled:
            cut_items(model, active.audio_items)
        return None
    flushed = out.output.flush()
    session = model._session
    result, cuts = barge_in_events(flushed, out.received_ms, model._ids)
    for item_id in (flushed.item_id, *flushed.dropped_item_ids):
        if item_id is not None:
            model._pacer.cut(item_id)  # the transcript keeps only what was heard
            model._playing.discard(item_id)
            model._responses.item_finished(item_id)
    for cut in cuts:
        _send_cut(model, cut, session)
    if flushed.item_id is not None:
        model._metrics.interrupted()
        logger.debug(
            "barge-in: item %s cut at %d ms (received %d ms)",
            flushed.item_id,
            flushed.played_ms,
            out.received_ms(flushed.item_id),
        )
    return result


def cut_items(model: OpenAIRealtime, item_ids: Sequence[str]) -> None:
    """Drop the unplayed audio of these items and truncate/delete them on the server."""
    out = model._audio_out
    if out is None:
        return
    session = model._session
    for item_id in item_ids:
        if item_id not in model._playing:
            continue
        model._playing.discard(item_id)
        model._responses.item_finished(item_id)
        played = out.discard(item_id)
        end_ms = min(played, out.received_ms(item_id))
        if end_ms > 0:
            cut = events.conversation_item_truncate(item_id, end_ms, event_id=model._ids("event"))
        else:
            cut = events.conversation_item_delete(item_id, event_id=model._ids("event"))
        _send_cut(model, cut, session)


def _send_cut(model: OpenAIRealtime, cut: dict[str, Any], session: OpenAISession | None) -> None:
    item_id = cut["item_id"]
    if session is not None and item_id in session.audio_items:
        model._send(cut)
    elif cut["type"] == "conversation.item.truncate":  # offline: fix the mirror ourselves
        total = model._audio_out.received_ms(item_id) if model._audio_out else 0
        model._mirror.truncated(item_id, cut["audio_end_ms"], total)
    elif session is None:
        model._mirror.deleted(item_id)


def end_audio_of(model: OpenAIRealtime, state: ResponseState) -> None:
    """Let the audio already received of a response cut by the network play out."""
    if model._audio_out is None:
        return
    for item_id in state.audio_items:
        if item_id not in state.ended_items:
            state.ended_items.add(item_id)
            model._audio_out.end(item_id)


def set_vad_relaxed(model: OpenAIRealtime, relaxed: bool) -> None:
    """Turn the server's interrupt_response off (for a non-interruptible reply) or back on."""
    td = model._turn_detection()
    if td is None or not td.get("interrupt_response", True) or relaxed == model._vad_relaxed:
        return
    model._vad_relaxed = relaxed
    update = {"audio": {"input": {"turn_detection": {**td, "interrupt_response": not relaxed}}}}
    model._send(events.session_update(update, event_id=model._ids("event")))

"""Barge-in: silence the agent at once and tell the server what the user really heard.

Why: after an interruption the model must not believe the user heard its whole reply (the seed
never truncated), a truncation past the audio the server produced is refused ("Audio content of
X ms is already shorter than Y ms"), and a 0 ms truncation is refused too. So the AudioOutput is
flushed *every* time, the item being played is truncated at the played position clamped to the
audio received, and items of which nothing was played are deleted.

Non-interruptible replies: server VAD with ``interrupt_response`` would cancel them on the server,
:func:`relax_vad` turns ``interrupt_response`` off with a ``session.update`` just
before such a reply is requested and back on once it is done; meanwhile the user's speech does not
flush its audio (only audio of an interruptible response started meanwhile is cut).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from realtalk.protocol import events

from .audio import BargeIn, barge_in_events
from .link import LinkState

if TYPE_CHECKING:
    from .responses import ResponseState
    from .state import ClientState

__all__ = ["barge_in", "cut_items", "end_audio_of", "relax_vad"]

logger = logging.getLogger("realtalk.client")


def barge_in(c: ClientState, *, explicit: bool) -> BargeIn | None:
    """Silence the agent now and tell the server what the user heard."""
    active = c.responses.active
    if active is not None and (explicit or active.interruptible):
        active.cancelled = True
        if explicit:
            c.send(events.response_cancel(response_id=active.response_id, event_id=c.ids("event")))
    out = c.audio_out
    if out is None:
        return None
    if not explicit and c.responses.protected_items:
        # Non-interruptible audio plays on; only audio of a response cut now is dropped.
        if active is not None and active.cancelled:
            cut_items(c, active.audio_items)
        return None
    flushed = out.output.flush()
    result, cuts = barge_in_events(flushed, out.received_ms, c.ids)
    for item_id in (flushed.item_id, *flushed.dropped_item_ids):
        if item_id is not None:
            c.pacer.cut(item_id)  # the transcript keeps only what was heard
            c.playing.discard(item_id)
            c.responses.item_finished(item_id)
    for cut in cuts:
        _send_cut(c, cut)
    if flushed.item_id is not None:
        c.metrics.interrupted()
        logger.debug(
            "barge-in: item %s cut at %d ms (received %d ms)",
            flushed.item_id,
            flushed.played_ms,
            out.received_ms(flushed.item_id),
        )
    return result


def cut_items(c: ClientState, item_ids: Sequence[str]) -> None:
    """Drop the unplayed audio of these items and truncate/delete them on the server."""
    out = c.audio_out
    if out is None:
        return
    for item_id in item_ids:
        if item_id not in c.playing:
            continue
        c.playing.discard(item_id)
        c.responses.item_finished(item_id)
        played = out.discard(item_id)
        end_ms = min(played, out.received_ms(item_id))
        if end_ms > 0:
            cut = events.conversation_item_truncate(item_id, end_ms, event_id=c.ids("event"))
        else:
            cut = events.conversation_item_delete(item_id, event_id=c.ids("event"))
        _send_cut(c, cut)


def _send_cut(c: ClientState, cut: dict[str, Any]) -> None:
    """Send the cut on the link that produced the audio; otherwise fix the mirror ourselves."""
    item_id = cut["item_id"]
    is_open = c.state is LinkState.OPEN
    if is_open and item_id in c.link_audio_items:
        c.send(cut)
    elif cut["type"] == "conversation.item.truncate":
        total = c.audio_out.received_ms(item_id) if c.audio_out else 0
        c.mirror.truncated(item_id, cut["audio_end_ms"], total)
    elif not is_open:
        c.mirror.deleted(item_id)


def end_audio_of(c: ClientState, state: ResponseState) -> None:
    """Let the audio already received of a response cut by the network play out."""
    if c.audio_out is None:
        return
    for item_id in state.audio_items:
        if item_id not in state.ended_items:
            state.ended_items.add(item_id)
            c.audio_out.end(item_id)


def relax_vad(c: ClientState, relaxed: bool) -> None:
    """Turn the server's interrupt_response off (a non-interruptible reply) or back on."""
    td = c.turn_detection()
    if td is None or not td.get("interrupt_response", True) or relaxed == c.vad_relaxed:
        return
    c.vad_relaxed = relaxed
    update = {"audio": {"input": {"turn_detection": {**td, "interrupt_response": not relaxed}}}}
    c.send(events.session_update(update, event_id=c.ids("event")))

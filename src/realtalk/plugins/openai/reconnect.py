"""Reconnection and session recycling: a new connection that carries the conversation on.

Why: OpenAI ends every Realtime session after 60 minutes (``session_expired``, then close 1001)
and networks drop; the seed simply died. Here an unexpected close (or the expiry) starts
:func:`start_reconnect`: exponential backoff with jitter (``config.reconnect``), a fresh
connection with the full session settings and tools, then a text copy of the conversation
(:mod:`.conversation`) and whatever the app sent meanwhile. A reply cut by the network is asked
for again (unless a newer request already waits). ``reconnecting`` / ``reconnected`` are
emitted; an authentication or quota failure, or running out of attempts, is fatal.

Recycling: ``session_recycle_s`` after connecting (default 55 minutes), the session is replaced
the same way at the first idle moment (no reply generated, queued or playing, no tool running),
so the limit never cuts a sentence.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from realtalk.errors import ConnectionLostError, FatalServerError, ServerError
from realtalk.protocol import events
from realtalk.realtime.base import ModelError

from . import barge_in
from .connection import model_error

if TYPE_CHECKING:
    from .realtime import OpenAIRealtime, OpenAISession
    from .responses import ResponseState

__all__ = ["NOT_REPLAYED", "maybe_recycle", "on_recycle_due", "schedule_recycle", "start_reconnect"]

logger = logging.getLogger("realtalk.client")

#: User audio kept during an outage and sent to the new session (older audio is dropped and
#: reported): enough for a sentence, not so much that a stale question is answered.
MAX_HELD_AUDIO_MS = 5000

# Client events that make no sense on a new connection (live audio, cuts of old audio).
NOT_REPLAYED = frozenset(
    {
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.truncate",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "conversation.item.create",  # replayed from the conversation mirror instead
        "response.cancel",
        "response.create",  # requests are re-queued by the ResponseTracker
        "session.update",  # the new connection gets a full one
    }
)


def start_reconnect(model: OpenAIRealtime, reason: str, old: OpenAISession) -> None:
    if model._reconnect_task is not None or model._closing:
        return
    model._reconnect_task = asyncio.get_running_loop().create_task(
        _reconnect(model, reason, old), name="realtime-reconnect"
    )


async def _reconnect(model: OpenAIRealtime, reason: str, old: OpenAISession) -> None:
    model._reconnecting = True
    try:
        await _do_reconnect(model, reason, old)
    finally:
        model._reconnecting = False
        model._reconnect_task = None


async def _do_reconnect(model: OpenAIRealtime, reason: str, old: OpenAISession) -> None:
    model._session = None
    salvaged = []
    while not old.msg_queue.empty():
        event = old.msg_queue.get_nowait()
        if event.get("type") == "input_audio_buffer.append":
            model._held_audio.add(event["audio"])  # never sent: goes to the new session
        elif event.get("type") not in NOT_REPLAYED:
            salvaged.append(event)
    model._deferred[:0] = salvaged
    await model._close_session(old)
    cut = model._responses.connection_lost()
    if cut is not None:
        _close_cut_response(model, cut)
    model._user_turn_open = False
    model._vad_relaxed = False
    model._text.clear()
    policy = model.config.reconnect
    last_error: Exception | None = None
    for attempt in range(1, policy.max_attempts + 1):
        model.emit("reconnecting", {"attempt": attempt, "reason": reason})
        await asyncio.sleep(policy.delay_s(attempt) if attempt > 1 or old.expired else 0.0)
        if model._closing:
            return
        try:
            session = await model._open()
        except FatalServerError as exc:
            model._fatal = model_error(exc, fatal=True)
            model._emit_error(model._fatal)
            model._spawn(model.aclose())
            return
        except (ConnectionLostError, ServerError) as exc:
            last_error = exc
            logger.warning("reconnect attempt %d failed: %s", attempt, exc)
            continue
        replayed_ms, dropped_ms = _replay(model, session)
        model._reconnecting = False
        model.emit(
            "reconnected",
            {"attempt": attempt, "replayed_audio_ms": replayed_ms, "dropped_audio_ms": dropped_ms},
        )
        if dropped_ms:
            model._emit_error(
                ModelError(
                    f"{dropped_ms} ms of user audio from the outage were dropped (only the last "
                    f"{MAX_HELD_AUDIO_MS} ms are sent to the new session)",
                    code="audio_dropped",
                )
            )
        schedule_recycle(model)
        model._pump()
        return
    _, held_ms, dropped_ms = model._held_audio.take()
    lost = f"; {held_ms + dropped_ms} ms of user audio were lost" if held_ms + dropped_ms else ""
    model._fatal = ModelError(
        f"could not reconnect after {policy.max_attempts} attempts: {last_error or reason}{lost}",
        code="connection_lost",
        fatal=True,
    )
    model._emit_error(model._fatal)
    model._spawn(model.aclose())


def _replay(model: OpenAIRealtime, session: OpenAISession) -> tuple[int, int]:
    """Rebuild the conversation in the new session, then send what waited meanwhile."""
    items = model._mirror.replay_items()
    model._mirror.clear()
    previous: str | None = None
    for item in items:
        model._mirror.created(item)
        session.msg_queue.put_nowait(
            events.conversation_item_create(
                item,
                previous_item_id=previous,
                event_id=model._ids("event"),
            )
        )
        previous = item.get("id")
    deferred, model._deferred = model._deferred, []
    for event in deferred:
        session.msg_queue.put_nowait(event)
    audio, held_ms, dropped_ms = model._held_audio.take()
    model._audio_clock.reset()  # the new session counts its audio from zero
    for payload in audio:
        session.msg_queue.put_nowait(events.input_audio_buffer_append(payload))
    model._audio_clock.sent(held_ms)  # captured earlier; only its amount is known exactly
    logger.info(
        "replayed %d conversation items and %d ms of user audio into the new session",
        len(items),
        held_ms,
    )
    return held_ms, dropped_ms


def _close_cut_response(model: OpenAIRealtime, cut: ResponseState) -> None:
    """The reply the network cut: its received audio plays out, listeners hear that it ended,
    its usage stays unknown, and it is asked for again."""
    barge_in.end_audio_of(model, cut)
    for call_id, call in list(model._pending_calls.items()):
        if call.response_id == cut.response_id:
            del model._pending_calls[call_id]  # its arguments may be incomplete: not run
    model._metrics.response_done({"id": cut.response_id, "status": "cancelled"})
    model.emit(
        "response_done",
        {
            "response_id": cut.response_id,
            "kind": cut.kind,
            "status": "cancelled",
            "usage": None,
            "reason": "connection_lost",
        },
    )
    # Cut by the network, not by the user: ask again, unless a newer request waits (its reply
    # sees the cut one in the replayed conversation).
    if not cut.cancelled and not model._responses.queued:
        model._enqueue_request("resume", {}, interruptible=cut.interruptible)


def schedule_recycle(model: OpenAIRealtime) -> None:
    if model._recycle_handle is not None:
        model._recycle_handle.cancel()
        model._recycle_handle = None
    model._recycle_due = False
    seconds = model.config.session_recycle_s
    if seconds is not None and model._loop is not None:
        model._recycle_handle = model._loop.call_later(seconds, on_recycle_due, model)


def on_recycle_due(model: OpenAIRealtime) -> None:
    model._recycle_due = True
    maybe_recycle(model)


def maybe_recycle(model: OpenAIRealtime) -> None:
    session = model._session
    if not model._recycle_due or session is None or not model._idle(audio=True):
        return
    model._recycle_due = False
    logger.info("recycling the realtime session before its time limit")
    start_reconnect(model, "session recycle (time limit ahead)", session)

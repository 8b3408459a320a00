"""One WebSocket link's I/O: :class:`OpenAISession` (the socket, its outgoing queue, its tasks),
the send loop, the receive loop, and closing it.

The loops only move frames; every decision is the core's, reached through the driver
(:mod:`.realtime`) by the callbacks it passes. Sending: client events are written in queue order,
our own ``input_audio_buffer.append`` events by string formatting (:func:`.audio.append_json`),
and appends that queued while the socket was busy are joined into one message
(:func:`.audio.join_appends`): one frame and one write instead of several. Receiving: each frame
is parsed (beta names mapped to GA ones) and handed over; an unreadable frame is reported and
skipped, and the loss of the socket is reported once, unless the driver had dropped it already.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from realtalk.protocol import parse_event
from realtalk.realtime.base import ModelError

from .audio import AudioAppend, join_appends

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["OpenAISession", "close_session", "receive_loop", "send_loop"]

logger = logging.getLogger("realtalk.client")

# One encoder for every event: json.dumps with options builds a new encoder per call.
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


@dataclass
class OpenAISession:
    """One live WebSocket connection: the socket, its outgoing queue and its I/O tasks."""

    ws: ClientConnection
    msg_queue: asyncio.Queue[dict[str, Any]]
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


async def send_loop(session: OpenAISession, report: Callable[[ModelError], None]) -> None:
    """Write the queued client events until the socket closes or the task is cancelled."""
    ws = session.ws
    queue = session.msg_queue
    try:
        while True:
            event = await queue.get()
            if type(event) is AudioAppend:
                frame = join_appends(event, queue)
            else:
                try:
                    frame = _encode_json(event)
                except (TypeError, ValueError) as exc:  # e.g. a bad event given to send_event
                    message = f"cannot send {event.get('type')}: {exc}"
                    report(ModelError(message, code="client_error"))
                    continue
            await ws.send(frame)
    except ConnectionClosed:
        return  # the receive loop sees the close and reports it


async def receive_loop(
    session: OpenAISession,
    *,
    is_current: Callable[[OpenAISession], bool],
    feed: Callable[[dict[str, Any]], None],
    report: Callable[[ModelError], None],
    lost: Callable[[str], None],
) -> None:
    """Hand every server event to ``feed`` while ``session`` is the driver's current one; report
    its loss with ``lost(reason)``."""
    reason = "the connection closed"
    try:
        async for raw in session.ws:
            if not is_current(session):
                return  # dropped (recycle, handshake timeout): its late frames are not news
            try:
                event = parse_event(raw)
            except Exception as exc:  # ValueError, or RecursionError for absurd nesting
                report(ModelError(f"unreadable server event: {exc}", code="invalid_event"))
                continue
            feed(event)
    except ConnectionClosed as exc:
        reason = f"connection lost ({exc})"
    except Exception as exc:  # the socket library failed: treat it as a lost connection
        logger.exception("the receive loop failed")
        reason = f"receive failed ({type(exc).__name__}: {exc})"
    else:
        ws = session.ws
        reason = f"closed by the server (code {ws.close_code}, {ws.close_reason or 'no reason'})"
    if is_current(session):  # a socket we dropped on purpose is not news
        lost(reason)


async def close_session(session: OpenAISession) -> None:
    """Stop the session's tasks (but the calling one) and close its socket."""
    current = asyncio.current_task()
    for task in session.tasks:
        if task is not current and not task.done():
            task.cancel()
    for task in session.tasks:
        if task is not current:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    with contextlib.suppress(Exception):
        await asyncio.wait_for(session.ws.close(), 2.0)

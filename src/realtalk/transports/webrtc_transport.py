"""WebRTCTransport: one browser connection as a realtalk Transport.

Media: the browser's microphone goes to ``session.push_audio``, its camera (when switched on) to
``session.push_video``, and the session's AudioOutput comes back as the agent's voice
(:class:`AgentAudioTrack`).

The data channel "events" (opened by the page) carries JSON both ways:

- to the page: ``{"type": <session event>, ...payload}`` for ``user_state_changed``,
  ``agent_state_changed``, ``transcription``, ``function_call``, ``metrics``, ``error``,
  ``reconnecting``, ``reconnected`` and ``closed``; first a ``hello`` with the connection id
  and current states. Messages produced before the channel opens are queued (bounded).
- from the page: ``{"type": "text", "text"}`` (a typed message), ``{"type": "interrupt"}``,
  ``{"type": "camera", "on": bool}`` and ``{"type": "bye"}``. Anything else is answered with an
  ``error`` message; a bad message never breaks the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from realtalk.media.frame import AudioFrame
from realtalk.transports.base import Transport
from realtalk.transports.webrtc_media import AgentAudioTrack, pump_audio, pump_video

if TYPE_CHECKING:  # pragma: no cover - typing only
    from realtalk.session import AgentSession

__all__ = ["FORWARDED_EVENTS", "MAX_TEXT_CHARS", "PEER_CLOSE_TIMEOUT_S", "WebRTCTransport"]

logger = logging.getLogger("realtalk.transport")

#: Session events sent to the page as they are.
FORWARDED_EVENTS: tuple[str, ...] = (
    "user_state_changed",
    "agent_state_changed",
    "transcription",
    "function_call",
    "metrics",
    "error",
    "reconnecting",
    "reconnected",
    "closed",
)
#: Longest typed message accepted from the page.
MAX_TEXT_CHARS = 4000
#: How long closing the peer connection may take before it is left to the garbage collector:
#: aiortc's close awaits its ICE, DTLS and RTP tasks, and a connection that never finished
#: connecting must not keep a worker from shutting down.
PEER_CLOSE_TIMEOUT_S = 5.0
_MAX_MESSAGE_BYTES = 16 * 1024
_MAX_QUEUED = 512
_CHANNEL_LABEL = "events"


class WebRTCTransport(Transport):
    """Media and events of one browser peer connection, for one AgentSession.

    Built by the server before it answers the browser's offer (the agent's audio track must be
    in the answer); the session then calls :meth:`attach`. ``on_close`` callbacks run once, after
    everything is released, whoever started the close (the browser, the session, the server).
    """

    def __init__(
        self, pc: RTCPeerConnection, *, connection_id: str, audio_sample_rate: int = 24000
    ) -> None:
        self.pc = pc
        self.connection_id = connection_id
        self.audio_track = AgentAudioTrack(sample_rate=audio_sample_rate)
        self.session: AgentSession | None = None
        self.video_enabled = True  # the page switches it with {"type": "camera"}
        #: Frames received from the browser so far, by kind (for health checks and tests).
        self.frames_in = {"audio": 0, "video": 0}
        self._channel: RTCDataChannel | None = None
        self._queued: deque[str] = deque(maxlen=_MAX_QUEUED)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handlers: list[tuple[str, Callable[..., None]]] = []
        self._on_close: list[Callable[[], Any]] = []
        self._on_attach: list[Callable[[AgentSession], Any]] = []
        self._closing = False
        self._page_left = False  # the page said "bye" or its connection dropped
        self._closed = asyncio.Event()
        self._channel_open = asyncio.Event()
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)

    # -- Transport ---------------------------------------------------------------------------

    async def attach(self, session: AgentSession) -> None:
        """Start carrying media and events between the browser and ``session``."""
        if self._closing:
            raise RuntimeError(f"WebRTC connection {self.connection_id} is already closed")
        if self.session is not None and self.session is not session:
            raise RuntimeError("this WebRTCTransport is already attached to another session")
        self.session = session
        self.audio_track.bind(session.audio_output)
        for name in FORWARDED_EVENTS:
            handler = self._forwarder(name)
            session.on(name, handler)
            self._handlers.append((name, handler))
        for callback in self._on_attach:
            result = callback(session)
            if inspect.isawaitable(result):
                await result
        logger.debug("connection %s attached to a session", self.connection_id)

    async def aclose(self) -> None:
        """Release the connection: stop the tracks, close the peer connection. Idempotent."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            session = self.session
            if session is not None:
                for name, handler in self._handlers:
                    session.off(name, handler)
            self._handlers.clear()
            self.audio_track.unbind()
            if not self._page_left:
                # The session ended on this side (fatal error, the agent hung up): tell the
                # page, so it shows why instead of waiting for the connection to time out.
                self._send_now("closed", {"reason": "the agent ended the session"})
            await self._drain_channel()
            self.audio_track.stop()
            current = asyncio.current_task()
            for task in list(self._tasks):
                if task is not current:
                    task.cancel()
            try:
                async with asyncio.timeout(PEER_CLOSE_TIMEOUT_S):
                    await self.pc.close()
            except TimeoutError:
                logger.warning(
                    "connection %s: the peer connection did not close within %.0f s; "
                    "leaving it to the garbage collector (state %s)",
                    self.connection_id,
                    PEER_CLOSE_TIMEOUT_S,
                    getattr(self.pc, "connectionState", "unknown"),
                )
        finally:
            self._closed.set()
            for callback in self._on_close:
                try:
                    callback()
                except Exception:
                    logger.exception(
                        "on_close callback of connection %s failed", self.connection_id
                    )
            logger.info("connection %s closed", self.connection_id)

    # -- server-facing API --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def wait_channel_open(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) for the page's events channel; False if it never came."""
        try:
            await asyncio.wait_for(self._channel_open.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def add_close_callback(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` once the connection is fully released."""
        self._on_close.append(callback)

    def add_attach_callback(self, callback: Callable[[AgentSession], Any]) -> None:
        """Run ``callback(session)`` (awaited when it returns an awaitable) when a session
        attaches: after the model connected, before the agent's ``on_enter``."""
        self._on_attach.append(callback)

    def send_event(self, event_type: str, payload: Mapping[str, Any] | None = None) -> None:
        """Send ``{"type": event_type, **payload}`` to the page (queued until the channel opens)."""
        if not self._send_now(event_type, payload) and not self._closing:
            self._queued.append(_encode(event_type, payload))

    def mark_page_left(self) -> None:
        """The browser is gone (its connection failed or closed): send it nothing more."""
        self._page_left = True

    def _send_now(self, event_type: str, payload: Mapping[str, Any] | None) -> bool:
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return False
        channel.send(_encode(event_type, payload))
        return True

    # -- media --------------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        logger.debug("connection %s: remote %s track", self.connection_id, track.kind)
        if track.kind == "audio":
            self._spawn(pump_audio(track, self._deliver_audio), f"mic-{self.connection_id}")
        elif track.kind == "video":
            self._spawn(pump_video(track, self._deliver_video), f"cam-{self.connection_id}")

    def _deliver_audio(self, frame: AudioFrame) -> Any:
        self.frames_in["audio"] += 1
        session = self.session
        if session is None or self._closing:
            return None  # the agent is still starting: drop, never queue stale speech
        return session.push_audio(frame)

    def _deliver_video(self, frame: Any) -> Any:
        self.frames_in["video"] += 1
        session = self.session
        if session is None or self._closing or not self.video_enabled:
            return None
        return session.push_video(frame)

    # -- data channel -------------------------------------------------------------------------

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != _CHANNEL_LABEL:
            logger.debug("ignoring data channel %r", channel.label)
            return
        self._channel = channel
        channel.on("message", self._on_message)
        if channel.readyState == "open":
            self._on_channel_open()
        else:
            channel.on("open", self._on_channel_open)

    def _on_channel_open(self) -> None:
        channel = self._channel
        if channel is None:
            return
        session = self.session
        hello: dict[str, Any] = {"connection_id": self.connection_id}
        if session is not None:
            hello["agent_state"] = session.agent_state
            hello["user_state"] = session.user_state
        queued = list(self._queued)
        self._queued.clear()
        self.send_event("hello", hello)
        for text in queued:
            channel.send(text)
        self._channel_open.set()

    def _on_message(self, message: str | bytes) -> None:
        try:
            event = _parse_message(message)
        except ValueError as exc:
            self.send_event("error", {"message": str(exc), "code": "bad_message", "fatal": False})
            return
        kind = event["type"]
        if kind == "bye":
            logger.info("connection %s: the page said goodbye", self.connection_id)
            self._page_left = True
            self._spawn(self._close_session(), f"bye-{self.connection_id}")
            return
        if kind == "camera":
            self.video_enabled = event["on"]
            return
        session = self.session
        if session is None:
            self.send_event(
                "error",
                {"message": "the agent is still starting; try again", "code": "not_ready"},
            )
            return
        if kind == "text":
            self._spawn(self._guard(session.send_text(event["text"])), "text")
        elif kind == "interrupt":
            self._spawn(self._guard(session.interrupt()), "interrupt")

    async def _guard(self, action: Any) -> None:
        try:
            await action
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("connection %s: page request failed", self.connection_id)
            self.send_event("error", {"message": str(exc) or type(exc).__name__, "fatal": False})

    async def _close_session(self) -> None:
        session = self.session
        if session is not None:
            await session.close()
        await self.aclose()

    async def _drain_channel(self, timeout: float = 0.25) -> None:
        """Give queued messages (e.g. "closed") a moment to leave before the channel goes."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while channel.bufferedAmount > 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)  # SCTP sends asynchronously after the buffer empties

    # -- helpers ------------------------------------------------------------------------------

    def _forwarder(self, name: str) -> Callable[..., None]:
        def forward(*args: Any) -> None:
            self.send_event(name, _payload(args))

        return forward

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _encode(event_type: str, payload: Mapping[str, Any] | None) -> str:
    message = dict(payload or {})
    if "type" in message:  # e.g. ModelError.type: keep it under another name
        message["error_type"] = message.pop("type")
    return json.dumps(_jsonable({"type": event_type, **message}), separators=(",", ":"))


def _parse_message(message: str | bytes) -> dict[str, Any]:
    """Validate a message from the page; raise ValueError saying what is wrong."""
    if isinstance(message, bytes):
        raise ValueError("binary messages are not accepted on the events channel")
    if len(message) > _MAX_MESSAGE_BYTES:
        raise ValueError(f"message longer than {_MAX_MESSAGE_BYTES} characters")
    try:
        event = json.loads(message)
    except json.JSONDecodeError as exc:
        raise ValueError(f"message is not JSON: {exc.msg}") from None
    except RecursionError:
        raise ValueError("message is nested too deeply") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ValueError('message must be a JSON object with a string "type"')
    kind = event["type"]
    if kind == "text":
        text = event.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError('"text" message needs a non-empty string "text"')
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"text longer than {MAX_TEXT_CHARS} characters")
        return {"type": "text", "text": text.strip()}
    if kind == "camera":
        on = event.get("on")
        if not isinstance(on, bool):
            raise ValueError('"camera" message needs a boolean "on"')
        return {"type": "camera", "on": on}
    if kind in ("interrupt", "bye"):
        return {"type": kind}
    raise ValueError(f"unknown message type {kind!r} (expected text, interrupt, camera or bye)")


def _payload(args: tuple[Any, ...]) -> dict[str, Any]:
    """A session event's arguments as a JSON-friendly dict."""
    if not args:
        return {}
    value = args[0]
    if isinstance(value, Mapping):
        return dict(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, Mapping):
            return dict(result)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return {"value": value}


def _jsonable(value: Any) -> Any:
    """Make ``value`` safe for JSON.parse in a browser: no NaN/Infinity, unknown types as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)

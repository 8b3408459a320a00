"""OpenAIRealtime: the OpenAI Realtime (GA) model behind the seed's public surface.

Structure: :meth:`OpenAIRealtime.feed` is the sans-I/O heart — it takes one decoded server event
and hands it to its handler (:mod:`.handlers`), which updates the state, emits events and queues
client events; nothing there awaits, so the receive loop never blocks and tests feed event
sequences without a socket. This module holds the public API and the I/O around it: a send loop
(one queue per connection), a receive loop that survives bad frames, and the connect handshake
that waits for ``session.updated``.

Decisions (each fixes a seed defect or a pain users report):

- Barge-in (:mod:`.barge_in`): speech flushes the AudioOutput *every time* (when turn detection
  has ``interrupt_response``) and the cut item is truncated at the played position, clamped to the
  audio received, or deleted when nothing of it was played. :meth:`interrupt` does the same and
  sends ``response.cancel`` only while a response is active.
- Non-interruptible replies (``say(..., interruptible=False)``): just before such a
  ``response.create`` a ``session.update`` turns the server's ``interrupt_response`` off, and it
  is restored when that response is done; locally, speech does not flush its audio.
- ``say`` asks the model to speak the text verbatim through per-response ``instructions`` and an
  empty ``input``: nothing is added on the user's side of the conversation, and the spoken reply
  is recorded as the assistant's words. OpenAI has no exact-text voice (``exact_say`` is False).
- Tools run as tasks (:mod:`.tools_runner`); one ``response.create`` follows once the calling
  response is done and every tool finished.
- G.711 (``g711_ulaw``/``g711_alaw``): encoded and decoded at the edges (:mod:`.audio`); callers
  always hand in and receive PCM, at 8 kHz in an AudioOutput the plugin creates itself.
- Reconnection and recycling (:mod:`.reconnect`): settings, tools, a text copy of the conversation
  (:mod:`.conversation`) and the user's audio of the outage go to the new session; authentication
  and quota errors are fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from realtalk.errors import (
    ConfigurationError,
    ConnectionLostError,
    FatalServerError,
    NotConnectedError,
    RealtalkError,
)
from realtalk.media.frame import AudioFrame
from realtalk.media.image import FrameThrottler, data_url, encode_jpeg_async
from realtalk.media.playout import AudioOutput
from realtalk.metrics import PriceTable, SessionMetrics
from realtalk.protocol import SAY_PREFIX, IdGenerator, events, parse_event, say_instructions
from realtalk.realtime.base import ModelError, RealtimeBaseModel, RealtimeCapabilities

from . import barge_in, reconnect
from .audio import AudioInput, HeldAudio, OutputAudio, b64_size
from .audio_clock import AudioClock
from .config import OpenAIRealtimeConfig, build_session, normalize_transcription
from .connection import model_error, open_websocket
from .conversation import ConversationMirror
from .handlers import HANDLERS
from .reconnect import MAX_HELD_AUDIO_MS, NOT_REPLAYED
from .responses import ResponseRequest, ResponseTracker
from .tools_runner import FollowUp, ToolCall, ToolRunner
from .transcript_pacer import TranscriptPacer
from .url import OPENAI_BASE_URL, auth_headers, needs_api_key, redact_url
from .url import process_base_url as _process_base_url

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from realtalk.agent import Agent
    from realtalk.tools import FunctionTool, ToolResult

__all__ = ["SAY_INSTRUCTIONS", "OpenAIRealtime", "OpenAISession"]

logger = logging.getLogger("realtalk.client")

#: The wording of a say (kept under its old name; the protocol package owns it).
SAY_INSTRUCTIONS = SAY_PREFIX


@dataclass
class OpenAISession:
    """One live WebSocket connection: the socket, its outgoing queue and its I/O tasks."""

    ws: ClientConnection
    msg_queue: asyncio.Queue[dict[str, Any]]
    tasks: list[asyncio.Task[Any]]
    #: Resolved by the ``session.updated`` that answers the first ``session.update``.
    ready: asyncio.Future[dict[str, Any]] | None = None
    update_event_id: str | None = None
    #: Items whose audio arrived on this connection (only those can be truncated here).
    audio_items: set[str] = field(default_factory=set)
    expired: bool = False


class OpenAIRealtime(RealtimeBaseModel):
    """OpenAI's realtime model (GA protocol) over a WebSocket.

    Args:
        api_key: OpenAI (or Azure) key; read from ``OPENAI_API_KEY`` when not given. Needed for
            OpenAI and Azure; a local server (``realtalk serve``) or another custom base URL may
            go without.
        model: the model (e.g. ``"gpt-realtime"``), or the Azure deployment name.
        config: :class:`OpenAIRealtimeConfig`; defaults to server VAD, voice "alloy".
        base_url: defaults to ``OPENAI_BASE_URL`` from the environment, else
            ``https://api.openai.com/v1``. Azure: ``https://<resource>.openai.azure.com``.

    Raises:
        ValueError (:class:`~realtalk.errors.ConfigurationError`): no API key for OpenAI/Azure,
            or an invalid model name.
    """

    capabilities = RealtimeCapabilities(vision=True, exact_say=False, reconnects=True)

    def __init__(
        self,
        *,
        api_key: str | None = None,
        model: str,
        config: OpenAIRealtimeConfig | None = None,
        base_url: str | None = None,
    ) -> None:
        super().__init__(logger=logger)
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError("model must be a model name such as 'gpt-realtime'")
        self.model = model
        self.config: OpenAIRealtimeConfig = config or OpenAIRealtimeConfig()
        self.base_url = base_url or os.getenv("OPENAI_BASE_URL") or OPENAI_BASE_URL
        self.api_key = api_key or os.getenv("OPENAI_API_KEY")
        if not self.api_key and needs_api_key(self.base_url):
            raise ConfigurationError(
                "OpenAI API key missing: pass OpenAIRealtime(api_key=...) or set the "
                "OPENAI_API_KEY environment variable. To run without a key, start the local "
                "server (`realtalk serve`) and pass base_url='http://127.0.0.1:<port>/v1'."
            )
        self._ids = IdGenerator()
        self._instructions: str | None = None
        self._tools: list[FunctionTool] = []
        self._formatted_tools: list[dict[str, Any]] = []
        self._session: OpenAISession | None = None
        self._closing = False
        self._fatal: ModelError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._reconnecting = False
        self._background: set[asyncio.Task[Any]] = set()
        self._deferred: list[dict[str, Any]] = []  # sent while reconnecting
        self._recycle_handle: asyncio.TimerHandle | None = None
        self._recycle_due = False
        self._user_turn_handle: asyncio.TimerHandle | None = None

        self._mirror = ConversationMirror()
        self._responses = ResponseTracker()
        self._runner = ToolRunner(self._on_tool_result, timeout_s=self.config.tool_timeout_s)
        self._follow_up = FollowUp()
        self._pending_calls: dict[str, ToolCall] = {}
        self._audio_in = AudioInput(
            self.config.input_format,
            raw_rate=self.config.input_sample_rate,
            raw_channels=self.config.input_channels,
            batch_ms=self.config.append_batch_ms,
        )
        self._held_audio = HeldAudio(self.config.input_format, MAX_HELD_AUDIO_MS)
        #: maps the server's audio_end_ms to when the user really stopped speaking
        self._audio_clock = AudioClock()
        #: the agent's transcript, released as its audio plays
        self._pacer = TranscriptPacer(self._paced_transcript)
        self._pacer_timer: asyncio.TimerHandle | None = None
        self._own_output: AudioOutput | None = None
        self._audio_out: OutputAudio | None = None
        self._hooked_output: AudioOutput | None = None
        self._playing: set[str] = set()  # items pushed to the AudioOutput, not yet finished
        self._user_turn_open = False
        self._vad_relaxed = False
        self._text: dict[str, str] = {}  # interim transcripts by item id ("u:"/"a:" prefixed)
        self._throttle = FrameThrottler(self.config.max_image_fps)
        self._encoding_image = False
        self._effective_session: dict[str, Any] = {}
        transcription = normalize_transcription(self.config.input_audio_transcription)
        if self.config.prices is not None:
            prices = self.config.prices
        elif needs_api_key(self.base_url):  # OpenAI or Azure: billed per token
            prices = PriceTable.for_model(
                model, transcription_model=transcription["model"] if transcription else None
            )
        else:  # a local or self-hosted server (realtalk serve) bills nothing: no dollar figures
            prices = PriceTable(known=False)
        self._metrics = SessionMetrics(prices)

    # -- public state ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._session is not None and not self._closing

    @property
    def conversation(self) -> ConversationMirror:
        """The client's mirror of the server conversation (what a reconnect replays)."""
        return self._mirror

    @property
    def metrics(self) -> SessionMetrics:
        """Per-turn latency, tokens and cost of this model instance."""
        return self._metrics

    @property
    def session_settings(self) -> dict[str, Any]:
        """The effective session the server last confirmed (``session.updated``)."""
        return self._effective_session

    # -- agent ----------------------------------------------------------------------------------

    def set_agent(self, agent: Agent) -> None:
        self._instructions = agent.instructions
        self._tools = list(agent.tools)
        self._formatted_tools = [tool.to_openai() for tool in self._tools]
        self._runner.set_tools(self._tools)

    async def update_agent(self, agent: Agent) -> None:
        """New instructions and tools, sent to a live session at once."""
        self.set_agent(agent)
        if self._session is not None:
            await self.send_first_session_update()

    # -- conversation history (a handoff's trimming) -------------------------------------------

    def history(self) -> list[dict[str, Any]]:
        """The acknowledged items of the server conversation, oldest first (copies)."""
        items = (self._mirror.item(item_id) for item_id in list(self._mirror._order))
        return [item for item in items if item is not None]

    async def delete_items(self, item_ids: list[str]) -> None:
        """``conversation.item.delete`` for each; the mirror follows the server's answers."""
        for item_id in item_ids:
            self._send(events.conversation_item_delete(item_id, event_id=self._ids("event")))

    # -- connection -----------------------------------------------------------------------------

    def process_base_url(self, url: str, model: str) -> str:
        """The WebSocket URL (see :func:`realtalk.plugins.openai.url.process_base_url`)."""
        return _process_base_url(url, model)

    async def connect(self) -> None:
        """Open the session; returns once the server confirmed the settings (``session.updated``).

        Raises:
            FatalServerError: the key was refused, or the server rejected the settings for good.
            ConnectionLostError: the server could not be reached or did not confirm in time.
        """
        if self._session is not None:
            return
        self._closing = False
        self._fatal = None
        try:
            await self._open()
        except FatalServerError as exc:
            if self._fatal is None:  # not yet reported by an error event
                self._fatal = model_error(exc, fatal=True)
                self._emit_error(self._fatal)
            raise
        reconnect.schedule_recycle(self)

    async def _open(self) -> OpenAISession:
        url = self.process_base_url(self.base_url, self.model)
        headers = auth_headers(self.api_key, url)
        ws = await open_websocket(url, headers, timeout_s=self.config.connect_timeout_s)
        loop = asyncio.get_running_loop()
        session = OpenAISession(ws=ws, msg_queue=asyncio.Queue(), tasks=[])
        session.ready = loop.create_future()
        self._attach(session)
        session.tasks.append(loop.create_task(self._send_loop(session), name="realtime-send"))
        session.tasks.append(loop.create_task(self._receive_loop(session), name="realtime-recv"))
        update = self._session_update_event()
        session.update_event_id = update["event_id"]
        session.msg_queue.put_nowait(update)
        try:
            await asyncio.wait_for(asyncio.shield(session.ready), self.config.connect_timeout_s)
        except (TimeoutError, RealtalkError) as exc:
            self._session = None
            await self._close_session(session)
            if isinstance(exc, TimeoutError):
                raise ConnectionLostError(
                    f"{redact_url(url)} did not confirm the session settings (no session.updated "
                    f"within {self.config.connect_timeout_s:g} s)"
                ) from None
            raise
        logger.info("connected to %s (model %s)", redact_url(url), self.model)
        return session

    def _attach(self, session: OpenAISession) -> None:
        """Make ``session`` the live connection (unit tests attach one with a fake socket)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._ensure_audio_output()
        self._session = session

    def _session_update_event(self) -> dict[str, Any]:
        session = build_session(
            self.config, instructions=self._instructions, tools=self._formatted_tools
        )
        if self._responses.waiting_protected() and self._vad_relaxed:
            td = session["audio"]["input"]["turn_detection"]
            if td is not None:
                td["interrupt_response"] = False
        return events.session_update(session, event_id=self._ids("event"))

    async def send_first_session_update(self) -> None:
        """Send the full session settings (instructions, tools, audio, turn detection)."""
        if self._session is None:
            return
        self._send(self._session_update_event())

    async def aclose(self) -> None:
        """Close the session and release everything; safe to call twice."""
        if self._closing:
            return
        self._closing = True
        for handle in (self._recycle_handle, self._user_turn_handle):
            if handle is not None:
                handle.cancel()
        task = self._reconnect_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._runner.cancel_all()
        session, self._session = self._session, None
        if session is not None:
            await self._close_session(session)
        if self._audio_out is not None:
            self._audio_out.output.flush()
        for bg in list(self._background):
            if bg is not asyncio.current_task():
                bg.cancel()
        self.emit("closed", {"reason": self._fatal.message if self._fatal else "closed"})

    async def _close_session(self, session: OpenAISession) -> None:
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
        if session.ready is not None and not session.ready.done():
            session.ready.cancel()

    # -- I/O loops ------------------------------------------------------------------------------

    async def send_event(self, event: dict[str, Any]) -> None:
        """Queue a client event for the live connection."""
        self._send(event)

    def _send(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "conversation.item.create":
            self._mirror.created(event["item"])
        session = self._session
        if session is None or self._reconnecting:
            if kind not in NOT_REPLAYED:
                self._deferred.append(event)
            return
        session.msg_queue.put_nowait(event)

    async def _send_loop(self, session: OpenAISession) -> None:
        ws = session.ws
        queue = session.msg_queue
        try:
            while True:
                event = await queue.get()
                try:
                    frame = json.dumps(event, separators=(",", ":"))
                except (TypeError, ValueError) as exc:  # e.g. a bad event given to send_event
                    self._emit_error(
                        ModelError(f"cannot send {event.get('type')}: {exc}", code="client_error")
                    )
                    continue
                await ws.send(frame)
        except ConnectionClosed:
            return  # the receive loop sees the close and decides what happens next

    async def _receive_loop(self, session: OpenAISession) -> None:
        reason = "the connection closed"
        try:
            async for raw in session.ws:
                try:
                    event = parse_event(raw)
                except Exception as exc:  # ValueError, or RecursionError for absurd nesting
                    self._emit_error(
                        ModelError(f"unreadable server event: {exc}", code="invalid_event")
                    )
                    continue
                try:
                    self.feed(event)
                except Exception as exc:
                    logger.exception("handling %s failed", event.get("type"))
                    self._emit_error(
                        ModelError(
                            f"the client failed handling {event.get('type')}: {exc}",
                            code="client_error",
                        )
                    )
        except ConnectionClosed as exc:
            reason = f"connection lost ({exc})"
        except Exception as exc:  # the socket library failed: treat it as a lost connection
            logger.exception("the receive loop failed")
            reason = f"receive failed ({type(exc).__name__}: {exc})"
        else:
            ws = session.ws
            reason = (
                f"closed by the server (code {ws.close_code}, {ws.close_reason or 'no reason'})"
            )
        self._connection_lost(session, reason)

    def _connection_lost(self, session: OpenAISession, reason: str) -> None:
        if session.ready is not None and not session.ready.done():
            # Still in the handshake: _open() raises this, and connect() or the reconnect
            # loop decides what happens next.
            session.ready.set_exception(ConnectionLostError(reason))
            return
        if self._closing or self._session is not session:
            return
        logger.warning("realtime connection lost: %s", reason)
        if self._fatal is not None:
            self._spawn(self.aclose())
            return
        reconnect.start_reconnect(self, reason, session)

    # -- the sans-I/O heart -------------------------------------------------------------------

    def feed(self, event: dict[str, Any]) -> None:
        """Handle one decoded server event (GA names; ``parse_event`` maps beta ones).

        Never awaits: it updates the state, emits events and queues client events to send.
        """
        handler = HANDLERS.get(event.get("type", ""))
        if handler is None:
            logger.debug("ignoring server event %s", event.get("type"))
            return
        handler(self, event)

    def _emit_error(self, error: ModelError) -> None:
        log = logger.error if error.fatal else logger.warning
        log("realtime error: %s", error)
        self.emit("error", error)

    # -- audio in -------------------------------------------------------------------------------

    async def handle_audio_input(self, audio: bytes | AudioFrame) -> None:
        """User audio: an AudioFrame (its own rate/channels) or raw int16 bytes in the declared
        input format (``input_sample_rate``/``input_channels``). Dropped while not connected;
        while reconnecting, the last seconds are kept and sent to the new session."""
        if self._closing or (self._session is None and not self._reconnecting):
            return
        payload = self._audio_in.push(audio)
        if payload is None:
            return
        if self._reconnecting:  # kept for the new session (see HeldAudio)
            self._held_audio.add(payload)
        else:
            self._send(events.input_audio_buffer_append(payload))
            self._audio_clock.sent(self.config.input_format.ms_for_bytes(b64_size(payload)))

    async def commit_audio_input(self) -> None:
        """Push-to-talk (``turn_detection=None``): send what is buffered and commit it."""
        payload = self._audio_in.flush()
        if payload is not None:
            self._send(events.input_audio_buffer_append(payload))
            self._audio_clock.sent(self.config.input_format.ms_for_bytes(b64_size(payload)))
        self._send(events.input_audio_buffer_commit(event_id=self._ids("event")))

    async def clear_audio_input(self) -> None:
        """Drop the user audio buffered here and on the server."""
        self._audio_in.reset()
        self._send(events.input_audio_buffer_clear(event_id=self._ids("event")))

    # -- audio out and barge-in -----------------------------------------------------------------

    def _ensure_audio_output(self) -> None:
        output = self.audio_output
        wire = self.config.output_format
        if output is None:
            output = AudioOutput(sample_rate=wire.rate)
            self.audio_output = output
            self._own_output = output  # nobody may be playing it: transcripts are not paced
        if self._hooked_output is not output:
            self._hook(output)
            self._hooked_output = output
            self._audio_out = OutputAudio(output, wire)

    def _hook(self, output: AudioOutput) -> None:
        """Chain our callbacks in front of any the owner set."""
        prev_started, prev_finished = output.on_item_started, output.on_item_finished
        prev_idle = output.on_idle

        def started(item_id: str) -> None:
            # The time is taken here, in the consumer's thread, when the frame really goes out.
            self._threadsafe(self._on_item_started, item_id, time.monotonic())
            if prev_started is not None:
                prev_started(item_id)

        def finished(item_id: str, played_ms: int, interrupted: bool) -> None:
            self._threadsafe(self._on_item_finished, item_id, played_ms, interrupted)
            if prev_finished is not None:
                prev_finished(item_id, played_ms, interrupted)

        def idle() -> None:
            self._threadsafe(self._on_playout_idle)
            if prev_idle is not None:
                prev_idle()

        output.on_item_started = started
        output.on_item_finished = finished
        output.on_idle = idle

    def _threadsafe(self, func: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            func(*args)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(func, *args)

    def _on_item_started(self, item_id: str, t: float) -> None:
        self._metrics.first_audio_played(t)
        self.emit("agent_speech_started", {"item_id": item_id})
        self._pacer.started(item_id)
        self._pace()

    def _on_item_finished(self, item_id: str, played_ms: int, interrupted: bool) -> None:
        self._pacer.finished(item_id, interrupted=interrupted)
        self._playing.discard(item_id)
        self._responses.item_finished(item_id)
        self.emit(
            "agent_speech_ended",
            {"item_id": item_id, "played_ms": played_ms, "interrupted": interrupted},
        )

    def _on_playout_idle(self) -> None:
        self._maybe_complete_turn()
        reconnect.maybe_recycle(self)

    def _interrupt_on_speech(self) -> bool:
        td = self._turn_detection()
        return td is not None and bool(td.get("interrupt_response", True))

    def _turn_detection(self) -> dict[str, Any] | None:
        return self.config.turn_detection_dict

    async def interrupt(self) -> None:
        """Stop the agent now: silence the output (every time), cancel an active response,
        and truncate what the user did not hear. Also cuts non-interruptible replies."""
        barge_in.barge_in(self, explicit=True)

    # -- text, say, replies ---------------------------------------------------------------------

    def _require_session(self) -> None:
        if self._session is None and not self._reconnecting:
            self._emit_error(ModelError("No active WebSocket session", code="not_connected"))
            raise NotConnectedError("No active WebSocket session: call connect() first")

    def _create_item(self, item: dict[str, Any]) -> str:
        item.setdefault("id", self._ids("item"))
        self._send(events.conversation_item_create(item, event_id=self._ids("event")))
        return str(item["id"])

    async def send_text_message(self, message: str) -> None:
        """A user text message, then a reply."""
        self._require_session()
        self._create_item(events.user_text_item(message))
        self._enqueue_request("reply", {})

    async def restore_conversation(self, items: list[dict[str, Any]]) -> None:
        """Create ``items`` in the live session, in order, without asking for a reply.

        For resuming a conversation that lived elsewhere (another process, a stored copy):
        ``items`` are what ``conversation.replay_items()`` returned there — text, function calls
        and their outputs, transcripts cut to what was heard. They enter this model's
        conversation mirror as any created item does, so a later reconnect replays them too.
        """
        self._require_session()
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                raise ValueError(f"a conversation item must be a dict with a 'type', got {item!r}")
            self._create_item(dict(item))

    async def send_message(self, message: str, *, interruptible: bool = True) -> None:
        """Make the agent say ``message`` verbatim; it is recorded as the agent's words.

        OpenAI has no exact-text voice: the model is asked to repeat the text through this
        response's instructions, with an empty input so nothing else distracts it (the local
        server recognises the wording and speaks the text itself). Nothing is added on the
        user's side of the conversation.
        """
        self._require_session()
        body = {"instructions": say_instructions(message), "input": []}
        self._enqueue_request("say", body, interruptible=interruptible)

    say = send_message

    async def create_response(
        self,
        instructions: str | None = None,
        *,
        frames: list[Any] | None = None,
        interruptible: bool = True,
    ) -> None:
        """Ask for a reply now; ``instructions`` are added to the agent's for this reply only,
        ``frames`` are sent first as a user message of images."""
        self._require_session()
        if frames:
            content = await self._encode_frames(frames)
            if content:
                self._create_item(events.message_item("user", content))
        body: dict[str, Any] = {}
        if instructions:
            base = self._instructions or ""
            body["instructions"] = f"{base}\n\n{instructions}" if base else instructions
        self._enqueue_request("reply", body, interruptible=interruptible)

    async def send_message_with_frames(self, message: str | None, frames: list[Any]) -> None:
        """A user message of text and images, then a reply."""
        self._require_session()
        content: list[dict[str, Any]] = []
        if message:
            content.append(events.input_text(message))
        content += await self._encode_frames(frames)
        if not content:
            logger.warning("send_message_with_frames: no text and no usable frame; nothing sent")
            return
        self._create_item(events.message_item("user", content))
        self._enqueue_request("reply", {})

    async def handle_video_input(self, frame: Any) -> None:
        """A camera frame; at most ``max_image_fps`` per second are encoded (off the event loop,
        aspect ratio kept) and added to the conversation as user images. No reply is asked."""
        if self._session is None or self._closing or self._encoding_image:
            return
        if not self._throttle.ready():
            return
        self._encoding_image = True
        try:
            content = await self._encode_frames([frame], report=True)
        finally:
            self._encoding_image = False
        if content and self._session is not None:
            self._create_item(events.message_item("user", content))

    async def _encode_frames(
        self, frames: Sequence[Any], *, report: bool = False
    ) -> list[dict[str, Any]]:
        width, height = self.config.image_max_size
        parts: list[dict[str, Any]] = []
        for frame in frames:
            try:
                jpeg = await encode_jpeg_async(frame, max_width=width, max_height=height)
            except Exception as exc:
                # A frame that cannot be encoded, whatever the reason (PIL raises more than
                # ValueError), is skipped and reported: never raised into the transport's loop.
                if report:
                    self._emit_error(
                        ModelError(f"video frame skipped: {exc}", code="invalid_image")
                    )
                else:
                    logger.warning("frame skipped: %s", exc)
                continue
            parts.append(events.input_image(data_url(jpeg)))
        return parts

    def bytes_to_base64_url(self, image_bytes: bytes, fmt: str = "jpeg") -> str:
        return data_url(image_bytes, f"image/{fmt.lower()}")

    # -- requests and follow-ups ----------------------------------------------------------------

    def _enqueue_request(
        self, kind: str, body: dict[str, Any], *, interruptible: bool = True
    ) -> ResponseRequest:
        request_id = self._ids("req")
        body = {**body, "metadata": {"client_request_id": request_id, "kind": kind}}
        request = ResponseRequest(request_id, kind, body, interruptible)
        self._responses.enqueue(request)
        self._pump()
        return request

    def _pump(self) -> None:
        """Send the next reply request, or the tool follow-up, when the conversation is free."""
        if self._session is None or self._reconnecting or self._closing:
            return
        if self._responses.busy:
            return
        if not self._responses.queued and self._follow_up.wanted:
            if self._runner.running or self._user_turn_open:
                return
            self._enqueue_request("tool_followup", {})
            return
        request = self._responses.next_to_send()
        if request is None:
            return
        if not request.interruptible:
            barge_in.set_vad_relaxed(self, True)
        request.event_id = self._ids("event")
        self._follow_up.covered()  # queued after every output sent so far: it sees them all
        self._send(events.response_create(request.body, event_id=request.event_id))

    def _on_tool_result(self, call: ToolCall, result: ToolResult) -> None:
        item_id = self._create_item(events.function_call_output_item(call.call_id, result.output))
        if result.reply:
            self._follow_up.output_sent(item_id)
        else:  # a handoff: the session asks for the new agent's first reply itself
            self._follow_up.covered()
        self._metrics.tool_called(call.name)
        self.emit(
            "function_call",
            {
                "name": call.name,
                "call_id": call.call_id,
                "arguments": call.arguments,
                "output": result.output,
                "is_error": result.is_error,
            },
        )
        self._pump()

    # -- turns ----------------------------------------------------------------------------------

    def _idle(self, *, audio: bool) -> bool:
        if self._responses.busy or self._responses.queued or self._runner.running:
            return False
        if self._follow_up.wanted or self._user_turn_open:
            return False
        if audio and self.audio_output is not None:
            output = self.audio_output
            if output.playing_item_id is not None or output.buffered_ms > 0:
                return False
        return True

    def _maybe_complete_turn(self) -> None:
        turn = self._metrics.current_turn
        if turn is None or not turn.responses or any(r.status is None for r in turn.responses):
            return
        if self._idle(audio=True):
            self.emit("turn_metrics", self._metrics.turn_completed())

    def _transcription(
        self, role: str, text: str, item_id: str, *, final: bool, interrupted: bool = False
    ) -> None:
        payload: dict[str, Any] = {"role": role, "text": text, "is_final": final}
        payload["item_id"] = item_id
        if interrupted:
            payload["interrupted"] = True
        self.emit("realtime_model_transcription", payload)

    def _paced_transcript(self, item_id: str, text: str, final: bool, interrupted: bool) -> None:
        self._transcription("agent", text, item_id, final=final, interrupted=interrupted)
        if final:
            self.emit("text_response", {"text": text, "type": "done"})

    @property
    def _paces_transcripts(self) -> bool:
        """The agent's transcript follows its voice where the owner plays the audio (an
        AudioOutput they set, as AgentSession does); with none, it is shown as it arrives."""
        out = self._audio_out
        return out is not None and out.output is not self._own_output

    def _pace(self) -> None:
        """Release the agent transcript the played audio has reached; again soon while held."""
        out = self._audio_out
        if out is not None:
            self._pacer.tick(lambda item_id: out.output.played_ms(item_id))
        if self._pacer_timer is not None:
            self._pacer_timer.cancel()
            self._pacer_timer = None
        if self._pacer.holding and self._loop is not None and not self._closing:
            self._pacer_timer = self._loop.call_later(0.04, self._pace)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

"""OpenAIRealtime: the asyncio driver around :class:`~.client.OpenAIRealtimeClient`.

Every decision is the core's; this module only moves data and performs the core's actions: it
opens sockets, runs one send loop and one receive loop per socket (:mod:`.socket_session`), arms
timers, runs tools as tasks, marshals playout callbacks from the consumer's thread onto the loop,
and turns ``Emit`` actions into the model's events. The public surface is the seed's
(``connect``, ``send_event``, ``handle_audio_input``, ...), unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from realtalk.errors import ConfigurationError, NotConnectedError, RealtalkError
from realtalk.media.frame import AudioFrame
from realtalk.media.image import FrameThrottler, data_url, encode_jpeg_async
from realtalk.media.playout import AudioOutput
from realtalk.metrics import SessionMetrics
from realtalk.protocol import SAY_PREFIX, events
from realtalk.realtime.base import AgentSpec, ModelError, RealtimeBaseModel, RealtimeCapabilities

from .client import OpenAIRealtimeClient
from .config import OpenAIRealtimeConfig
from .connection import open_websocket
from .conversation import ConversationMirror
from .link import (
    ArmTimer,
    CancelTimer,
    Close,
    DropLink,
    Emit,
    HandshakeFailed,
    LinkState,
    Ready,
    Reconnect,
    RunTool,
)
from .redact import install_redaction
from .socket_session import OpenAISession, close_session, receive_loop, send_loop
from .tools_runner import ToolRunner
from .url import OPENAI_BASE_URL, auth_headers, needs_api_key, redact_url
from .url import process_base_url as _process_base_url

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from realtalk.tools import FunctionTool

__all__ = ["SAY_INSTRUCTIONS", "OpenAIRealtime", "OpenAISession"]

logger = logging.getLogger("realtalk.client")
install_redaction(logger)

#: The wording of a say (kept under its old name; the protocol package owns it).
SAY_INSTRUCTIONS = SAY_PREFIX


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
        #: The sans-I/O core: every decision lives there.
        self.core = OpenAIRealtimeClient(self.config, model=model, base_url=self.base_url)
        self._tools: list[FunctionTool] = []
        self._runner = ToolRunner(self._tool_done, timeout_s=self.config.tool_timeout_s)
        self._session: OpenAISession | None = None
        self._ready: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._closers: set[asyncio.Task[None]] = set()
        self._closing = False
        self._hooked_output: AudioOutput | None = None
        self._own_output: AudioOutput | None = None
        self._throttle = FrameThrottler(self.config.max_image_fps)
        self._encoding_image = False

    # -- public state ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.core.state is LinkState.OPEN and not self._closing

    @property
    def conversation(self) -> ConversationMirror:
        """The client's mirror of the server conversation (what a reconnect replays)."""
        return self.core.mirror

    @property
    def metrics(self) -> SessionMetrics:
        """Per-turn latency, tokens and cost of this model instance."""
        return self.core.metrics

    @property
    def session_settings(self) -> dict[str, Any]:
        """The effective session the server last confirmed (``session.updated``)."""
        return self.core.effective_session

    def idle(self) -> bool:
        """No reply generated, queued or playing, and no tool running."""
        return self.core.idle()

    # -- agent ----------------------------------------------------------------------------------

    def configure(self, instructions: str | None, tools: Sequence[FunctionTool]) -> None:
        """New instructions and tools (sent at once to a live session)."""
        self._tools = list(tools)
        self._runner.set_tools(self._tools)
        self.core.configure(instructions, [tool.to_openai() for tool in self._tools])
        self._flush()

    def set_agent(self, agent: AgentSpec) -> None:
        self.configure(agent.instructions, agent.tools)

    async def update_agent(self, agent: AgentSpec) -> None:
        """New instructions and tools, sent to a live session at once."""
        self.set_agent(agent)

    # -- conversation history (a handoff's trimming) -------------------------------------------

    def history(self) -> list[dict[str, Any]]:
        """The acknowledged items of the server conversation, oldest first (copies)."""
        mirror = self.core.mirror
        items = (mirror.item(item_id) for item_id in mirror.item_ids())
        return [item for item in items if item is not None]

    async def delete_items(self, item_ids: list[str]) -> None:
        """``conversation.item.delete`` for each; the mirror follows the server's answers."""
        for item_id in item_ids:
            self.core.send(
                events.conversation_item_delete(item_id, event_id=self.core.ids("event"))
            )
        self._flush()

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
        if self.core.state not in (LinkState.IDLE, LinkState.CLOSED):
            return
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._ensure_audio_output()
        self._ready = self._loop.create_future()
        self.core.connect()
        await self._open_link()
        await self._ready
        url = redact_url(self.process_base_url(self.base_url, self.model))
        logger.info("connected to %s (model %s)", url, self.model)

    async def _open_link(self) -> None:
        url = self.process_base_url(self.base_url, self.model)
        try:
            ws = await open_websocket(
                url, auth_headers(self.api_key, url), timeout_s=self.config.connect_timeout_s
            )
        except RealtalkError as exc:
            self.core.connect_failed(exc)
            self._flush()
            return
        if self.core.state is not LinkState.CONNECTING:  # closed meanwhile
            with contextlib.suppress(Exception):
                await ws.close()
            return
        session = OpenAISession(ws=ws, msg_queue=asyncio.Queue())
        self._session = session
        loop = asyncio.get_running_loop()
        send = send_loop(session, self._report)
        session.tasks.append(loop.create_task(send, name="realtime-send"))
        session.tasks.append(loop.create_task(self._receive_loop(session), name="realtime-recv"))
        self.core.connection_opened()
        self._flush()

    def adopt_link(self, ws: ClientConnection) -> OpenAISession:
        """Take an already-open socket whose frames the caller moves itself: client events go to
        the returned session's ``msg_queue``, server events come in through :meth:`feed`, and
        the loss through :meth:`link_lost`. Tests drive the model this way without a server;
        the settings still wait for the server's ``session.updated``.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closing = False
        self._ensure_audio_output()
        self._ready = self._loop.create_future()
        self.core.connect()
        session = OpenAISession(ws=ws, msg_queue=asyncio.Queue())
        self._session = session
        self.core.connection_opened()
        self._flush()
        return session

    def _receive_loop(self, session: OpenAISession) -> Coroutine[Any, Any, None]:
        """The receive loop of ``session``, reporting to this driver."""
        return receive_loop(
            session,
            is_current=lambda s: self._session is s,
            feed=self.feed,
            report=self._report,
            lost=self.link_lost,
        )

    def link_lost(self, reason: str) -> None:
        """The adopted socket closed (what the receive loop reports for its own sockets)."""
        session = self._session
        self.core.connection_lost(reason)
        self._flush()
        if session is not None and self._session is session:
            self._drop_link()  # the core had no use for it any more: release it all the same

    async def send_first_session_update(self) -> None:
        """Send the full session settings (instructions, tools, audio, turn detection)."""
        self.core.update_session()
        self._flush()

    async def aclose(self) -> None:
        """Close the session and release everything; safe to call twice."""
        if self._closing:
            return
        self._closing = True
        self.core.close()
        self._flush()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        await self._runner.cancel_all()
        session, self._session = self._session, None
        if session is not None:
            await close_session(session)
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        for bg in list(self._background):
            if bg is not asyncio.current_task():
                bg.cancel()
        session, self._session = self._session, None  # opened by a reconnect meanwhile
        if session is not None:
            await close_session(session)
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)
        fatal = self.core.fatal
        self.emit("closed", {"reason": fatal.message if fatal else "closed"})

    # -- the core's outputs ---------------------------------------------------------------------

    def _flush(self) -> None:
        """Hand the core's client events to the socket and perform its actions."""
        core = self.core
        if not core.has_output():
            return
        out = core.events_to_send()
        if out:
            session = self._session
            if session is not None:
                put = session.msg_queue.put_nowait
                for event in out:
                    put(event)
            else:
                core.requeue_unsent(out)
        for action in core.actions():
            if type(action) is Emit:
                self.emit(action.name, action.payload)
            else:
                self._act(action)

    def _act(self, action: Any) -> None:
        if isinstance(action, ArmTimer):
            self._arm(action.name, action.delay_s)
        elif isinstance(action, CancelTimer):
            handle = self._timers.pop(action.name, None)
            if handle is not None:
                handle.cancel()
        elif isinstance(action, RunTool):
            self._runner.start(action.call)
        elif isinstance(action, DropLink):
            self._drop_link()
        elif isinstance(action, Reconnect):
            self._spawn(self._open_link())
        elif isinstance(action, Ready):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif isinstance(action, HandshakeFailed):
            self._drop_link()
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(action.error)
        elif isinstance(action, Close):
            self._spawn(self.aclose())

    def _arm(self, name: str, delay_s: float) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        self._timers[name] = loop.call_later(delay_s, self._timer_fired, name)

    def _timer_fired(self, name: str) -> None:
        self._timers.pop(name, None)
        self.core.timer_fired(name)
        self._flush()

    def _drop_link(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        unsent = []
        while not session.msg_queue.empty():
            unsent.append(session.msg_queue.get_nowait())
        self.core.requeue_unsent(unsent)
        closer = asyncio.get_running_loop().create_task(close_session(session))
        self._closers.add(closer)  # awaited, never cancelled: its socket tasks must end
        closer.add_done_callback(self._closers.discard)

    # -- events in and out ---------------------------------------------------------------------

    async def send_event(self, event: dict[str, Any]) -> None:
        """Queue a client event for the live connection."""
        self.core.send(event)
        self._flush()

    def feed(self, event: dict[str, Any]) -> None:
        """Handle one decoded server event: the core decides, this performs."""
        try:
            self.core.receive_event(event)
        except Exception as exc:
            logger.exception("handling %s failed", event.get("type"))
            self.core.report(
                ModelError(
                    f"the client failed handling {event.get('type')}: {exc}", code="client_error"
                )
            )
        self._flush()

    def _report(self, error: ModelError) -> None:
        self.core.report(error)
        self._flush()

    # -- audio in -------------------------------------------------------------------------------

    async def handle_audio_input(self, audio: bytes | AudioFrame) -> None:
        """User audio: an AudioFrame (its own rate/channels) or raw int16 bytes in the declared
        input format (``input_sample_rate``/``input_channels``). Dropped while not connected;
        while reconnecting, the last seconds are kept and sent to the new session."""
        event = self.core.append_audio(audio)
        if event is not None:
            session = self._session
            if session is not None:
                session.msg_queue.put_nowait(event)

    async def commit_audio_input(self) -> None:
        """Push-to-talk (``turn_detection=None``): send what is buffered and commit it."""
        self.core.commit_audio()
        self._flush()

    async def clear_audio_input(self) -> None:
        """Drop the user audio buffered here and on the server."""
        self.core.clear_audio()
        self._flush()

    # -- audio out -------------------------------------------------------------------------------

    def _ensure_audio_output(self) -> None:
        output = self.audio_output
        if output is None:
            output = AudioOutput(sample_rate=self.config.output_format.rate)
            self.audio_output = output
            self._own_output = output  # nobody may be playing it: transcripts are not paced
        if self._hooked_output is not output:
            self._hook(output)
            self._hooked_output = output
        self.core.set_audio_output(output)
        self.core.paces_transcripts = output is not self._own_output

    def _hook(self, output: AudioOutput) -> None:
        """Chain our callbacks in front of any the owner set."""
        prev_started, prev_finished = output.on_item_started, output.on_item_finished
        prev_idle = output.on_idle
        core = self.core

        def started(item_id: str) -> None:
            # The time is taken here, in the consumer's thread, when the frame really goes out.
            self._threadsafe(core.audio_started, item_id, time.monotonic())
            if prev_started is not None:
                prev_started(item_id)

        def finished(item_id: str, played_ms: int, interrupted: bool) -> None:
            self._threadsafe(core.audio_played, item_id, played_ms, interrupted)
            if prev_finished is not None:
                prev_finished(item_id, played_ms, interrupted)

        def idle() -> None:
            self._threadsafe(core.playout_idle)
            if prev_idle is not None:
                prev_idle()

        output.on_item_started = started
        output.on_item_finished = finished
        output.on_idle = idle

    def _threadsafe(self, func: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            func(*args)
            self._flush()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._call_and_flush, func, args)

    def _call_and_flush(self, func: Callable[..., None], args: tuple[Any, ...]) -> None:
        func(*args)
        self._flush()

    async def interrupt(self) -> None:
        """Stop the agent now: silence the output (every time), cancel an active response,
        and truncate what the user did not hear. Also cuts non-interruptible replies."""
        self.core.interrupt()
        self._flush()

    # -- text, say, replies ---------------------------------------------------------------------

    def _require_session(self) -> None:
        if not self.core.link.usable or self._closing:
            self._report(ModelError("No active WebSocket session", code="not_connected"))
            raise NotConnectedError("No active WebSocket session: call connect() first")

    async def send_text_message(self, message: str) -> None:
        """A user text message, then a reply."""
        self._require_session()
        self.core.send_text_message(message)
        self._flush()

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
            self.core.create_item(dict(item))
        self._flush()

    async def send_message(self, message: str, *, interruptible: bool = True) -> None:
        """Make the agent say ``message`` verbatim; it is recorded as the agent's words.

        OpenAI has no exact-text voice: the model is asked to repeat the text through this
        response's instructions, with an empty input so nothing else distracts it (the local
        server recognises the wording and speaks the text itself). Nothing is added on the
        user's side of the conversation.
        """
        self._require_session()
        self.core.say(message, interruptible=interruptible)
        self._flush()

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
            self.core.user_content(await self._encode_frames(frames), reply=False)
        self.core.create_response(instructions, interruptible=interruptible)
        self._flush()

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
        self.core.user_content(content, reply=True)
        self._flush()

    async def handle_video_input(self, frame: Any) -> None:
        """A camera frame; at most ``max_image_fps`` per second are encoded (off the event loop,
        aspect ratio kept) and added to the conversation as user images. No reply is asked."""
        if not self.connected or self._encoding_image or not self._throttle.ready():
            return
        self._encoding_image = True
        try:
            content = await self._encode_frames([frame], report=True)
        finally:
            self._encoding_image = False
        if content and self.connected:
            self.core.user_content(content, reply=False)
            self._flush()

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
                    self._report(ModelError(f"video frame skipped: {exc}", code="invalid_image"))
                else:
                    logger.warning("frame skipped: %s", exc)
                continue
            parts.append(events.input_image(data_url(jpeg)))
        return parts

    def bytes_to_base64_url(self, image_bytes: bytes, fmt: str = "jpeg") -> str:
        return data_url(image_bytes, f"image/{fmt.lower()}")

    # -- tools ----------------------------------------------------------------------------------

    def _tool_done(self, call: Any, result: Any) -> None:
        self.core.tool_finished(call, result)
        self._flush()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

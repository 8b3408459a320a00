"""OpenAIRealtimeClient: the OpenAI Realtime (GA) client as a sans-I/O state machine.

The h11 / websockets shape (and :class:`realtalk.server.connection.Connection`'s): no socket, no
event loop, no clock of its own. Inputs are decoded server events (:meth:`receive_event`), link
news (:meth:`connection_opened`, :meth:`connect_failed`, :meth:`connection_lost`), playout news
(:meth:`audio_started`, :meth:`audio_played`, :meth:`playout_idle`), timers
(:meth:`timer_fired`), finished tools (:meth:`tool_finished`) and the user's calls. Outputs are
client events (:meth:`events_to_send`) and :mod:`.link` actions (:meth:`actions`): timers to arm,
tools to run, model events to emit, sockets to open or drop. Tests feed events in and read events
and actions out.

What it decides:

- Barge-in: speech flushes the output every time (with ``interrupt_response``); the cut item is
  truncated at the played position clamped to the audio received, or deleted when nothing of it
  was played (:mod:`.barge_in`). Non-interruptible replies turn the server's
  ``interrupt_response`` off for their lifetime.
- Replies go out one at a time (:class:`.ResponseTracker`, :mod:`.replies`); a reply is matched
  to its request by metadata, and by order when the server does not echo metadata. A request or
  response that makes no progress for ``response_timeout_s`` is reported and the queue moves on
  (the watchdog).
- Tools run in the driver; one follow-up ``response.create`` once the calling response is done and
  every tool finished (:class:`.FollowUp`, :mod:`.replies`).
- Reconnection: a lost link backs off (``config.reconnect``) and replays settings, tools, a text
  copy of the conversation (:mod:`.conversation`) and the user's audio of the outage. The attempt
  count resets only after the link stayed open ``reconnect.stable_s``, so ``max_attempts`` bounds
  a server that accepts and drops. Recycling replaces the session before its time limit, at an
  idle moment. Authentication and quota errors are fatal.
- Limits: output audio buffered ahead of playout (``max_output_buffer_s``) and text accumulated
  per item (:data:`MAX_ITEM_TEXT_CHARS`) are capped; beyond them data is dropped and reported.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from realtalk.errors import ConnectionLostError, FatalServerError, RealtalkError, ServerError
from realtalk.media.frame import AudioFrame
from realtalk.media.playout import AudioOutput
from realtalk.metrics import PriceTable, SessionMetrics
from realtalk.protocol import BENIGN_CODES, IdGenerator, events, say_instructions
from realtalk.realtime.base import ModelError
from realtalk.tools import ToolResult

from . import agent_speech, barge_in, replies
from .audio import AudioAppend, AudioInput, OutputAudio, append_event, b64_size
from .audio_clock import AudioClock
from .config import OpenAIRealtimeConfig, build_session, normalize_transcription
from .connection import model_error
from .conversation import ConversationMirror
from .handlers import HANDLERS
from .link import (
    Action,
    ArmTimer,
    CancelTimer,
    Close,
    DropLink,
    Emit,
    HandshakeFailed,
    Link,
    LinkState,
    Ready,
    Reconnect,
    RunTool,
)
from .recovery import MAX_HELD_AUDIO_MS, Recovery
from .responses import ResponseRequest, ResponseTracker, Watchdog
from .tools_runner import FollowUp, ToolCall
from .transcript_pacer import TranscriptPacer
from .url import needs_api_key

__all__ = ["OpenAIRealtimeClient"]

logger = logging.getLogger("realtalk.client")


class OpenAIRealtimeClient:
    """The client's whole state and every decision; the driver only moves data and acts.

    Args:
        config: the plugin's settings.
        model: the model name (for prices).
        ids: event/item/request ids (deterministic in tests).
        now: a monotonic clock in seconds (the watchdog and the metrics read it).
        base_url: the server's address; only OpenAI and Azure bill per token, so only they get
            a price table (a local server gets no dollar figures).
    """

    def __init__(
        self,
        config: OpenAIRealtimeConfig,
        *,
        model: str,
        ids: IdGenerator | None = None,
        now: Callable[[], float] = time.monotonic,
        base_url: str | None = None,
    ) -> None:
        self.config = config
        self.ids = ids or IdGenerator()
        self.now = now
        self.link = Link()
        self.instructions: str | None = None
        self.tools: list[dict[str, Any]] = []
        self.mirror = ConversationMirror()
        self.responses = ResponseTracker()
        self.follow_up = FollowUp()
        self.audio_in = AudioInput(
            config.input_format,
            raw_rate=config.input_sample_rate,
            raw_channels=config.input_channels,
            batch_ms=config.append_batch_ms,
        )
        self.recovery = Recovery(config.input_format)
        self.audio_out: OutputAudio | None = None
        #: maps the server's audio_end_ms to when the user really stopped speaking
        self.audio_clock = AudioClock()
        #: the agent's transcript, released as its audio plays
        self.pacer = TranscriptPacer(partial(agent_speech.transcript, self))
        #: set by the driver: the owner plays the audio (an AudioOutput they set, as
        #: AgentSession does), so the transcript follows the voice; else shown as it arrives
        self.paces_transcripts = False
        self.effective_session: dict[str, Any] = {}
        self.fatal: ModelError | None = None
        transcription = normalize_transcription(config.input_audio_transcription)
        if config.prices is not None:
            prices = config.prices
        elif base_url is None or needs_api_key(base_url):  # OpenAI or Azure: billed per token
            prices = PriceTable.for_model(
                model, transcription_model=transcription["model"] if transcription else None
            )
        else:  # a local or self-hosted server (realtalk serve) bills nothing: no dollar figures
            prices = PriceTable(known=False)
        self.metrics = SessionMetrics(prices)
        # Helpers (handlers, barge-in) read and change these through the core's methods.
        self.playing: set[str] = set()  # items pushed to the output, not yet finished
        self.link_audio_items: set[str] = set()  # items whose audio came on this link
        self.pending_calls: dict[str, ToolCall] = {}
        self.calls_started: set[str] = set()
        self.tools_running: set[str] = set()
        self.user_turn_open = False
        self.vad_relaxed = False
        self.text: OrderedDict[str, str] = OrderedDict()  # interim text by "u:"/"a:" + item id
        self.session_expired = False
        self.recycle_due = False
        self.overflow_reported: set[str] = set()
        self._update_event_id: str | None = None
        self._outbox: list[dict[str, Any]] = []
        self._actions: list[Action] = []
        self.watchdog = Watchdog(now)

    # -- outputs --------------------------------------------------------------------------------

    def events_to_send(self) -> list[dict[str, Any]]:
        """Client events to write to the socket, in order (and forget them)."""
        out, self._outbox = self._outbox, []
        return out

    def has_output(self) -> bool:
        """Whether :meth:`events_to_send` or :meth:`actions` has anything (most audio deltas
        leave both empty: the driver skips them cheaply)."""
        return bool(self._outbox or self._actions)

    def actions(self) -> list[Action]:
        """What the driver must do now, in order (and forget them)."""
        out, self._actions = self._actions, []
        return out

    def act(self, action: Action) -> None:
        self._actions.append(action)

    def emit(self, name: str, payload: Any) -> None:
        self._actions.append(Emit(name, payload))

    def report(self, error: ModelError) -> None:
        (logger.error if error.fatal else logger.warning)("realtime error: %s", error)
        self._actions.append(Emit("error", error))

    def send(self, event: dict[str, Any]) -> None:
        """Queue a client event; while the link is down, keep what a new session needs."""
        kind = event.get("type")
        if kind == "conversation.item.create":
            self.mirror.created(event["item"])
        if self.link.state is LinkState.OPEN:
            self._outbox.append(event)
        else:
            self.recovery.defer(event)

    # -- state ------------------------------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        return self.link.state

    @property
    def connected(self) -> bool:
        return self.link.state is LinkState.OPEN or self.link.reconnecting

    def turn_detection(self) -> dict[str, Any] | None:
        return self.config.turn_detection_dict

    def interrupt_on_speech(self) -> bool:
        td = self.turn_detection()
        return td is not None and bool(td.get("interrupt_response", True))

    def idle(self, *, audio: bool = True) -> bool:
        """No reply generated, queued or awaited, no tool running, nothing playing."""
        if self.responses.busy or self.responses.queued or self.tools_running:
            return False
        if self.follow_up.wanted or self.user_turn_open:
            return False
        if audio and self.audio_out is not None:
            output = self.audio_out.output
            if output.playing_item_id is not None or output.buffered_ms > 0:
                return False
        return True

    # -- configuration --------------------------------------------------------------------------

    def configure(self, instructions: str | None, tools: Sequence[dict[str, Any]]) -> None:
        """New instructions and (OpenAI-formatted) tools; sent at once to a live session."""
        self.instructions = instructions
        self.tools = list(tools)
        if self.link.state is LinkState.OPEN:
            self.update_session()

    def update_session(self) -> None:
        """Send the full session settings."""
        if self.link.state is LinkState.OPEN:
            self.send(self.session_update())

    def session_update(self) -> dict[str, Any]:
        session = build_session(self.config, instructions=self.instructions, tools=self.tools)
        if self.responses.waiting_protected() and self.vad_relaxed:
            td = session["audio"]["input"]["turn_detection"]
            if td is not None:
                td["interrupt_response"] = False
        return events.session_update(session, event_id=self.ids("event"))

    def set_audio_output(self, output: AudioOutput) -> None:
        if self.audio_out is None or self.audio_out.output is not output:
            self.audio_out = OutputAudio(output, self.config.output_format)

    # -- the link -------------------------------------------------------------------------------

    def connect(self) -> None:
        """The user asked to connect; the driver opens the socket next."""
        if self.link.state in (LinkState.IDLE, LinkState.CLOSED):
            self.fatal = None
            self.link.fire("connect")

    def connection_opened(self) -> None:
        """The socket is up: send the full settings and wait for their confirmation."""
        if self.link.state is not LinkState.CONNECTING:
            return
        self.link.fire("opened")
        self.link_audio_items = set()
        self.session_expired = False
        update = self.session_update()
        self._update_event_id = update["event_id"]
        self._outbox.append(update)
        self.act(ArmTimer("handshake", self.config.connect_timeout_s))

    def connect_failed(self, error: RealtalkError) -> None:
        """Opening the socket (or the handshake) failed with ``error``."""
        if self.link.state not in (LinkState.CONNECTING, LinkState.HANDSHAKE):
            return
        self.act(CancelTimer("handshake"))
        fatal = isinstance(error, FatalServerError)
        if not self.link.was_open:
            self.link.fire("abandon")
            if fatal and self.fatal is None:
                self.fatal = model_error(error, fatal=True)  # type: ignore[arg-type]
                self.report(self.fatal)
            self.act(HandshakeFailed(error))
            return
        if fatal:
            self._give_up(model_error(error, fatal=True))  # type: ignore[arg-type]
            return
        logger.warning("reconnect attempt %d failed: %s", self.link.attempts, error)
        self.link.fire("lost")
        self._next_attempt(str(error))

    def connection_lost(self, reason: str) -> None:
        """The socket closed or failed (the driver reports only the current socket's loss)."""
        state = self.link.state
        if state in (LinkState.CONNECTING, LinkState.HANDSHAKE):
            self.connect_failed(ConnectionLostError(reason))
            return
        if state is not LinkState.OPEN:
            return
        logger.warning("realtime connection lost: %s", reason)
        if self.fatal is not None:
            self.link.fire("close")
            self.act(Close(self.fatal))
            return
        self.link.fire("lost")
        self._link_down(reason)
        if self.session_expired:
            self.link.attempts = 0  # the session's time limit, not a failing server
        self._next_attempt(reason, expired=self.session_expired)

    def _link_down(self, reason: str) -> None:
        """What a lost link means for the conversation (shared by loss and recycle)."""
        for name in ("stable", "recycle", "user_turn", "watchdog"):
            self.act(CancelTimer(name))
        self.watchdog.armed = False
        self.act(DropLink(reason))
        cut = self.responses.connection_lost()
        if cut is not None:
            replies.close_cut_response(self, cut)
        self.user_turn_open = False
        self.vad_relaxed = False
        self.text.clear()

    def requeue_unsent(self, unsent: Sequence[dict[str, Any]]) -> None:
        """Events the dropped socket never sent (see :meth:`Recovery.requeue_unsent`)."""
        self.recovery.requeue_unsent(unsent)

    def _next_attempt(self, reason: str, *, expired: bool = False) -> None:
        policy = self.config.reconnect
        self.link.attempts += 1
        attempt = self.link.attempts
        if attempt > policy.max_attempts:
            lost_ms = self.recovery.lost_audio_ms()
            lost = f"; {lost_ms} ms of user audio were lost" if lost_ms else ""
            self._give_up(
                ModelError(
                    f"could not reconnect after {policy.max_attempts} attempts: {reason}{lost}",
                    code="connection_lost",
                    fatal=True,
                )
            )
            return
        self.emit("reconnecting", {"attempt": attempt, "reason": reason})
        delay = policy.delay_s(attempt) if attempt > 1 or expired else 0.0
        self.act(ArmTimer("reconnect", delay))

    def _give_up(self, error: ModelError) -> None:
        self.fatal = error
        self.report(error)
        self.link.fire("close")
        self.act(Close(error))

    def _confirmed(self, session: dict[str, Any]) -> None:
        reconnected = self.link.reconnecting
        self.link.fire("confirmed")
        self.act(CancelTimer("handshake"))
        self.act(ArmTimer("stable", self.config.reconnect.stable_s))
        self.recycle_due = False
        if self.config.session_recycle_s is not None:
            self.act(ArmTimer("recycle", self.config.session_recycle_s))
        if reconnected:
            replay, replayed_ms, dropped_ms = self.recovery.replay(self.mirror, self.ids)
            self._outbox += replay
            self.audio_clock.reset()  # the new session counts its audio from zero
            self.audio_clock.sent(replayed_ms)  # captured earlier; only its amount is known
            self.emit(
                "reconnected",
                {
                    "attempt": self.link.attempts,
                    "replayed_audio_ms": replayed_ms,
                    "dropped_audio_ms": dropped_ms,
                },
            )
            if dropped_ms:
                self.report(
                    ModelError(
                        f"{dropped_ms} ms of user audio from the outage were dropped (only the "
                        f"last {MAX_HELD_AUDIO_MS} ms are sent to the new session)",
                        code="audio_dropped",
                    )
                )
        else:
            self._outbox += self.recovery.take_deferred()
        self.act(Ready(session))
        self.pump()

    def close(self) -> None:
        """The user closes: no more reconnects; the driver releases everything."""
        if self.link.state is not LinkState.CLOSED:
            self.link.fire("close")
        for name in (
            "handshake",
            "stable",
            "recycle",
            "user_turn",
            "watchdog",
            "reconnect",
            "pace",
        ):
            self.act(CancelTimer(name))
        self.watchdog.armed = False
        if self.audio_out is not None:
            self.audio_out.output.flush()

    # -- timers -----------------------------------------------------------------------------------

    def timer_fired(self, name: str) -> None:
        if name == "reconnect" and self.link.state is LinkState.BACKOFF:
            self.link.fire("retry")
            self.act(Reconnect(self.link.attempts, "reconnect"))
        elif name == "handshake" and self.link.state is LinkState.HANDSHAKE:
            self.act(DropLink("no session.updated"))
            self.connect_failed(
                ConnectionLostError(
                    "the server did not confirm the session settings (no session.updated "
                    f"within {self.config.connect_timeout_s:g} s)"
                )
            )
        elif name == "stable" and self.link.state is LinkState.OPEN:
            self.link.attempts = 0
        elif name == "recycle":
            self.recycle_due = True
            self.maybe_recycle()
        elif name == "user_turn":
            self.user_turn_over()
        elif name == "watchdog":
            replies.check_progress(self)
        elif name == "pace":
            self.pace()

    def maybe_recycle(self) -> None:
        if not self.recycle_due or self.link.state is not LinkState.OPEN or not self.idle():
            return
        self.recycle_due = False
        logger.info("recycling the realtime session before its time limit")
        self.link.attempts = 0  # a planned replacement, not a failure
        self.link.fire("recycle")
        self._link_down("session recycle (time limit ahead)")
        self.link.attempts = 1
        self.emit("reconnecting", {"attempt": 1, "reason": "session recycle (time limit ahead)"})
        self.act(Reconnect(1, "session recycle"))

    # -- the watchdog (see :mod:`.replies`) -----------------------------------------------------

    def progress(self) -> None:
        """The awaited request or the active response moved (cheap: no action per delta)."""
        self.watchdog.progress()

    def watch(self) -> None:
        replies.watch(self)

    # -- server events ----------------------------------------------------------------------------

    def receive_event(self, event: dict[str, Any]) -> None:
        """Handle one decoded server event (GA names; ``parse_event`` maps beta ones)."""
        handler = HANDLERS.get(event.get("type", ""))
        if handler is None:
            logger.debug("ignoring server event %s", event.get("type"))
            return
        handler(self, event)

    def session_updated(self, session: dict[str, Any]) -> None:
        self.effective_session = session
        if self.link.state is LinkState.HANDSHAKE:
            self._confirmed(session)

    def server_error(self, error: ModelError) -> None:
        """An ``error`` event, after the response bookkeeping."""
        if error.code == "session_expired":
            # The server closes next; the reconnect carries the conversation on.
            self.session_expired = True
        handshake = self.link.state is LinkState.HANDSHAKE
        if handshake and error.event_id is not None and error.event_id == self._update_event_id:
            exc_type = FatalServerError if error.fatal else ServerError
            self.report(error)
            self.act(DropLink("session settings rejected"))
            self.connect_failed(
                exc_type(
                    f"the server rejected the session settings: {error.message}",
                    type=error.type or "invalid_request_error",
                    code=error.code,
                    param=error.param,
                    event_id=error.event_id,
                )
            )
            return
        self.report(error)
        if error.fatal and error.code not in BENIGN_CODES:
            self.fatal = error
            if self.link.state is LinkState.OPEN:
                self.link.fire("close")
                self.act(Close(error))
        self.pump()

    def user_turn_over(self) -> None:
        self.act(CancelTimer("user_turn"))
        if self.user_turn_open:
            self.user_turn_open = False
            self.pump()

    def maybe_complete_turn(self) -> None:
        turn = self.metrics.current_turn
        if turn is None or not turn.responses or any(r.status is None for r in turn.responses):
            return
        if self.idle():
            self.emit("turn_metrics", self.metrics.turn_completed())

    def start_call(self, call: ToolCall) -> None:
        if call.call_id in self.calls_started:
            return
        self.calls_started.add(call.call_id)
        self.tools_running.add(call.call_id)
        self.act(RunTool(call))

    # -- playout (see :mod:`.agent_speech`) -----------------------------------------------------

    def audio_started(self, item_id: str, t: float) -> None:
        agent_speech.started(self, item_id, t)

    def audio_played(self, item_id: str, played_ms: int, interrupted: bool) -> None:
        """The last frame of ``item_id`` was played (or it was cut after ``played_ms``)."""
        agent_speech.finished(self, item_id, played_ms, interrupted)

    def pace(self) -> None:
        agent_speech.pace(self)

    def playout_idle(self) -> None:
        self.maybe_complete_turn()
        self.maybe_recycle()

    # -- the user's calls -------------------------------------------------------------------------

    def append_audio(self, audio: bytes | AudioFrame) -> AudioAppend | None:
        """User audio; dropped while not connected, held while the link is rebuilt.

        The hot path: the ``input_audio_buffer.append`` to send (once a batch is full) is
        returned rather than queued, so the driver writes it without a detour.
        """
        if self.link.state is LinkState.OPEN:
            payload = self.audio_in.push(audio)
            if payload is not None:
                self.audio_clock.sent(self.audio_in.wire.duration_ms(b64_size(payload)))
                return append_event(payload)
        elif self.link.reconnecting:
            payload = self.audio_in.push(audio)
            if payload is not None:
                self.recovery.held_audio.add(payload)
        return None

    def commit_audio(self) -> None:
        payload = self.audio_in.flush()
        if payload is not None:
            self.send(append_event(payload))
            self.audio_clock.sent(self.audio_in.wire.duration_ms(b64_size(payload)))
        self.send(events.input_audio_buffer_commit(event_id=self.ids("event")))

    def clear_audio(self) -> None:
        self.audio_in.reset()
        self.send(events.input_audio_buffer_clear(event_id=self.ids("event")))

    def create_item(self, item: dict[str, Any]) -> str:
        item.setdefault("id", self.ids("item"))
        self.send(events.conversation_item_create(item, event_id=self.ids("event")))
        return str(item["id"])

    def send_text_message(self, message: str) -> None:
        self.create_item(events.user_text_item(message))
        self.enqueue_request("reply", {})

    def say(self, message: str, *, interruptible: bool = True) -> None:
        body = {"instructions": say_instructions(message), "input": []}
        self.enqueue_request("say", body, interruptible=interruptible)

    def create_response(
        self, instructions: str | None = None, *, interruptible: bool = True
    ) -> None:
        body: dict[str, Any] = {}
        if instructions:
            base = self.instructions or ""
            body["instructions"] = f"{base}\n\n{instructions}" if base else instructions
        self.enqueue_request("reply", body, interruptible=interruptible)

    def user_content(self, content: list[dict[str, Any]], *, reply: bool) -> None:
        """A user message of text/image parts, and a reply if asked."""
        if content:
            self.create_item(events.message_item("user", content))
        if reply:
            self.enqueue_request("reply", {})

    def interrupt(self) -> None:
        """Stop the agent now (also non-interruptible replies)."""
        barge_in.barge_in(self, explicit=True)

    def tool_finished(self, call: ToolCall, result: ToolResult) -> None:
        replies.tool_finished(self, call, result)

    # -- requests and follow-ups (see :mod:`.replies`) ---------------------------------------

    def enqueue_request(
        self, kind: str, body: dict[str, Any], *, interruptible: bool = True
    ) -> ResponseRequest:
        return replies.enqueue(self, kind, body, interruptible=interruptible)

    def pump(self) -> None:
        """Send the next reply request, or the tool follow-up, when the conversation is free."""
        replies.pump(self)

"""One Realtime session, server side: client events in, server events out through ``send``.

No sockets here: :class:`Connection` is fed decoded frames (``receive``) and emits event dicts
through a synchronous ``send`` callable, so unit tests drive it with a list as ``send``. It owns the
session settings, the input audio buffer and turn detection, the conversation, the transcription
of user audio, and the responses (at most one in the default conversation, any number out of
band). Every client event is validated first; any problem becomes an ``error`` event carrying the
client's ``event_id`` and the session goes on.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from realtalk.protocol import events as ev
from realtalk.protocol.audio_formats import AudioFormat
from realtalk.protocol.errors import ProtocolError
from realtalk.protocol.frames import decode_frame
from realtalk.protocol.ids import IdGenerator
from realtalk.protocol.session import default_session, merge_session
from realtalk.protocol.validate import decode_audio, prepare_client_event
from realtalk.server.engines.base import Engines, VADStream
from realtalk.server.engines.threads import run_in_thread

from . import errors
from .context import Context, build_context
from .conversation import Conversation, Entry
from .errors import RequestError
from .input_buffer import InputBuffer, VadFeed, to_pcm16k
from .limits import DEFAULT_LIMITS, Limits
from .response import Response, ResponseSettings
from .speculation import GuessTask, ReplyGuess, discard
from .transcription import Draft, UserTranscripts
from .turns import (
    PauseCheck,
    SpeechStarted,
    SpeechStopped,
    TurnDecision,
    TurnDetector,
    TurnSettings,
)

__all__ = ["Connection", "expiry_message"]

logger = logging.getLogger("realtalk.server")

Send = Callable[[dict[str, Any]], None]
#: A checked event (or None), the problem (or None), the client's event_id, decoded audio.
_Prepared = tuple[dict[str, Any] | None, ProtocolError | None, str | None, dict[int, bytes]]

#: Appends longer than this run the VAD in a thread; shorter ones cost less than the hop.
INLINE_VAD_MS = 120
#: Audio kept before speech while nobody speaks, beyond the prefix padding.
IDLE_KEEP_MS = 500
MIN_COMMIT_MS = 100
#: This far into the user's speech the LLM evaluates the conversation their turn follows (by
#: then a barge-in has cut the last reply to what was heard).
WARM_AFTER_SPEECH_MS = 200
#: The decoded audio of an append, in :attr:`Connection._decoded` (parts of an item: their index).
APPEND_AUDIO = -1


def expiry_message(max_seconds: float) -> str:
    """OpenAI's wording ("... of 60 minutes."), in seconds when not whole minutes."""
    if max_seconds >= 60 and max_seconds % 60 == 0:
        n, unit = int(max_seconds // 60), "minute"
    else:
        n, unit = max(int(max_seconds), 1), "second"
    return f"Your session hit the maximum duration of {n} {unit}{'s' if n != 1 else ''}."


class Connection:
    """The server side of one Realtime session."""

    def __init__(
        self,
        engines: Engines,
        send: Send,
        *,
        model: str = "gpt-realtime",
        session_max_seconds: float = 3600.0,
        new_id: Callable[[str], str] | None = None,
        now: Callable[[], float] = time.time,
        partial_transcripts: bool = True,
        partial_interval_ms: float = 1000.0,
        speculative_transcripts: bool = True,
        limits: Limits = DEFAULT_LIMITS,
        smart_turn: bool = True,
        speculative_replies: bool = True,
    ) -> None:
        self.engines = engines
        self.limits = limits
        #: Audio decoded with the event (off the loop for large frames), by content index.
        self._decoded: dict[int, bytes] = {}
        #: The event :meth:`receive` decoded and checked, for :meth:`handle` to take as it is.
        self._ready: tuple[Any, _Prepared] | None = None
        self._send = send
        self._new_id = new_id or IdGenerator()
        self.session_max_seconds = session_max_seconds
        self.session = default_session(model)
        self.session["id"] = self._new_id("sess")
        self.session["expires_at"] = int(now() + session_max_seconds)
        self.conversation = Conversation()
        self.conversation_id = self._new_id("conv")
        self.buffer = InputBuffer(self._input_format)
        self.active: Response | None = None
        self.responses: dict[str, Response] = {}
        self._voice_locked = False
        self.expired = False
        self.closed = False
        self._prefill: asyncio.Task[None] | None = None
        self._prefilled: str | None = None
        self.transcripts = UserTranscripts(
            engines.transcriber,
            send,
            self._new_id,
            on_text=self._transcribed,
            partials=partial_transcripts,
            partial_interval_ms=partial_interval_ms,
            speculate=speculative_transcripts,
        )
        self._vad_feed: VadFeed | None = None
        self._vad_stream: VADStream | None = None
        self._turns: TurnDetector | None = None
        self._draft: Draft | None = None  # the user's turn in progress (server VAD)
        self._idle: asyncio.TimerHandle | None = None  # server_vad idle_timeout_ms
        #: semantic_vad asks this model whether a pause ends the turn (None: silence decides)
        self._end_of_turn = engines.end_of_turn if smart_turn else None
        self._tasks: set[asyncio.Future[Any]] = set()
        #: the LLM starts on the speculative transcript while the pause may still end the turn
        self.speculative_replies = speculative_replies and speculative_transcripts
        self._guess: tuple[float, GuessTask] | None = None  # (the pause, the guess being made)
        self._warmed: str | None = None  # the turn (item id) the LLM was warmed for
        self._configure_turns()

    # --- entry points ------------------------------------------------------------------------

    def open(self) -> None:
        """Emit ``session.created``: the first event of every session."""
        self._send(ev.session_created(self._eid(), copy.deepcopy(self.session)))

    async def receive(self, frame: str | bytes) -> None:
        """One frame from the client: decode and check it, then :meth:`handle` it.

        A large frame is decoded, validated and its audio decoded in a worker thread, in
        slices, so the event loop (every other session) is not held while it is.
        """
        if len(frame) > self.limits.offload_frame_bytes:
            event, prepared = await asyncio.to_thread(self._prepare_frame, frame)
        else:
            event, prepared = self._prepare_frame(frame)
        if event is None:  # not even JSON: there is no event to handle
            await self._dispatch(*prepared)
            return
        self._ready = (event, prepared)
        await self.handle(event)

    async def handle(self, event: Any) -> None:
        """One decoded client event; every problem is answered with an ``error`` event."""
        ready, self._ready = self._ready, None
        if ready is not None and ready[0] is event:  # checked already, by receive
            await self._dispatch(*ready[1])
        else:
            await self._dispatch(*self._prepare(event))

    def _prepare_frame(self, frame: str | bytes) -> tuple[Any, _Prepared]:
        """The decoded event (None when the frame is not JSON) and what :meth:`_prepare` makes
        of it."""
        event = decode_frame(frame, max_values=self.limits.max_frame_values)
        if isinstance(event, ProtocolError):
            return None, (None, event, None, {})
        return event, self._prepare(event)

    def _prepare(self, event: Any) -> _Prepared:
        """Validate, drop ``null`` optional fields, decode audio; no state is read or changed."""
        client_event_id = event.get("event_id") if isinstance(event, dict) else None
        if not isinstance(client_event_id, str) or len(client_event_id) > 512:
            client_event_id = None
        decoded: dict[int, bytes] = {}
        try:
            checked, problem = prepare_client_event(event)
            if checked is not None:
                problem = _decode_audio_of(checked, decoded)
        except RecursionError:
            checked, problem = (
                None,
                ProtocolError("invalid_event", "The event is nested too deeply."),
            )
        except Exception:  # a validator bug must not end the session either
            logger.exception("validating a client event failed")
            checked = None
            problem = ProtocolError("invalid_event", "The event could not be validated.")
        return checked, problem, client_event_id, decoded

    async def _dispatch(
        self,
        event: dict[str, Any] | None,
        problem: ProtocolError | None,
        client_event_id: str | None,
        decoded: dict[int, bytes],
    ) -> None:
        if problem is not None or event is None:
            self._error(problem or ProtocolError("invalid_event", "Bad event."), client_event_id)
            return
        handler = self._HANDLERS[event["type"]]
        self._decoded = decoded
        try:
            await handler(self, event)
        except RequestError as exc:
            self._error(exc.problem, client_event_id)
        except Exception as exc:  # a bug must not end the session: say so and go on
            logger.exception("failed to handle %s", event["type"])
            self._error(
                ProtocolError(
                    "server_error", f"The server had an error: {exc}", type="server_error"
                ),
                client_event_id,
            )
        finally:
            self._decoded = {}

    def expire(self) -> None:
        """The session reached its maximum duration: emit ``session_expired`` (then close 1001)."""
        self.expired = True
        self._error(ProtocolError("session_expired", expiry_message(self.session_max_seconds)))

    async def aclose(self) -> None:
        """Stop every response and background task (the client is gone).

        Returns once the engine work they started has ended too (a model call in a thread
        cannot be interrupted, only waited for), and starts none afterwards: no engine is
        called for this connection after this returns.
        """
        self.closed = True
        self._disarm_idle()
        self._drop_guess()
        responses = list(self.responses.values())
        for response in responses:
            response.cancel("client_cancelled")
        await asyncio.gather(*(r.wait() for r in responses), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._prefill is not None:
            self._prefill.cancel()
            await asyncio.gather(self._prefill, return_exceptions=True)
        await self.transcripts.aclose()
        # Let the audio and items go now, not when the cyclic collector finds the cycles
        # between this connection, its callbacks and its responses.
        self.buffer.clear()
        self.conversation = Conversation()
        self.responses.clear()
        self._draft = None
        self._vad_stream = None

    # --- session -----------------------------------------------------------------------------

    async def _session_update(self, event: dict[str, Any]) -> None:
        update = {
            k: v for k, v in event["session"].items() if k not in ("id", "object", "expires_at")
        }
        if update.get("model", self.session["model"]) != self.session["model"]:
            raise errors.invalid("session.model", "the model of a session cannot be changed.")
        new_voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
        if new_voice is not None and new_voice != self._output["voice"] and self._voice_locked:
            raise RequestError(
                ProtocolError(
                    "invalid_value",
                    "Cannot update a conversation's voice if assistant audio is present.",
                    "session.audio.output.voice",
                )
            )
        before = copy.deepcopy(self.session["audio"]["input"])
        self.session = merge_session(self.session, update)
        self._disarm_idle()
        after = self.session["audio"]["input"]
        if after["format"] != before["format"]:
            self.buffer.set_format(self._input_format)
        if (
            after["format"] != before["format"]
            or after["turn_detection"] != before["turn_detection"]
        ):
            self._configure_turns()
        self._send(ev.session_updated(self._eid(), copy.deepcopy(self.session)))
        self._start_prefill()

    def _start_prefill(self) -> None:
        """Have the LLM evaluate the session's instructions and tools now, in the background,
        so the first turn does not pay for them (seconds for a local model on 2 cores)."""
        instructions, tools = self.session["instructions"], self.session["tools"]
        key = json.dumps([instructions, tools], sort_keys=True)
        if self.closed or key == self._prefilled:
            return
        self._prefilled = key
        if self._prefill is not None:
            self._prefill.cancel()
        self._prefill = asyncio.create_task(self._run_prefill(instructions, tools))

    async def _run_prefill(self, instructions: str, tools: list[dict[str, Any]]) -> None:
        try:
            await self.engines.llm.prefill(instructions, tools)
        except asyncio.CancelledError:
            raise
        except Exception:  # only a head start: the turn itself still works without it
            logger.warning("prefilling the session's prompt failed", exc_info=True)

    @property
    def _input_format(self) -> AudioFormat:
        return AudioFormat.parse(self.session["audio"]["input"]["format"])

    @property
    def _output(self) -> dict[str, Any]:
        output: dict[str, Any] = self.session["audio"]["output"]
        return output

    @property
    def _transcription(self) -> dict[str, Any] | None:
        config: dict[str, Any] | None = self.session["audio"]["input"]["transcription"]
        return config

    def _configure_turns(self) -> None:
        detection = self.session["audio"]["input"]["turn_detection"]
        self._drop_draft()
        if detection is None:
            self._turns = self._vad_feed = self._vad_stream = None
            return
        vad = self.engines.vad
        self._vad_feed = VadFeed(self._input_format)
        self._vad_stream = vad.create_stream()
        self._turns = TurnDetector(
            TurnSettings.from_session(detection, smart=self._end_of_turn is not None),
            window_ms=vad.window_samples * 1000 / vad.sample_rate,
            start_ms=self.buffer.clock_ms,
        )

    # --- input audio -------------------------------------------------------------------------

    async def _append(self, event: dict[str, Any]) -> None:
        data = self._decoded.get(APPEND_AUDIO)
        if data is None:
            decoded = decode_audio(event["audio"])
            if isinstance(decoded, ProtocolError):
                raise RequestError(decoded)
            data = decoded
        limit = self.buffer.format.bytes_for_ms(self.limits.max_buffer_ms)
        full = len(self.buffer) + len(data) > limit
        if full and self._draft is not None:
            # Server VAD heard one endless turn: end it at the limit, as if the speaker paused.
            self._speech_stopped(round(self.buffer.clock_ms))
            if self._turns is not None:  # what follows is a new turn, heard afresh
                self._turns.reset(self.buffer.clock_ms)
            full = len(self.buffer) + len(data) > limit
        if full:
            room = max(limit - len(self.buffer), 0)
            data = data[: room - room % self.buffer.format.bytes_per_sample]
        samples = self.buffer.append(data) if data else b""
        if self._turns is not None and samples:
            await self._hear(samples)
        if full:
            raise errors.buffer_full(self.limits.max_buffer_ms)

    async def _hear(self, samples: bytes) -> None:
        feed, stream, turns = self._vad_feed, self._vad_stream, self._turns
        assert feed is not None and stream is not None and turns is not None

        def work() -> Any:
            return stream.feed(feed.convert(samples))

        if len(samples) > self.buffer.format.bytes_for_ms(INLINE_VAD_MS):
            probabilities = await run_in_thread(work, name="realtalk-vad")
        else:
            probabilities = work()
        if self._turns is not turns:  # the session was reconfigured meanwhile
            return
        self._decide(turns.feed(probabilities.tolist()))
        draft = self._draft
        if draft is None:
            keep = turns.settings.prefix_padding_ms + IDLE_KEEP_MS
            self.buffer.trim_before(self.buffer.clock_ms - keep)
        else:
            self.transcripts.hearing(
                draft,
                lambda: self.buffer.peek(draft.start_ms),
                self.buffer.format,
                now_ms=turns.position_ms,
                pause_began_ms=turns.pause_began_ms,
                report=self._transcription is not None,
            )
            if self.speculative_replies:
                self._warm_llm(draft, turns)
                self._guess_reply(draft, turns)

    # --- a reply started in the pause --------------------------------------------------------

    def _warm_llm(self, draft: Draft, turns: TurnDetector) -> None:
        """Once the user has been speaking a while, have the LLM evaluate the conversation
        their turn follows, so the reply (or its guess) evaluates only the new turn."""
        if self._warmed == draft.item_id or self.active is not None or self.closed:
            return
        if turns.pause_began_ms is not None:  # a pause: the guess needs the LLM now, not this
            return
        speech_ms = turns.position_ms - draft.start_ms - turns.settings.prefix_padding_ms
        if speech_ms < WARM_AFTER_SPEECH_MS:
            return
        self._warmed = draft.item_id
        items = [(e.snapshot(), 0) for e in self.conversation]
        settings, text_of = self._settings({}), self.transcripts.text_of

        async def warm() -> None:
            try:
                context = await build_context(settings.instructions, items, text_of)
                if not self.closed:
                    await self.engines.llm.warm(context.messages, settings.tools)
            except Exception as exc:  # only time is lost: the reply evaluates it all then
                logger.debug("warming the LLM failed: %s", exc)

        self._track(asyncio.create_task(warm()))

    def _guess_reply(self, draft: Draft, turns: TurnDetector) -> None:
        """Once the pause's transcript is being speculated, start the reply it would get."""
        pause, speculation = turns.pause_began_ms, draft.speculation
        if pause is None:
            self._drop_guess()  # speaking again
            return
        if speculation is None or speculation[0] != pause:
            return
        if self._guess is not None and self._guess[0] == pause:
            return
        self._drop_guess()
        if self.active is not None or not turns.settings.create_response or self.closed:
            return
        # The conversation as it stands now, before this turn is committed into it.
        items = [(e.snapshot(), 0) for e in self.conversation]
        task: GuessTask = asyncio.create_task(
            self._make_guess(speculation[1], items, self._settings({}))
        )
        self._guess = (pause, task)

    async def _make_guess(
        self,
        transcription: asyncio.Task[Any],
        items: list[tuple[dict[str, Any], int]],
        settings: ResponseSettings,
    ) -> ReplyGuess | None:
        """The reply to the speculative transcript. A guess no longer wanted is cancelled
        (``discard``); one taken by the response that ended the turn runs on."""
        text = (await asyncio.shield(transcription)).text.strip()
        if not text or self.closed:
            return None
        items.append(
            (
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
                0,
            )
        )
        context = await build_context(settings.instructions, items, self.transcripts.text_of)
        if self.closed:
            return None
        limit = settings.max_output_tokens
        return ReplyGuess(
            self.engines.llm,
            context.messages,
            tools=settings.tools,
            tool_choice=settings.tool_choice,
            max_output_tokens=limit if isinstance(limit, int) else None,
        )

    def _drop_guess(self) -> None:
        if self._guess is None:
            return
        _pause, task = self._guess
        self._guess = None
        self._track(asyncio.ensure_future(discard(task)))

    def _take_guess(self, pause: float) -> GuessTask | None:
        """The guess made in this pause (the turn ended there); any other is dropped."""
        if self._guess is not None and self._guess[0] == pause:
            task = self._guess[1]
            self._guess = None
            return task
        self._drop_guess()
        return None

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _decide(self, decisions: list[TurnDecision]) -> None:
        for decision in decisions:
            if isinstance(decision, SpeechStarted):
                self._speech_started(decision.audio_start_ms)
            elif isinstance(decision, SpeechStopped):
                self._speech_stopped(decision.audio_end_ms)
            elif isinstance(decision, PauseCheck):
                self._check_pause(decision.pause_ms)

    def _check_pause(self, pause_ms: float) -> None:
        """Ask the end-of-turn model about the speech so far, in a thread; its answer may end
        the turn (if that pause is still going on by then)."""
        model, turns, draft = self._end_of_turn, self._turns, self._draft
        if model is None or turns is None or draft is None or self.closed:
            return
        pcm = to_pcm16k(self.buffer.peek(draft.start_ms), self.buffer.format)

        async def ask() -> None:
            try:
                probability = await run_in_thread(
                    lambda: model.probability(pcm), name="realtalk-end-of-turn"
                )
            except Exception as exc:  # the silence rule still ends the turn
                logger.warning("the end-of-turn model failed: %s", exc)
                return
            if self._turns is turns and not self.closed:
                logger.debug("pause at %.0f ms: finished with p=%.2f", pause_ms, probability)
                self._decide(turns.conclude(pause_ms, probability))

        self._track(asyncio.create_task(ask()))

    def _speech_started(self, audio_start_ms: int) -> None:
        assert self._turns is not None
        start = max(float(audio_start_ms), self.buffer.start_ms)
        self._drop_guess()
        self._draft = Draft(self._new_id("item"), start, partial_at_ms=start)
        self._disarm_idle()
        self._send(ev.speech_started(self._eid(), self._draft.item_id, round(start)))
        if self._turns.settings.interrupt_response and self.active is not None:
            self.active.cancel("turn_detected")

    def _speech_stopped(self, audio_end_ms: int) -> None:
        draft, turns = self._draft, self._turns
        if draft is None or turns is None:
            return
        self._draft = None
        guess = self._take_guess(audio_end_ms)
        self._send(ev.speech_stopped(self._eid(), draft.item_id, audio_end_ms))
        self._commit(draft.item_id, draft.start_ms, draft=draft, speech_end_ms=audio_end_ms)
        if turns.settings.create_response:
            if self.active is None:
                self._start_response(self._settings({}), None, guess=guess)
            else:
                if guess is not None:
                    self._track(asyncio.ensure_future(discard(guess)))
                logger.debug("turn ended while %s is active: no new response", self.active.id)

    async def _commit_event(self, event: dict[str, Any]) -> None:
        if self.buffer.duration_ms < MIN_COMMIT_MS:
            raise errors.commit_empty(max(self.buffer.duration_ms, 0.0))
        draft, self._draft = self._draft, None
        item_id = draft.item_id if draft is not None else self._new_id("item")
        self._commit(item_id, None, draft=draft)
        if self._turns is not None:
            self._turns.reset(self.buffer.clock_ms)

    async def _clear(self, event: dict[str, Any]) -> None:
        self.buffer.clear()
        self._drop_draft()
        if self._turns is not None:
            self._turns.reset(self.buffer.clock_ms)
        self._send(ev.input_audio_buffer_cleared(self._eid()))

    def _drop_draft(self) -> None:
        self._drop_guess()
        if self._draft is not None:
            self._draft.closed = True
        self._draft = None

    def _commit(
        self,
        item_id: str,
        from_ms: float | None,
        *,
        draft: Draft | None,
        speech_end_ms: float | None = None,
    ) -> None:
        fmt = self.buffer.format
        data = self.buffer.take(from_ms)
        item = ev.message_item(
            "user",
            [{"type": "input_audio", "transcript": None}],
            item_id=item_id,
            status="completed",
            with_object=True,
        )
        entry = Entry(item, audio={0: bytearray(data)}, audio_format=fmt)
        previous = self.conversation.add(entry)
        self._send(ev.input_audio_buffer_committed(self._eid(), item_id, previous))
        self._send(ev.conversation_item_added(self._eid(), entry.snapshot(), previous))
        self._send(ev.conversation_item_done(self._eid(), entry.snapshot(), previous))
        self.transcripts.start(
            item_id,
            0,
            data,
            fmt,
            report=self._transcription is not None,
            draft=draft,
            speech_end_ms=speech_end_ms,
        )

    def _transcribed(self, item_id: str, index: int, text: str) -> None:
        """A reported transcript also shows in the item (as retrieve returns it)."""
        entry = self.conversation.get(item_id)
        if entry is not None and index < len(entry.item["content"]):
            entry.item["content"][index]["transcript"] = text

    # --- conversation ------------------------------------------------------------------------

    async def _item_create(self, event: dict[str, Any]) -> None:
        if len(self.conversation) >= self.limits.max_items:
            raise errors.conversation_full(f"at most {self.limits.max_items} items")
        item = copy.deepcopy(event["item"])
        item.setdefault("id", self._new_id("item"))
        item["object"] = "realtime.item"
        item["status"] = "completed"
        audio: dict[int, bytearray] = {}
        fmt = self._input_format
        kind = item["type"]
        if kind == "function_call":
            item.setdefault("call_id", self._new_id("call"))
        if kind == "message":
            for index, part in enumerate(item["content"]):
                if part["type"] == "text":  # beta spelling of an assistant text part
                    part["type"] = "output_text"
                if part["type"] == "input_audio":
                    part.setdefault("transcript", None)
                    if "audio" in part:
                        encoded = part.pop("audio")
                        data = self._decoded.get(index)
                        if data is None:
                            decoded = decode_audio(encoded, f"item.content[{index}].audio")
                            if isinstance(decoded, ProtocolError):
                                raise RequestError(decoded)
                            data = decoded
                        audio[index] = bytearray(data)
        size = _text_bytes(item)  # the audio parts' base64 is gone: audio is bounded apart
        if self.conversation.text_bytes + size > self.limits.max_conversation_bytes:
            raise errors.conversation_full(
                f"at most {self.limits.max_conversation_bytes} bytes of item text"
            )
        entry = Entry(item, audio=audio, audio_format=fmt if audio else None, text_bytes=size)
        previous = self.conversation.add(entry, event.get("previous_item_id"))
        self._send(ev.conversation_item_added(self._eid(), entry.snapshot(), previous))
        self._send(ev.conversation_item_done(self._eid(), entry.snapshot(), previous))
        for index, stored in audio.items():
            if item["content"][index].get("transcript") is None:
                self.transcripts.start(entry.id, index, bytes(stored), fmt, report=False)

    async def _item_retrieve(self, event: dict[str, Any]) -> None:
        item = self.conversation.retrieve(event["item_id"])
        self._send(ev.conversation_item_retrieved(self._eid(), item))

    async def _item_truncate(self, event: dict[str, Any]) -> None:
        item_id = event["item_id"]
        active = self.active
        if active is not None and item_id in active.item_ids:
            active.cancel("client_cancelled")  # cutting what is still being written ends it
        self.conversation.truncate(item_id, event["content_index"], event["audio_end_ms"])
        self._send(
            ev.conversation_item_truncated(
                self._eid(), item_id, event["content_index"], event["audio_end_ms"]
            )
        )

    async def _item_delete(self, event: dict[str, Any]) -> None:
        entry = self.conversation.delete(event["item_id"])
        self.transcripts.forget(entry.id)
        self._send(ev.conversation_item_deleted(self._eid(), entry.id))

    # --- responses ---------------------------------------------------------------------------

    async def _response_create(self, event: dict[str, Any]) -> None:
        params = event.get("response") or {}
        settings = self._settings(params)
        if settings.in_conversation and self.active is not None:
            raise errors.active_response(self.active.id)
        if len(self.responses) >= self.limits.max_responses:
            raise errors.too_many_responses(self.limits.max_responses)
        items = self._resolve_input(params["input"]) if "input" in params else None
        self._start_response(settings, items)

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        response_id = event.get("response_id")
        if response_id is not None:
            response = self.responses.get(response_id)
            if response is None:
                raise errors.cancel_not_active(response_id)
        else:
            response = self.active
            if response is None:
                raise errors.cancel_not_active()
        response.cancel("client_cancelled")

    async def _output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        raise RequestError(
            ProtocolError(
                "invalid_value",
                "output_audio_buffer.clear is only supported for WebRTC and SIP sessions; over "
                "a WebSocket the client owns playback (send response.cancel and "
                "conversation.item.truncate instead).",
                "type",
            )
        )

    def _settings(self, params: dict[str, Any]) -> ResponseSettings:
        s = self.session
        conversation = params.get("conversation", "auto")
        if conversation not in ("auto", "none"):
            raise errors.invalid(
                "response.conversation", f"{conversation!r}. Supported values are: 'auto', 'none'."
            )
        out = (params.get("audio") or {}).get("output") or {}
        return ResponseSettings(
            in_conversation=conversation == "auto",
            instructions=params.get("instructions", s["instructions"]),
            tools=params.get("tools", s["tools"]),
            tool_choice=params.get("tool_choice", s["tool_choice"]),
            output_modalities=params.get("output_modalities", s["output_modalities"]),
            max_output_tokens=params.get("max_output_tokens", s["max_output_tokens"]),
            output_format=AudioFormat.parse(out.get("format", self._output["format"])),
            voice=out.get("voice", self._output["voice"]),
            metadata=params.get("metadata"),
        )

    def _resolve_input(self, input_items: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
        """``response.input``: items inline or by reference, used instead of the conversation."""
        out: list[tuple[dict[str, Any], int]] = []
        for index, item in enumerate(input_items):
            if item.get("type") == "item_reference":
                entry = self.conversation.get(item["id"])
                if entry is None:
                    raise errors.invalid(
                        f"response.input[{index}].id", f"no item with id '{item['id']}'."
                    )
                out.append((entry.snapshot(), sum(entry.audio_ms(i) for i in entry.audio)))
            else:
                inline = copy.deepcopy(item)
                for part in inline.get("content") or []:
                    part.pop("audio", None)  # inline audio is not transcribed; its transcript is
                out.append((inline, 0))
        return out

    def _start_response(
        self,
        settings: ResponseSettings,
        items: list[tuple[dict[str, Any], int]] | None,
        *,
        guess: GuessTask | None = None,
    ) -> Response:
        if guess is None:
            self._drop_guess()  # a guess holds the LLM: no other call may wait behind it
        pending = self.transcripts.pending()

        async def context() -> Context:
            if items is not None:
                chosen = items
            else:
                # Wait for the transcripts first, then read the conversation: a truncate that
                # arrived meanwhile (the client cutting what it played) is then already in it.
                for task in pending:
                    await asyncio.wait([task])
                chosen = [
                    (e.snapshot(), sum(e.audio_ms(i) for i in e.audio)) for e in self.conversation
                ]
            return await build_context(settings.instructions, chosen, self.transcripts.text_of)

        response = Response(
            self._new_id("resp"),
            settings,
            engines=self.engines,
            send=self._send,
            new_id=self._new_id,
            conversation=self.conversation,
            conversation_id=self.conversation_id,
            context=context,
            on_finished=self._response_finished,
            guess=guess,
        )
        self.responses[response.id] = response
        if settings.in_conversation:
            self.active = response
            self._disarm_idle()
        response.start()
        return response

    def _response_finished(self, response: Response) -> None:
        self.responses.pop(response.id, None)
        if self.active is response:
            self.active = None
        if response.audio_bytes:
            self._voice_locked = True
        if response.settings.in_conversation:
            self._arm_idle(response)

    # --- idle timeout ------------------------------------------------------------------------

    def _arm_idle(self, response: Response) -> None:
        """server_vad ``idle_timeout_ms``: counted from when the reply has finished playing (the
        client plays it in real time from the first delta)."""
        self._disarm_idle()
        if self.closed:
            return
        detection = self.session["audio"]["input"]["turn_detection"]
        timeout_ms = (detection or {}).get("idle_timeout_ms")
        if not timeout_ms or detection.get("type") != "server_vad":
            return
        loop = asyncio.get_running_loop()
        played_until = loop.time()
        if response.first_audio_at is not None:
            played_until = max(played_until, response.first_audio_at + response.audio_ms / 1000)
        self._idle = loop.call_at(played_until + timeout_ms / 1000, self._idle_timeout)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_timeout(self) -> None:
        """Nobody spoke: commit what the buffer holds (maybe nothing) and answer it."""
        self._idle = None
        if self._draft is not None or self.active is not None or self.expired or self.closed:
            return
        item_id = self._new_id("item")
        start, end = round(self.buffer.start_ms), round(self.buffer.clock_ms)
        self._send(ev.input_audio_buffer_timeout_triggered(self._eid(), item_id, start, end))
        self._commit(item_id, None, draft=None)
        if self._turns is not None:
            self._turns.reset(self.buffer.clock_ms)
            if self._turns.settings.create_response:
                self._start_response(self._settings({}), None)

    # --- helpers -----------------------------------------------------------------------------

    def _error(self, problem: ProtocolError, client_event_id: str | None = None) -> None:
        self._send(
            ev.error(
                self._eid(),
                message=problem.message,
                type=problem.type,
                code=problem.code,
                param=problem.param,
                client_event_id=client_event_id,
            )
        )

    def _eid(self) -> str:
        return self._new_id("event")

    _HANDLERS: ClassVar[dict[str, Callable[[Connection, dict[str, Any]], Any]]] = {
        "session.update": _session_update,
        "input_audio_buffer.append": _append,
        "input_audio_buffer.commit": _commit_event,
        "input_audio_buffer.clear": _clear,
        "conversation.item.create": _item_create,
        "conversation.item.retrieve": _item_retrieve,
        "conversation.item.truncate": _item_truncate,
        "conversation.item.delete": _item_delete,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
        "output_audio_buffer.clear": _output_audio_buffer_clear,
    }


def _decode_audio_of(event: dict[str, Any], out: dict[int, bytes]) -> ProtocolError | None:
    """Decode the base64 audio an event carries into ``out`` (work done with the validation)."""
    kind = event["type"]
    if kind == "input_audio_buffer.append":
        data = decode_audio(event["audio"])
        if isinstance(data, ProtocolError):
            return data
        out[APPEND_AUDIO] = data
    elif kind == "conversation.item.create" and event["item"].get("type") == "message":
        for index, part in enumerate(event["item"]["content"]):
            if part.get("type") == "input_audio" and "audio" in part:
                data = decode_audio(part["audio"], f"item.content[{index}].audio")
                if isinstance(data, ProtocolError):
                    return data
                out[index] = data
    return None


def _text_bytes(item: dict[str, Any]) -> int:
    """What keeping an item costs, roughly: the length of its JSON (one C call)."""
    return len(_COMPACT.encode(item))


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

"""Listening to the user: the input audio buffer, turn taking, and the head start a turn gets.

:class:`Listener` owns what the session hears: appended audio goes into the
:class:`~realtalk.server.input_buffer.InputBuffer`; with turn detection on, the VAD's
probabilities go through the :class:`~realtalk.server.turns.TurnDetector`, whose decisions
become ``input_audio_buffer.speech_started`` / ``speech_stopped`` and a committed user item.
While the user speaks it prepares the reply: the LLM evaluates the conversation the turn follows
(:meth:`Listener._warm_llm`), and in a pause that may end the turn it starts the reply to the
speculative transcript (a :class:`~realtalk.server.speculation.ReplyGuess`), which the response
takes if the turn does end there.

What a turn means for the responses is the connection's to decide: the listener tells it through
the callbacks it was given (speech started, reply now) and asks it whether a reply is running
and what a reply's settings are. It never creates or cancels a response itself, so listening and
replying can be read, and changed, apart.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any

from realtalk.protocol import events as ev
from realtalk.protocol.audio_formats import AudioFormat
from realtalk.protocol.errors import ProtocolError
from realtalk.protocol.validate import decode_audio
from realtalk.server.engines.base import Engines, VADStream
from realtalk.server.engines.threads import run_in_thread

from . import errors
from .context import build_context
from .conversation import Conversation, Entry
from .errors import RequestError
from .input_buffer import InputBuffer, VadFeed, fading, to_pcm16k
from .limits import Limits
from .response import ResponseSettings
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

__all__ = ["MIN_COMMIT_MS", "Listener"]

logger = logging.getLogger("realtalk.server")

Send = Callable[[dict[str, Any]], None]

#: Appends longer than this run the VAD in a thread; shorter ones cost less than the hop.
INLINE_VAD_MS = 120
#: Audio kept before speech while nobody speaks, beyond the prefix padding.
IDLE_KEEP_MS = 500
MIN_COMMIT_MS = 100
#: This far into the user's speech the LLM evaluates the conversation their turn follows (by
#: then a barge-in has cut the last reply to what was heard)...
WARM_AFTER_SPEECH_MS = 200
#: ...and this far in, the words they have said so far too, if the LLM can use them: the reply
#: then evaluates only their last words. Late enough that most turns this long go on for a
#: while (the transcription and evaluation take ~250 ms of CPU, which the pause's own work
#: would otherwise wait for), early enough for a two-second question.
WARM_WORDS_AFTER_SPEECH_MS = 800
#: How much of the turn's latest audio tells whether the speech is fading out.
FADE_LOOKBACK_MS = 2000


class Listener:
    """The input side of one session: audio in; turns, committed items and head starts out."""

    def __init__(
        self,
        engines: Engines,
        send: Send,
        new_id: Callable[[str], str],
        transcripts: UserTranscripts,
        audio_input: dict[str, Any],
        *,
        limits: Limits,
        conversation: Callable[[], Conversation],
        replying: Callable[[], str | None],
        reply_settings: Callable[[], ResponseSettings],
        on_speech: Callable[[bool], None],
        reply: Callable[[GuessTask | None], None],
        smart_turn: bool = True,
        speculative_replies: bool = True,
    ) -> None:
        """``audio_input`` is the session's ``audio.input``. The callbacks: ``conversation()``
        the conversation now; ``replying()`` the response running in it (its id), if any;
        ``reply_settings()`` the settings a reply would have now; ``on_speech(interrupt)``
        the user started speaking (``interrupt``: the session wants the running reply cut);
        ``reply(guess)`` a turn ended that gets a reply (``guess``: one started in its pause)."""
        self.engines = engines
        self.limits = limits
        self._send = send
        self._new_id = new_id
        self.transcripts = transcripts
        self._conversation = conversation
        self._replying = replying
        self._reply_settings = reply_settings
        self._on_speech = on_speech
        self._reply = reply
        self._input = copy.deepcopy(audio_input)
        self.buffer = InputBuffer(self._format)
        self.closed = False
        self._vad_feed: VadFeed | None = None
        self._vad_stream: VADStream | None = None
        self._turns: TurnDetector | None = None
        self._draft: Draft | None = None  # the user's turn in progress (server VAD)
        #: semantic_vad asks this model whether a pause ends the turn (None: silence decides)
        self._end_of_turn = engines.end_of_turn if smart_turn else None
        self._tasks: set[asyncio.Future[Any]] = set()
        #: the LLM starts on the speculative transcript while the pause may still end the turn
        self.speculative_replies = speculative_replies and transcripts.speculate
        self._guess: tuple[float, GuessTask] | None = None  # (the pause, the guess being made)
        self._warmed: str | None = None  # the turn (item id) the LLM was warmed for
        self._warmed_words: str | None = None  # ...and warmed with its words so far
        self._configure_turns()
        self._configure_transcription()

    @property
    def in_turn(self) -> bool:
        """Turn detection has heard the user start speaking and not yet stop."""
        return self._draft is not None

    def configure(self, audio_input: dict[str, Any]) -> None:
        """The session's ``audio.input`` after a ``session.update``: a new format or turn
        detection starts turn taking afresh (the turn in progress is dropped)."""
        before, self._input = self._input, copy.deepcopy(audio_input)
        if self._input["format"] != before["format"]:
            self.buffer.set_format(self._format)
        if (
            self._input["format"] != before["format"]
            or self._input["turn_detection"] != before["turn_detection"]
        ):
            self._configure_turns()
        self._configure_transcription()

    def close(self) -> None:
        """Start nothing more, and let the LLM go: the session is closing."""
        self.closed = True
        self.drop_guess()

    async def aclose(self) -> None:
        """Cancel the background work and let the audio go (after :meth:`close`)."""
        self.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.buffer.clear()
        self._draft = None
        self._vad_stream = None

    @property
    def _format(self) -> AudioFormat:
        return AudioFormat.parse(self._input["format"])

    @property
    def _report(self) -> bool:
        """The session asked for transcripts of the user's audio (else they are for us)."""
        return self._input["transcription"] is not None

    def _configure_transcription(self) -> None:
        """The session's transcription prompt guides every transcription from now on (the
        server transcribes each turn whether or not the client asked for transcripts)."""
        self.transcripts.prompt = (self._input["transcription"] or {}).get("prompt") or None

    def _configure_turns(self) -> None:
        detection = self._input["turn_detection"]
        self._drop_draft()
        if detection is None:
            self._turns = self._vad_feed = self._vad_stream = None
            return
        vad = self.engines.vad
        self._vad_feed = VadFeed(self._format)
        self._vad_stream = vad.create_stream()
        self._turns = TurnDetector(
            TurnSettings.from_session(detection, smart=self._end_of_turn is not None),
            window_ms=vad.window_samples * 1000 / vad.sample_rate,
            start_ms=self.buffer.clock_ms,
        )

    # --- the input audio buffer's events -----------------------------------------------------

    async def append(self, encoded: str, decoded: bytes | None) -> None:
        """``input_audio_buffer.append``: ``decoded`` is the audio if decoded already (with the
        validation, maybe off the loop). Audio beyond the buffer's limit is refused with an
        error; what fitted is kept and heard."""
        data = decoded
        if data is None:
            audio = decode_audio(encoded)
            if isinstance(audio, ProtocolError):
                raise RequestError(audio)
            data = audio
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

    def commit(self) -> None:
        """``input_audio_buffer.commit``: the buffer (and the turn in progress) becomes an item."""
        if self.buffer.duration_ms < MIN_COMMIT_MS:
            raise errors.commit_empty(max(self.buffer.duration_ms, 0.0))
        draft, self._draft = self._draft, None
        item_id = draft.item_id if draft is not None else self._new_id("item")
        self._commit(item_id, None, draft=draft)
        if self._turns is not None:
            self._turns.reset(self.buffer.clock_ms)

    def clear(self) -> None:
        """``input_audio_buffer.clear``: the audio and the turn in progress are dropped."""
        self.buffer.clear()
        self._drop_draft()
        if self._turns is not None:
            self._turns.reset(self.buffer.clock_ms)
        self._send(ev.input_audio_buffer_cleared(self._eid()))

    def time_out(self) -> bool:
        """server_vad's ``idle_timeout_ms`` passed with nobody speaking: commit what the
        buffer holds (maybe nothing). True if the session wants that turn answered."""
        item_id = self._new_id("item")
        start, end = round(self.buffer.start_ms), round(self.buffer.clock_ms)
        self._send(ev.input_audio_buffer_timeout_triggered(self._eid(), item_id, start, end))
        self._commit(item_id, None, draft=None)
        if self._turns is None:
            return False
        self._turns.reset(self.buffer.clock_ms)
        return self._turns.settings.create_response

    def _drop_draft(self) -> None:
        self.drop_guess()
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
        """The buffer's audio from ``from_ms`` becomes a user item, then is transcribed."""
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
        previous = self._conversation().add(entry)
        self._send(ev.input_audio_buffer_committed(self._eid(), item_id, previous))
        self._send(ev.conversation_item_added(self._eid(), entry.snapshot(), previous))
        self._send(ev.conversation_item_done(self._eid(), entry.snapshot(), previous))
        self.transcripts.start(
            item_id,
            0,
            data,
            fmt,
            report=self._report,
            draft=draft,
            speech_end_ms=speech_end_ms,
        )

    # --- turn detection ----------------------------------------------------------------------

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
                report=self._report,
            )
            if self.speculative_replies:
                self._warm_llm(draft, turns)
                self._guess_reply(draft, turns)

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
            question = False
            if probability < turns.settings.complete_threshold:
                question = await self._asks_a_question(draft, pause_ms)
            if self._turns is turns and not self.closed:
                logger.debug(
                    "pause at %.0f ms: finished with p=%.2f%s",
                    pause_ms,
                    probability,
                    ", a question" if question else "",
                )
                self._decide(turns.conclude(pause_ms, probability, question=question))

        self._track(asyncio.create_task(ask()))

    @staticmethod
    async def _asks_a_question(draft: Draft, pause_ms: float) -> bool:
        """Whether the words before this pause (its speculative transcript) end in a question
        mark; False if they were not transcribed there."""
        speculation = draft.speculation
        if speculation is None or speculation[0] != pause_ms:
            return False
        try:
            transcript = await asyncio.shield(speculation[1])
        except Exception:  # the silence rule still ends the turn
            return False
        return transcript.text.rstrip().endswith("?")

    def _speech_started(self, audio_start_ms: int) -> None:
        assert self._turns is not None
        start = max(float(audio_start_ms), self.buffer.start_ms)
        self.drop_guess()
        self._draft = Draft(self._new_id("item"), start, partial_at_ms=start)
        self._send(ev.speech_started(self._eid(), self._draft.item_id, round(start)))
        self._on_speech(self._turns.settings.interrupt_response)

    def _speech_stopped(self, audio_end_ms: int) -> None:
        draft, turns = self._draft, self._turns
        if draft is None or turns is None:
            return
        self._draft = None
        guess = self._take_guess(audio_end_ms)
        self._send(ev.speech_stopped(self._eid(), draft.item_id, audio_end_ms))
        self._commit(draft.item_id, draft.start_ms, draft=draft, speech_end_ms=audio_end_ms)
        if turns.settings.create_response:
            active = self._replying()
            if active is None:
                self._reply(guess)
            else:
                if guess is not None:
                    self._track(asyncio.ensure_future(discard(guess)))
                logger.debug("turn ended while %s is active: no new response", active)

    # --- a head start on the reply -----------------------------------------------------------

    def _conversation_now(self) -> list[tuple[dict[str, Any], int]]:
        """The conversation as it stands now, before the turn being heard is committed into it
        (what ``build_context`` reads)."""
        return [(e.snapshot(), 0) for e in self._conversation()]

    def _warm_llm(self, draft: Draft, turns: TurnDetector) -> None:
        """Once the user has been speaking a while, have the LLM evaluate the conversation
        their turn follows, and later their words so far, so the reply (or its guess)
        evaluates only the rest of the turn."""
        if self._replying() is not None or self.closed:
            return
        if turns.pause_began_ms is not None:  # a pause: the guess needs the LLM now, not this
            return
        speech_ms = turns.position_ms - draft.start_ms - turns.settings.prefix_padding_ms
        if self._warmed != draft.item_id:
            if speech_ms >= WARM_AFTER_SPEECH_MS:
                self._warmed = draft.item_id
                self._warm(None)
        elif (
            self._warmed_words != draft.item_id
            and speech_ms >= WARM_WORDS_AFTER_SPEECH_MS
            and self.engines.llm.warms_words
            and self._still_speaking(draft)  # else the pause's transcript waits for this one
        ):
            self._warmed_words = draft.item_id
            self._warm(draft)

    def warm_for_next_turn(self) -> None:
        """After a reply that leaves the floor to the user, have the LLM evaluate the
        conversation their next turn will follow, while the reply plays out.

        Mostly a few tokens (the reply's own were generated), but a greeting that asked the
        user something joins the local model's system turn, which is then evaluated anew:
        ~6 s on 2 cores, which the first answer would otherwise wait for.
        """
        if self.in_turn or self._replying() is not None or self.closed:
            return
        self._warm(None)

    def _warm(self, draft: Draft | None) -> None:
        """Warm the LLM up, with the words of ``draft`` (the turn so far) if given."""
        items = self._conversation_now()
        settings, text_of = self._reply_settings(), self.transcripts.text_of
        audio = None if draft is None else self.buffer.peek(draft.start_ms)
        fmt = self.buffer.format

        async def warm() -> None:
            try:
                words = "" if audio is None else await self.transcripts.so_far(audio, fmt)
                if draft is not None and not self._still_speaking(draft):
                    # The turn paused, ended or is fading out while its words were transcribed:
                    # the pause's own transcript, end-of-turn check and guess are about to need
                    # both cores and the LLM (a warm-up then slowed all three: one Whisper pass
                    # took 650 ms instead of 300), for ~50 ms of prompt it would have saved.
                    return
                context = await build_context(settings.instructions, items, text_of)
                if not self.closed:
                    await self.engines.llm.warm(context.messages, settings.tools, words)
            except Exception as exc:  # only time is lost: the reply evaluates it all then
                logger.debug("warming the LLM failed: %s", exc)

        self._track(asyncio.create_task(warm()))

    def _still_speaking(self, draft: Draft) -> bool:
        """Whether ``draft`` is the turn being heard, neither in a pause nor going quiet (the
        VAD's model tells a pause ~110 ms after the speech stops; the audio's level sooner)."""
        turns = self._turns
        recent = max(draft.start_ms, self.buffer.clock_ms - FADE_LOOKBACK_MS)
        return (
            self._draft is draft
            and turns is not None
            and turns.pause_began_ms is None
            and not fading(self.buffer.peek(recent), self.buffer.format)
        )

    def _guess_reply(self, draft: Draft, turns: TurnDetector) -> None:
        """Once the pause's transcript is being speculated, start the reply it would get."""
        pause, speculation = turns.pause_began_ms, draft.speculation
        if pause is None:
            self.drop_guess()  # speaking again
            return
        if speculation is None or speculation[0] != pause:
            return
        if self._guess is not None and self._guess[0] == pause:
            return
        self.drop_guess()
        if self._replying() is not None or not turns.settings.create_response or self.closed:
            return
        items = self._conversation_now()
        task: GuessTask = asyncio.create_task(
            self._make_guess(speculation[1], items, self._reply_settings())
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
        items.append((ev.user_text_item(text), 0))
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
            voice=self.engines.voice if settings.audio else None,
        )

    def drop_guess(self) -> None:
        """Let go of the guess being made: a guess holds the LLM, so any other LLM call of
        the session would wait behind it."""
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
        self.drop_guess()
        return None

    # --- helpers -----------------------------------------------------------------------------

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _eid(self) -> str:
        return self._new_id("event")

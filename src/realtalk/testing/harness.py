"""AgentTest: one agent against a real Realtime server, driven turn by turn like a person would.

::

    async with AgentTest(Assistant()) as t:            # the scripted local server by default
        t.when("seventeen times three").call("calculate", {"expression": "17 * 3"}).then_say(
            "Seventeen times three is {output}."
        )
        turn = await t.speak("What is seventeen times three?")   # Piper's voice, streamed
        turn.expect.next_event().is_function_call(name="calculate")
        turn.expect.next_event().is_function_call_output(contains="51")
        turn.expect.next_event().is_agent_message(contains="51")
        turn.expect.no_more_events()

Backends (``backend=``; the same test code runs on each):

- ``"scripted"``: a :class:`~realtalk.server.LocalServer` in this process with the scripted engines
  (energy VAD, exact transcripts, rule-following LLM, tone voice): deterministic, milliseconds.
- ``"local"``: the same server with the real offline models (Silero, Whisper, the local LLM,
  Piper). ``t.when(...)`` rules do not apply: the model decides.
- ``"openai"``: OpenAI itself, with ``OPENAI_API_KEY``; rules do not apply either.

Audio is real: the test user's words are synthesized (Piper) and streamed as 20 ms microphone
frames, and the agent's voice is played out by a speaker that takes frames at playback speed, so
barge-in, truncation and turn-taking happen as with a person. ``speed`` runs both at a multiple
of real time. Each test gets its own server and session; :meth:`AgentTest.aclose` checks that
nothing outlives the test (tasks, sockets, server sessions) and raises :class:`LeakError` if so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from realtalk.agent import Agent
from realtalk.media.frame import AudioFrame
from realtalk.media.wav import iter_frames
from realtalk.session import AgentSession
from realtalk.testing.audio import MIC_RATE, load_wav, speak
from realtalk.testing.expect import ExpectationFailed, TurnResult
from realtalk.testing.leaks import LeakError, Snapshot
from realtalk.testing.script import RuleBuilder
from realtalk.testing.story import Recorder, format_story
from realtalk.testing.transport import FRAME_MS as _FRAME_MS
from realtalk.testing.transport import TestTransport

if TYPE_CHECKING:
    from realtalk.server import LocalServer
    from realtalk.server.engines.base import Engines
    from realtalk.server.engines.scripted import ScriptedLLM, ScriptedTranscriber

__all__ = ["AgentTest", "Backend", "LeakError", "TurnTimeout"]

logger = logging.getLogger("realtalk.testing")

Backend = Literal["scripted", "local", "openai"]
BACKENDS: tuple[str, ...] = ("scripted", "local", "openai")
_LOCAL_KEY = "realtalk-test"
#: After the words, the microphone keeps sending silence until the server ends the turn.
_MAX_TRAILING_SILENCE_MS = 3000


class TurnTimeout(ExpectationFailed):
    """A turn (or a barge-in) waited too long; the message says for what, and what happened."""


class _InputFailed(Exception):
    def __init__(self, expected: str, got: str) -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = got


class AgentTest:
    """Run ``agent`` against a Realtime server and drive the conversation (module docstring).

    Args:
        agent: an :class:`~realtalk.Agent`, or an agent file's ``entrypoint`` (see
            :meth:`from_file`), which builds its own model and session.
        backend: "scripted" (default), "local" or "openai".
        speed: how fast the microphone and the speaker run, as a multiple of real time.
        timeout_s: how long one turn may take (from the end of the input to silence).
        model: the model name given to ``OpenAIRealtime`` (for an Agent).
        check_leaks: on close, raise :class:`LeakError` for tasks, sockets or server sessions
            this test left behind.
        engines: run the local server with these engines instead of a backend's (for example
            real Silero and Whisper with a rule-following ``ScriptedLLM``); rules apply when
            its LLM is a ``ScriptedLLM``.
    """

    def __init__(
        self,
        agent: Agent | Callable[[Any], Awaitable[None]],
        *,
        backend: Backend | str = "scripted",
        speed: float = 1.0,
        timeout_s: float = 30.0,
        model: str = "gpt-realtime",
        check_leaks: bool = True,
        api_key: str | None = None,
        engines: Engines | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        if not 0.25 <= speed <= 20:
            raise ValueError(f"speed must be between 0.25 and 20 (times real time), got {speed}")
        if backend == "openai" and not (api_key or os.environ.get("OPENAI_API_KEY")):
            raise ValueError("backend 'openai' needs OPENAI_API_KEY (or api_key=...)")
        self.agent = agent
        self.engines = engines
        self.backend: str = backend if engines is None else f"engines:{engines.name}"
        self.speed = speed
        self.timeout_s = timeout_s
        self.model_name = model
        self.check_leaks = check_leaks
        #: How long closed tasks and sockets get to finish closing before they count as leaked.
        self.leak_grace_s = 5.0
        self._api_key = api_key
        self.server: LocalServer | None = None
        self.session: AgentSession | None = None
        self._greeting: TurnResult | None = None
        self.turns: list[TurnResult] = []
        self._rules: list[RuleBuilder] = []
        self._recorder: Recorder | None = None
        self._transport = TestTransport(speed, self._attached, self._played)
        # The turn still collecting events: (turn, its first event's index, metrics before it).
        self._open: tuple[TurnResult, int, int] | None = None
        self._snapshot: Snapshot | None = None
        self._t0: float | None = None
        self._llm: ScriptedLLM | None = None
        self._transcriber: ScriptedTranscriber | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **options: Any) -> AgentTest:
        """Test an agent file (``realtalk run FILE``) through its ``entrypoint``."""
        from realtalk.runner import load_entrypoint

        return cls(load_entrypoint(Path(path)), **options)

    # -- rules for the scripted engine -------------------------------------------------------------

    def when(self, pattern: str) -> RuleBuilder:
        """A rule for the scripted engine: when the user says something matching ``pattern``
        (a case-insensitive regex), ``.call(tool, args)``, ``.then_say(text)``, ``.say(text)``,
        ``.on_error(text)``. Ignored (with a log line) on the other backends."""
        builder = RuleBuilder(pattern, self._apply_rules)
        self._rules.append(builder)
        if self.backend in ("local", "openai"):
            logger.info("rule %r is ignored on the %s backend", pattern, self.backend)
        return builder

    def _apply_rules(self) -> None:
        if self._llm is None:
            return
        self._llm.clear_rules()
        for builder in self._rules:
            rule = builder.rule()
            if rule is not None:
                self._llm.add_rule(rule)

    # -- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> AgentTest:
        try:
            await self.start()
        except BaseException:  # __aexit__ will not run: release the server and session here
            await self.aclose(check_leaks=False)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # A failing test keeps its own error; leaks are reported only for one that passed.
        await self.aclose(check_leaks=self.check_leaks and exc_info[0] is None)

    async def start(self) -> TurnResult:
        """Start the server (local backends) and the session; wait for the greeting to end."""
        self._snapshot = Snapshot.take()
        base_url = await self._start_server()
        t0 = time.monotonic()
        if isinstance(self.agent, Agent):
            from realtalk.plugins.openai import OpenAIRealtime

            model = OpenAIRealtime(
                model=self.model_name,
                base_url=base_url,
                # The user's real key never goes to the local test server.
                api_key=self._api_key if base_url is None else _LOCAL_KEY,
            )
            session: AgentSession[Any] = AgentSession(agent=self.agent, model=model)
            self._t0 = t0
            await session.start(self._transport)
        else:
            await self._run_entrypoint(self.agent, base_url)
        if self.session is None:
            raise RuntimeError(
                "the entrypoint returned without starting a session on ctx.transport; "
                "call `await session.start(ctx.transport)`"
            )
        greeting = TurnResult("the start (on_enter)")
        self._open = (greeting, 0, 0)
        self._greeting = greeting
        await self._finish_turn(greeting, 0, 0, what="the greeting to end")
        return greeting

    async def _start_server(self) -> str | None:
        if self.backend == "openai":
            return None
        from realtalk.server import LocalServer

        if self.engines is not None:
            from realtalk.server.engines.scripted import ScriptedLLM, ScriptedTranscriber

            llm, transcriber = self.engines.llm, self.engines.transcriber
            self._llm = llm if isinstance(llm, ScriptedLLM) else None
            self._transcriber = (
                transcriber if isinstance(transcriber, ScriptedTranscriber) else None
            )
            self._apply_rules()
            self.server = LocalServer(
                port=0,
                engines=self.engines,
                partial_transcripts=False,
                speculative_transcripts=False,
            )
        elif self.backend == "scripted":
            from realtalk.server.engines.base import Engines
            from realtalk.server.engines.energy import EnergyVAD
            from realtalk.server.engines.scripted import (
                ScriptedLLM,
                ScriptedTranscriber,
                ToneVoice,
            )

            self._llm, self._transcriber = ScriptedLLM(), ScriptedTranscriber()
            self._apply_rules()
            engines = Engines(EnergyVAD(), self._transcriber, self._llm, ToneVoice(), "scripted")
            # One transcription per committed turn, so the texts queued for it land there.
            self.server = LocalServer(
                port=0, engines=engines, partial_transcripts=False, speculative_transcripts=False
            )
        else:
            self.server = LocalServer(port=0, engine="local")
        await self.server.start()
        return self.server.base_url

    async def _run_entrypoint(
        self, entrypoint: Callable[[Any], Awaitable[None]], url: str | None
    ) -> None:
        from realtalk.runner import JobContext

        saved = {k: os.environ.get(k) for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
        try:
            if url is not None:  # the file's OpenAIRealtime(...) reaches the local server
                os.environ["OPENAI_BASE_URL"] = url
                os.environ.pop("OPENAI_API_KEY", None)
            elif self._api_key:
                os.environ["OPENAI_API_KEY"] = self._api_key
            self._t0 = time.monotonic()
            key = os.environ.get("OPENAI_API_KEY") if url is None else None
            await entrypoint(JobContext(transport=self._transport, base_url=url, api_key=key))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _attached(self, session: AgentSession) -> None:
        self.session = session
        self._recorder = Recorder(session, t0=self._t0)

    def _played(self, ms: float) -> None:
        if self._recorder is not None:
            self._recorder.agent_speech_ms += ms
            self._recorder.poke()

    async def aclose(self, *, check_leaks: bool | None = None) -> None:
        """Close the session and the server; then check for leaks (see :class:`LeakError`)."""
        self._close_open_turn()
        if self.session is not None:
            await self.session.close(reason="test finished")
        if self._recorder is not None:
            self._recorder.detach()
        problems: list[str] = []
        if self.server is not None:
            # The server notices the closed socket on its own; give it the time to end the session.
            deadline = time.monotonic() + 10
            while self.server.open_sessions and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if self.server.open_sessions:
                problems.append(f"{self.server.open_sessions} server session(s) still open")
            await self.server.aclose()
        if (self.check_leaks if check_leaks is None else check_leaks) and self._snapshot:
            problems += await self._snapshot.leaks(self.leak_grace_s)
            if problems:
                raise LeakError(
                    "the test left things behind:\n  - " + "\n  - ".join(problems)
                    + "\n\n" + self.story()
                )  # fmt: skip

    # -- what happened ------------------------------------------------------------------------

    @property
    def greeting(self) -> TurnResult:
        """The first turn: what the agent did on entering (``on_enter``), before any input."""
        if self._greeting is None:
            raise RuntimeError("the AgentTest is not started: use `async with AgentTest(...)`")
        return self._greeting

    @property
    def events(self) -> list[Any]:
        return list(self._recorder.events) if self._recorder else []

    def story(self) -> str:
        """The whole conversation so far, as the failure messages show it."""
        return format_story(self.events, title="The whole conversation:")

    def _rec(self) -> Recorder:
        if self._recorder is None or self.session is None:
            raise RuntimeError("the AgentTest is not started: use `async with AgentTest(...)`")
        return self._recorder

    # -- turns ------------------------------------------------------------------------------------

    async def send_text(
        self, text: str, *, barge_in_ms: float | None = None, wait: bool = True
    ) -> TurnResult:
        """A typed user message. With ``barge_in_ms`` it is sent that long into the agent's
        reply, interrupting it first, as a chat UI would."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("send_text needs non-empty text")

        async def send(turn: TurnResult) -> None:
            session = self._session()
            if barge_in_ms is not None:
                await session.interrupt()
            await session.send_text(text)
            turn.heard = text
            turn.input_end_t = self._rec().now()

        return await self._turn(f"send_text({text!r})", send, barge_in_ms, wait)

    async def speak(
        self,
        text: str,
        *,
        barge_in_ms: float | None = None,
        wait: bool = True,
        transcript: str | None = None,
    ) -> TurnResult:
        """Say ``text`` into the microphone (synthesized by Piper, streamed at ``speed``).

        ``barge_in_ms``: start speaking once the agent's current reply has played that long.
        ``transcript``: what the scripted engine's transcriber hears (defaults to ``text``; the
        local and OpenAI backends transcribe the audio for real).
        """
        # Synthesize while waiting for the moment to barge in (same text, same audio: cached).
        audio = asyncio.ensure_future(asyncio.to_thread(speak, text))
        try:
            return await self._speech(
                f"speak({text!r})", audio, transcript if transcript is not None else text,
                barge_in_ms, wait,
            )  # fmt: skip
        finally:
            if not audio.done():
                audio.cancel()
            await asyncio.gather(audio, return_exceptions=True)

    async def prepare_speech(self, *texts: str) -> None:
        """Synthesize what the user will say ahead of time, so a barge-in starts on the dot
        even when synthesis is slower than the moment chosen (Piper on a busy machine)."""
        await asyncio.gather(*(asyncio.to_thread(speak, text) for text in texts))

    async def play_wav(
        self,
        path: str | os.PathLike[str],
        *,
        barge_in_ms: float | None = None,
        wait: bool = True,
        transcript: str | None = None,
    ) -> TurnResult:
        """Play a WAV file into the microphone as one user turn (converted to 24 kHz mono; an
        unusable file raises :class:`~realtalk.testing.WavInputError` before anything is sent)."""
        audio = load_wav(path)
        return await self._speech(f"play_wav({str(path)!r})", audio, transcript, barge_in_ms, wait)

    async def silence(self, ms: float) -> TurnResult:
        """The user stays silent for ``ms`` (the microphone streams silence); whatever the agent
        does meanwhile is the turn's events."""
        if ms <= 0:
            raise ValueError(f"silence needs a positive duration, got {ms}")

        async def stay_silent(turn: TurnResult) -> None:
            n = max(1, round(ms / _FRAME_MS))
            await self._transport.stream([_silence()] * n)
            turn.input_end_t = self._rec().now()

        turn = await self._turn(f"silence({ms:g} ms)", stay_silent, None, wait=False)
        self._close_open_turn()
        turn.done = True
        return turn

    async def _speech(
        self,
        title: str,
        audio_or_future: AudioFrame | Awaitable[AudioFrame],
        transcript: str | None,
        barge_in_ms: float | None,
        wait: bool,
    ) -> TurnResult:
        async def ready() -> AudioFrame:
            if isinstance(audio_or_future, AudioFrame):
                return audio_or_future
            return await audio_or_future

        async def stream(turn: TurnResult) -> None:
            rec = self._rec()
            audio = await ready()  # done already: _turn waited for it before the input began
            if self._transcriber is not None:
                self._transcriber.clear()
                if transcript is not None:
                    self._transcriber.set_next(transcript)
            ended = rec.user_speech_ended_count
            await self._transport.stream(list(iter_frames(audio, _FRAME_MS, pad=True)))
            # A microphone keeps sending: silence until the server says the turn is over (and
            # not only a first part of it: a pause inside the words can end a turn early).
            session = self._session()

            def speaking() -> bool:
                return rec.user_speech_ended_count == ended or session.user_state == "speaking"

            sent_ms = 0
            while speaking() and sent_ms < _MAX_TRAILING_SILENCE_MS:
                await self._transport.stream([_silence()] * 5)
                sent_ms += 5 * _FRAME_MS
            if speaking():
                raise _InputFailed(
                    f"the server to hear the end of the user's speech in {title}",
                    f"no end of speech after {audio.duration_ms:.0f} ms of audio and "
                    f"{sent_ms} ms of silence (is the audio silent, too quiet, or noisy?)",
                )
            if rec.user_speech_ended_count > ended + 1:
                logger.warning(
                    "%s: the server heard %d user turns in one utterance (pauses longer than the "
                    "turn detection's silence_duration_ms)",
                    title,
                    rec.user_speech_ended_count - ended,
                )
            turn.input_end_t = next(
                e.t for e in reversed(rec.events) if e.type == "user_stopped_speaking"
            )

        turn = await self._turn(title, stream, barge_in_ms, wait, ready=ready)
        heard = [e.text for e in turn.events if e.type == "user_message"]
        turn.heard = " ".join(heard) if heard else turn.heard
        return turn

    async def _turn(
        self,
        title: str,
        send: Callable[[TurnResult], Awaitable[None]],
        barge_in_ms: float | None,
        wait: bool,
        *,
        ready: Callable[[], Awaitable[object]] | None = None,
    ) -> TurnResult:
        """One input: wait for its moment (the previous turn's end, or the barge-in point) and
        for ``ready`` (the audio being synthesized meanwhile), send it, wait for the answer."""
        rec = self._rec()
        title = f"turn {len(self.turns) + 1}: {title}"
        if barge_in_ms is not None:
            await self._wait_to_barge_in(title, barge_in_ms)
        elif self._open is not None:
            await self._finish_turn(*self._open, what="the previous turn to end")
        if ready is not None:
            await ready()
        self._close_open_turn()
        turn = TurnResult(title)
        start = len(rec.events)
        self._open = (turn, start, rec.metrics_count)
        self.turns.append(turn)
        if barge_in_ms is not None:
            rec.add("input", {"what": f"{title}, {rec.agent_speech_ms:.0f} ms into the reply"})
        else:
            rec.add("input", {"what": title})
        try:
            await send(turn)
        except _InputFailed as failed:
            turn.events = rec.events[start:]
            raise TurnTimeout(
                f"\nExpected: {failed.expected}\n     Got: {failed.got}\n\n{turn.story()}"
            ) from None
        # Metrics before the input ended belong to an earlier turn (one cut off by this one).
        self._open = (turn, start, rec.metrics_count)
        if wait:
            await self._finish_turn(*self._open, what="the agent to finish its answer")
        else:
            turn.events = rec.events[start:]
        return turn

    async def _wait_to_barge_in(self, title: str, barge_in_ms: float) -> None:
        rec = self._rec()

        def starts() -> int:
            return sum(1 for e in rec.events if e.type == "agent_started_speaking")

        # The reply to cut into: the one playing now, or the next one to start.
        before = starts()
        speaking = self._session().agent_state == "speaking"

        def ready() -> bool:
            return (speaking or starts() > before) and rec.agent_speech_ms >= barge_in_ms

        if not await rec.wait(ready, self.timeout_s):
            began = speaking or starts() > before
            had = f"spoken {rec.agent_speech_ms:.0f} ms" if began else "not started talking"
            where = self._open[0].title if self._open else "the test"
            events = rec.events[self._open[1] :] if self._open else rec.events
            raise TurnTimeout(
                f"\nExpected: to barge in ({title}) {barge_in_ms:g} ms after the agent started "
                f"talking\n     Got: after {self.timeout_s:g} s the agent had {had}\n\n"
                + format_story(events, title=f"What happened in {where}:")
            )

    async def _finish_turn(self, turn: TurnResult, start: int, base: int, *, what: str) -> None:
        rec = self._rec()
        session = self._session()
        if turn is self._greeting and session.agent_state == "listening":
            ok = True  # no greeting
        else:
            ok = await rec.wait(
                lambda: (
                    session.closed
                    or (rec.metrics_count > base and session.agent_state == "listening")
                ),
                self.timeout_s,
            )
        turn.events = rec.events[start:]
        if not ok:
            state = session.agent_state
            raise TurnTimeout(
                f"\nExpected: {what} (the agent listening again after a completed turn)\n"
                f"     Got: still waiting after {self.timeout_s:g} s; the agent is {state}\n\n"
                + turn.story()
            )
        turn.done = True
        if self._open is not None and self._open[0] is turn:
            self._open = None

    def _close_open_turn(self) -> None:
        if self._open is not None and self._recorder is not None:
            turn, start, _ = self._open
            turn.events = self._recorder.events[start:]
        self._open = None

    def _session(self) -> AgentSession:
        self._rec()
        assert self.session is not None
        return self.session


def _silence() -> AudioFrame:
    return AudioFrame.silence(_FRAME_MS, MIC_RATE)

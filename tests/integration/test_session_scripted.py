"""AgentSession + OpenAIRealtime against the local server with scripted engines, over a real
WebSocket: typed turns, spoken turns, tool calls, say, interrupt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from realtalk.agent import Agent
from realtalk.media.frame import AudioFrame
from realtalk.media.wav import iter_frames, read_wav
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from realtalk.session import AgentSession
from realtalk.tools import function_tool
from realtalk.transports.base import Transport, agent_audio
from tests.conftest import make_engines, make_speech_wav

TIMEOUT_S = 20.0


class Speaker(Transport):
    """Takes the agent's audio like a speaker would (paced or not) and counts it."""

    def __init__(self, *, realtime: bool = False) -> None:
        self.realtime = realtime
        self.played_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def attach(self, session: AgentSession) -> None:
        self.session = session
        self._task = asyncio.get_running_loop().create_task(self._play())

    async def _play(self) -> None:
        assert self.session is not None
        async for frame in agent_audio(self.session.audio_output, realtime=self.realtime):
            self.played_ms += frame.duration_ms

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Events:
    """Every event of a session, and a way to wait for a condition on them."""

    def __init__(self, session: AgentSession) -> None:
        self.log: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        for name in (
            "user_state_changed",
            "agent_state_changed",
            "transcription",
            "function_call",
            "metrics",
            "error",
            "closed",
        ):
            session.on(name, lambda payload, name=name: self._add(name, payload))

    def _add(self, name: str, payload: Any) -> None:
        self.log.append((name, payload))
        self._changed.set()

    def of(self, name: str) -> list[Any]:
        return [payload for event, payload in self.log if event == name]

    def finals(self, role: str) -> list[str]:
        return [p["text"] for p in self.of("transcription") if p["is_final"] and p["role"] == role]

    def states(self) -> list[str]:
        return [p["state"] for p in self.of("agent_state_changed")]

    async def wait(self, condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


class Clock(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You tell the time.")

    @function_tool
    async def get_time(self, timezone: str = "UTC") -> str:
        """The current time.

        Args:
            timezone: An IANA time zone.
        """
        return f"noon in {timezone}"


@pytest.fixture
async def running(
    scripted_server: LocalServer,
) -> AsyncIterator[Callable[..., Any]]:
    """Start sessions on the scripted server; all are closed at the end."""
    sessions: list[AgentSession] = []

    async def start(
        agent: Agent | None = None, speaker: Speaker | None = None
    ) -> tuple[AgentSession, Events, Speaker]:
        model = OpenAIRealtime(model="gpt-realtime", base_url=scripted_server.base_url)
        session = AgentSession(agent=agent or Agent(instructions="Be brief."), model=model)
        events = Events(session)
        speaker = speaker or Speaker()
        sessions.append(session)
        await session.start(speaker)
        return session, events, speaker

    yield start
    for session in sessions:
        await session.close()


async def test_a_typed_turn_gives_the_agent_transcript_audio_and_metrics(
    running: Callable[..., Any],
) -> None:
    # A paced speaker, as a person hears it: the answer outlasts the response that produced it.
    session, events, speaker = await running(speaker=Speaker(realtime=True))
    await session.send_text("hello there")
    await events.wait(lambda: bool(events.of("metrics")) and session.agent_state == "listening")

    assert events.finals("agent") == ["You said: hello there."]
    assert speaker.played_ms > 0
    [metrics] = events.of("metrics")
    assert metrics["usage"]["output_tokens"] > 0
    assert metrics["responses"][0]["status"] == "completed"
    assert session.metrics[0].to_dict() == metrics
    assert events.states() == ["listening", "thinking", "speaking", "listening"]


async def test_a_spoken_turn_moves_both_states_and_measures_latency(
    running: Callable[..., Any], tmp_path: Path
) -> None:
    session, events, _ = await running(speaker=Speaker(realtime=True))
    speech = read_wav(make_speech_wav("What is two plus two?", tmp_path / "q.wav"))
    silence = AudioFrame.silence(20, speech.sample_rate)
    for frame in [*iter_frames(speech, 20, pad=True), *[silence] * 50]:
        await session.push_audio(frame)
    await events.wait(lambda: bool(events.of("metrics")) and session.agent_state == "listening")

    user_states = [p["state"] for p in events.of("user_state_changed")]
    assert user_states == ["speaking", "listening"]
    assert events.states() == ["listening", "thinking", "speaking", "listening"]
    [heard] = events.finals("user")
    assert heard.startswith("(speech")  # the scripted transcriber describes what it heard
    assert events.finals("agent") == [f"You said: {heard}."]
    latency = events.of("metrics")[0]["latency_ms"]
    assert latency is not None and latency > 0


async def test_a_tool_call_is_relayed_and_answered(running: Callable[..., Any]) -> None:
    session, events, _ = await running(Clock())
    await session.send_text('call get_time {"timezone": "Europe/Paris"}')
    await events.wait(lambda: bool(events.of("metrics")) and session.agent_state == "listening")

    assert events.of("function_call") == [
        {
            "name": "get_time",
            "arguments": '{"timezone": "Europe/Paris"}',
            "output": "noon in Europe/Paris",
            "is_error": False,
        }
    ]
    assert events.finals("agent") == ["Tool get_time returned noon in Europe/Paris."]
    assert events.of("metrics")[0]["tool_calls"] == ["get_time"]


async def test_on_enter_greets_before_anything_else(running: Callable[..., Any]) -> None:
    class Greeter(Agent):
        async def on_enter(self) -> None:
            await self.session.say("Welcome!")

    session, events, speaker = await running(Greeter(instructions="Be brief."))
    assert session.agent_state == "thinking"  # start() returned with the greeting on its way
    await events.wait(lambda: bool(events.of("metrics")) and session.agent_state == "listening")
    assert events.finals("agent")  # the scripted voice answers a say with a line of its own
    assert speaker.played_ms > 0
    assert events.finals("user") == []


async def test_interrupt_stops_a_long_answer(tmp_path: Path) -> None:
    # A slow LLM and a paced speaker, so the answer is still playing when we interrupt.
    async with LocalServer(port=0, engines=make_engines(word_delay_s=0.05)) as server:
        model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url)
        session = AgentSession(agent=Agent(instructions="x"), model=model)
        events = Events(session)
        speaker = Speaker(realtime=True)
        await session.start(speaker)
        await session.send_text(" ".join(["word"] * 40))  # about ten seconds of reply
        await events.wait(lambda: session.agent_state == "speaking")
        await session.interrupt()
        await events.wait(lambda: session.agent_state == "listening")
        await session.close()

    assert speaker.played_ms < 5000  # far less than the ten seconds the answer would take
    assert "speaking" in events.states()
    assert events.of("closed") == [{"reason": "closed"}]


async def test_closing_releases_the_connection_and_the_pumps(running: Callable[..., Any]) -> None:
    session, events, speaker = await running()
    await session.close()
    await session.close()
    assert events.of("closed") == [{"reason": "closed"}]
    assert speaker._task is not None and speaker._task.done()
    assert not session.model.connected  # type: ignore[attr-defined]

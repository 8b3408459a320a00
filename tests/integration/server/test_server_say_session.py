"""AgentSession.say against the local server: the agent speaks the exact text with the voice, and
the next reply's LLM sees it as the assistant's words."""

from __future__ import annotations

import asyncio
from typing import Any

from realtalk.agent import Agent
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from realtalk.server.engines.base import ChatMessage
from realtalk.server.engines.scripted import ToneVoice
from realtalk.session import AgentSession
from realtalk.transports.base import Transport, agent_audio
from tests.conftest import make_engines
from tests.unit.server.test_server_connection_responses import RecordingLLM

TEXT = "Hello and welcome. Today we look at three things, one by one. Shall we start?"
TIMEOUT_S = 20.0


class Speaker(Transport):
    """Plays the agent's audio as fast as it comes and counts it."""

    def __init__(self) -> None:
        self.played_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def attach(self, session: AgentSession) -> None:
        self._task = asyncio.get_running_loop().create_task(self._play(session))

    async def _play(self, session: AgentSession) -> None:
        async for frame in agent_audio(session.audio_output, realtime=False):
            self.played_ms += frame.duration_ms

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def test_session_say_speaks_the_exact_text_and_the_next_turn_remembers_it() -> None:
    engines = make_engines()
    llm = RecordingLLM()
    engines.llm = llm
    server = LocalServer(engines=engines, partial_transcripts=False, speculative_transcripts=False)
    async with server:
        model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url)
        session = AgentSession(agent=Agent(instructions="Be brief."), model=model)
        finals: list[str] = []
        metrics: list[Any] = []
        session.on(
            "transcription",
            lambda p: finals.append(p["text"]) if p["is_final"] and p["role"] == "agent" else None,
        )
        session.on("metrics", metrics.append)
        speaker = Speaker()
        await session.start(speaker)
        try:
            await session.say(TEXT)
            await _until(lambda: len(metrics) == 1 and session.agent_state == "listening")
            assert finals == [TEXT]
            assert llm.seen == []  # spoken by the server itself
            assert speaker.played_ms >= ToneVoice().duration_s(TEXT) * 1000 - 20

            await session.send_text("and now?")
            await _until(lambda: len(metrics) == 2 and session.agent_state == "listening")
            (context,) = llm.seen
            spoken = [m for m in context if m.role != "system"]
            assert spoken == [ChatMessage("assistant", TEXT), ChatMessage("user", "and now?")]
            assert finals == [TEXT, "You said: and now."]
        finally:
            await session.close()


async def _until(condition: Any) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await asyncio.sleep(0.01)

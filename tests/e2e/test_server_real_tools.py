"""A tool call through the real local engines (SmolLM2 on llama.cpp): the reply after the call
uses the tool's output in words, and the next, unrelated question gets its own answer.

Before the fix the model saw its own call as the text "(I called get_time with {...}.)" and
repeated it as the answer, and again for the next question. Slow: loads the models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from realtalk.agent import Agent
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from realtalk.session import AgentSession
from realtalk.tools import function_tool
from tests.integration.server.test_server_say_session import Speaker

pytestmark = pytest.mark.slow

TIMEOUT_S = 120.0
LEAKS = ("(I called", "returned", "get_time", "{", "Context:")


class Clock(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a friendly voice assistant. Use get_time.")

    @function_tool
    async def get_time(self, timezone: str = "UTC") -> dict[str, str]:
        """The current time.

        Args:
            timezone: An IANA time zone.
        """
        return {"time": "14:05", "timezone": timezone}


async def test_the_reply_after_a_tool_call_uses_its_output_and_does_not_leak_later() -> None:
    async with LocalServer(engine="local", voice="espeak") as server:
        model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url)
        session = AgentSession(agent=Clock(), model=model)
        answers: list[str] = []
        calls: list[dict[str, object]] = []
        session.on(
            "transcription",
            lambda p: answers.append(p["text"]) if p["is_final"] and p["role"] == "agent" else None,
        )
        session.on("function_call", calls.append)
        await session.start(Speaker())
        try:
            await session.send_text("What time is it?")
            await _until(lambda: len(answers) == 1 and session.agent_state == "listening")
            assert [c["name"] for c in calls] == ["get_time"]
            (answer,) = answers
            assert "14:05" in answer, answer
            assert not any(leak in answer for leak in LEAKS), answer

            await session.send_text("What is the capital of France?")
            await _until(lambda: len(answers) == 2 and session.agent_state == "listening")
            assert len(calls) == 1  # no second call
            second = answers[1]
            assert second.strip() and second != answer
            assert not any(leak in second for leak in (*LEAKS, "14:05")), second
        finally:
            await session.close()


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await asyncio.sleep(0.05)

"""A spoken arithmetic question, answered through the calculator tool on the real local server.

espeak-ng says the question into a WAV file; the files transport plays it to an AgentSession
running the example assistant (its instructions and tools) against ``LocalServer(engine="local")``
(Silero VAD, Whisper tiny.en, the default local LLM). The model must choose ``calculate`` itself
(no keyword router decides for Qwen) and the reply must say the tool's result. Slow: real models.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples.assistant import Assistant
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from realtalk.session import AgentSession
from realtalk.transports.files import FilesTransport
from tests.conftest import make_speech_wav

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


class QuietAssistant(Assistant):
    async def on_enter(self) -> None:  # no greeting: the question is the only turn
        return None


async def test_a_spoken_sum_is_answered_with_the_right_number_through_the_tool(
    tmp_path: Path,
) -> None:
    question = make_speech_wav("What is seventeen times three?", tmp_path / "question.wav")
    transport = FilesTransport([question], start_timeout_s=60.0, turn_timeout_s=240.0)
    async with LocalServer(engine="local", voice="espeak", partial_transcripts=False) as server:
        model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url, api_key=None)
        session = AgentSession(agent=QuietAssistant(), model=model)
        await session.start(transport)
        await session.wait_closed()
    report = transport.report
    assert report is not None and not report["errors"], report
    (turn,) = [t for t in report["turns"] if t.get("input")]
    assert turn.get("error") is None, turn
    calls = turn["function_calls"]
    assert [c["name"] for c in calls] == ["calculate"], calls
    assert calls[0]["output"] == "51" and not calls[0]["is_error"]
    expression = json.loads(calls[0]["arguments"])["expression"]
    assert "17" in expression and "3" in expression
    reply = turn["agent"]
    assert "51" in reply or "fifty-one" in reply.lower().replace(" ", "-"), reply
    assert "tool" not in reply.lower() and "{" not in reply, reply

"""realtalk.testing with real ears: Silero VAD and Whisper hear the Piper-spoken test user, a
rule-following ScriptedLLM answers, and a barge-in is detected by the real VAD (slow: models)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from realtalk.server.engines.base import Engines
from realtalk.server.engines.scripted import ScriptedLLM, ToneVoice
from realtalk.testing import AgentTest

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import assistant  # noqa: E402


def real_ears() -> Engines:
    from realtalk.server.engines.silero import SileroVAD
    from realtalk.server.engines.whisper import WhisperTranscriber

    return Engines(SileroVAD(), WhisperTranscriber(), ScriptedLLM(), ToneVoice(), "ears")


async def test_whisper_hears_the_spoken_question_and_the_rule_calls_the_calculator() -> None:
    async with AgentTest(assistant.Assistant(), engines=real_ears(), timeout_s=60) as t:
        t.when(r"seventeen|17").call("calculate", {"expression": "17 * 3"}).then_say(
            "Seventeen times three is {output}."
        )
        t.when(r"story").say(" ".join(["la"] * 40))
        turn = await t.speak("What is seventeen times three?")
        turn.expect.heard(regex=r"(seventeen|17) times (three|3)")
        turn.expect.next_event().is_function_call(name="calculate")
        turn.expect.next_event().is_function_call_output(contains="51")
        turn.expect.next_event().is_agent_message(contains="51")
        turn.expect.no_more_events()

        await t.speak("Tell me a story.", wait=False)
        cut = await t.speak("What is seventeen times three?", barge_in_ms=800)
        cut.expect.next_event().is_interruption()
        cut.expect.contains_agent_message(contains="51")

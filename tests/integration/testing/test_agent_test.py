"""AgentTest against the real local server (scripted engines) over a real WebSocket: typed,
spoken and WAV turns, barge-in, silence, rules, failures that tell the story, timeouts that say
what they waited for, and nothing left behind."""

from __future__ import annotations

import asyncio
import re
import socket
import wave
from pathlib import Path

import numpy as np
import pytest

from realtalk import Agent, function_tool
from realtalk.handoff import Handoff
from realtalk.media.resample import resample_oneshot
from realtalk.media.wav import write_wav
from realtalk.testing import AgentTest, ExpectationFailed, LeakError, TurnTimeout
from realtalk.testing.audio import speak
from realtalk.testing.leaks import Snapshot

# Spoken turns run at four times real time: the server counts audio, not the clock.
FAST = 4.0


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

    @function_tool
    async def hang(self) -> str:
        """Never returns."""
        await asyncio.Event().wait()
        return "never"


async def test_a_typed_turn_with_a_rule_passes_its_expectations() -> None:
    async with AgentTest(Clock(), speed=FAST) as t:
        assert t.greeting.conversation == []  # no on_enter greeting
        t.when(r"time in paris").call("get_time", {"timezone": "Europe/Paris"}).then_say(
            "It is {output}."
        )
        turn = await t.send_text("What is the time in Paris?")
        turn.expect.next_event().is_function_call(
            name="get_time", arguments={"timezone": "Europe/Paris"}
        )
        turn.expect.next_event().is_function_call_output(contains="noon in Europe/Paris")
        turn.expect.next_event().is_agent_message(contains="It is noon in Europe/Paris.")
        turn.expect.no_more_events()
        assert turn.done and turn.heard == "What is the time in Paris?"
        # Without a matching rule, the scripted engine's defaults still answer.
        other = await t.send_text("good morning")
        other.expect.next_event().is_agent_message(contains="You said: good morning.")
        other.expect.within_budget(latency_ms=60_000, tokens=10_000, cost_usd=1.0)
        assert other.spoken_ms > 0


async def test_a_test_meant_to_fail_shows_the_story() -> None:
    async with AgentTest(Clock(), speed=FAST) as t:
        t.when("paris").call("get_time", {"timezone": "Europe/Paris"}).then_say("It is {output}.")
        turn = await t.send_text("time in Paris please")
        with pytest.raises(ExpectationFailed) as failure:
            turn.expect.next_event().is_agent_message(contains="London")
    message = str(failure.value)
    assert "Expected: next_event().is_agent_message(contains='London')" in message
    assert 'Got: function_call get_time({"timezone": "Europe/Paris"})' in message
    assert "What happened in turn 1: send_text('time in Paris please'):" in message
    assert re.search(r"-->\s+\d+\.\d\ds  function_call get_time", message)
    assert "function_call_output get_time -> 'noon in Europe/Paris'" in message
    assert "agent: 'It is noon in Europe/Paris.'" in message
    assert "agent started speaking" in message and "turn metrics: latency" in message
    assert "(heard: 'time in Paris please'; latency: " in message


async def test_a_turn_that_times_out_says_what_it_waited_for_and_what_happened() -> None:
    with pytest.raises(TurnTimeout) as failure:
        async with AgentTest(Clock(), timeout_s=1.5) as t:
            await t.send_text("call hang")  # the scripted engine's built-in "call <tool>" rule
    message = str(failure.value)
    assert "Expected: the agent to finish its answer" in message
    assert "Got: still waiting after 1.5 s; the agent is thinking" in message
    assert ">>> turn 1: send_text('call hang')" in message
    assert "agent state -> thinking" in message
    assert "the turn had not finished" in message


async def test_a_barge_in_that_cannot_happen_says_why() -> None:
    with pytest.raises(TurnTimeout) as failure:
        async with AgentTest(Clock(), timeout_s=1.0) as t:
            await t.send_text("stop", barge_in_ms=500)
    message = str(failure.value)
    assert "Expected: to barge in (turn 1: send_text('stop')) 500 ms after the agent" in message
    assert "the agent had not started talking" in message


async def test_barge_in_cuts_the_reply_at_the_chosen_moment() -> None:
    async with AgentTest(Clock(), speed=FAST) as t:
        t.when("story").say(" ".join(["word"] * 40))  # ten seconds of tone voice
        story = await t.send_text("tell me a story", wait=False)
        cut = await t.send_text("stop please", barge_in_ms=600)
        cut.expect.next_event().is_interruption()
        cut.expect.next_event().is_agent_message(contains="You said: stop please.")
        cut.expect.no_more_events()
        [interruption] = [e for e in cut.events if e.type == "interruption"]
        assert 600 <= interruption.data["played_ms"] < 10_000
        assert not story.done  # cut short by the next input
        story.expect.next_event().is_agent_message(contains="word word")


async def test_spoken_and_wav_turns_reach_the_server_as_audio(tmp_path: Path) -> None:
    # A CD-style recording: 44.1 kHz stereo, which the harness converts to 24 kHz mono.
    stereo = tmp_path / "question.wav"
    mono = resample_oneshot(speak("what time is it").to_array(), 24000, 44100)
    write_wav(stereo, np.stack([mono, mono], axis=1).astype(np.int16), 44100)
    async with AgentTest(Clock(), speed=FAST) as t:
        spoken = await t.speak("hello there")
        spoken.expect.heard(contains="hello there")
        spoken.expect.next_event().is_agent_message(contains="You said: hello there.")
        assert [e.type for e in spoken.events].count("user_started_speaking") == 1

        from_file = await t.play_wav(stereo, transcript="from a file")
        from_file.expect.next_event().is_agent_message(contains="You said: from a file.")
        # Without a transcript the scripted transcriber describes the audio it received.
        described = await t.play_wav(stereo)
        described.expect.heard(regex=r"^\(speech \d+\.\d s\)$")

        quiet = await t.silence(400)
        quiet.expect.no_more_events()


def _raw_wav(path: Path, rate: int, channels: int, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * channels * int(rate * seconds)))
    return path


async def test_wavs_of_other_formats_are_converted_or_refused_clearly(tmp_path: Path) -> None:
    from realtalk.testing import WavInputError, load_wav

    converted = load_wav(_raw_wav(tmp_path / "three.wav", 8000, 3, 0.5))
    assert (converted.sample_rate, converted.num_channels) == (24000, 1)
    assert converted.duration_ms == pytest.approx(500, abs=1)

    with pytest.raises(WavInputError, match=r"missing\.wav: no such file"):
        load_wav(tmp_path / "missing.wav")
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(WavInputError, match=r"notes\.wav: cannot be used as speech: .*RIFF/WAVE"):
        load_wav(text)
    with pytest.raises(WavInputError, match=r"4000 Hz is outside 8000\.\.192000 Hz"):
        load_wav(_raw_wav(tmp_path / "slow.wav", 4000, 1, 0.5))
    with pytest.raises(WavInputError, match=r"holds 50 ms of audio; a user turn needs at least"):
        load_wav(_raw_wav(tmp_path / "short.wav", 16000, 1, 0.05))
    with pytest.raises(WavInputError, match=r"lasts 2\.0 s, longer than the 1 s"):
        load_wav(_raw_wav(tmp_path / "long.wav", 16000, 1, 2.0), max_seconds=1)
    # Refused before anything is sent: the conversation is untouched.
    async with AgentTest(Clock(), speed=FAST) as t:
        with pytest.raises(WavInputError):
            await t.play_wav(text)
        assert t.turns == []


async def test_nothing_is_left_behind_between_tests() -> None:
    before = Snapshot.take()
    for _ in range(2):
        async with AgentTest(Clock(), speed=FAST) as t:
            await t.send_text("hello")
            assert t.server is not None and t.server.open_sessions == 1
        assert t.server.open_sessions == 0
        assert t.session is not None and t.session.closed
    assert await before.leaks(grace_s=2.0) == []


class Leaky(Agent):
    """An agent that forgets a task and a socket."""

    async def on_enter(self) -> None:
        self.task = asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="forgotten")
        self.sock = socket.socket()


async def test_a_leaking_agent_fails_with_what_it_left_behind() -> None:
    agent = Leaky(instructions="x")
    t = AgentTest(agent, speed=FAST)
    t.leak_grace_s = 0.3
    await t.start()
    try:
        with pytest.raises(LeakError) as failure:
            await t.aclose()
    finally:
        agent.task.cancel()
        agent.sock.close()
    message = str(failure.value)
    assert "the test left things behind:" in message
    assert "task 'forgotten' still running" in message
    assert "1 socket(s) still open: socket:[" in message
    assert "The whole conversation:" in message


async def test_bad_options_are_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="backend 'openai' needs OPENAI_API_KEY"):
        AgentTest(Clock(), backend="openai")
    with pytest.raises(ValueError, match="unknown backend 'cloud'"):
        AgentTest(Clock(), backend="cloud")
    with pytest.raises(ValueError, match=r"speed must be between 0\.25 and 20"):
        AgentTest(Clock(), speed=100)
    with pytest.raises(ValueError, match="not a regex"):
        AgentTest(Clock()).when("(")


async def test_a_greeting_that_never_ends_releases_the_server() -> None:
    class Stuck(Clock):
        async def on_enter(self) -> None:
            await self.session.send_text("call hang")

    test = AgentTest(Stuck(), timeout_s=1.0)
    with pytest.raises(TurnTimeout, match="Expected: the greeting to end"):
        async with test:
            pass
    assert test.server is not None and test.server.open_sessions == 0
    assert test.session is not None and test.session.closed


async def test_a_handoff_is_an_event_of_the_turn() -> None:
    class Booking(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="You book appointments.")

    class FrontDesk(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="You greet callers.")

        @function_tool
        async def transfer_to_booking(self) -> Handoff:
            """Hand the caller to the booking desk."""
            return Handoff(Booking(), message="Booking desk here. Which day?")

    async with AgentTest(FrontDesk(), speed=FAST) as t:
        t.when("appointment").call("transfer_to_booking")
        turn = await t.send_text("I would like an appointment")
        turn.expect.contains_handoff(to="Booking").is_handoff(from_agent="FrontDesk")
        turn.expect.contains_function_call(name="transfer_to_booking")
        turn.expect.contains_agent_message(contains="Booking desk here. Which day?")
        assert t.session is not None and type(t.session.agent).__name__ == "Booking"

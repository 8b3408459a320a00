"""ConsoleTransport in text mode against the scripted local server (no audio device needed)."""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtalk.agent import Agent
from realtalk.media.resample import resample_oneshot
from realtalk.media.wav import read_wav
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from realtalk.session import AgentSession
from realtalk.transports.console import ConsoleTransport, audio_unavailable_reason
from tests.conftest import make_speech_wav


class Greeter(Agent):
    async def on_enter(self) -> None:
        await self.session.say("Hello!")

    async def on_exit(self) -> None:
        print("[on_exit ran]", file=self.console)

    console: io.StringIO


async def chat(server: LocalServer, lines: str, agent: Agent | None = None) -> str:
    out = io.StringIO()
    transport = ConsoleTransport(audio=False, stdin=io.StringIO(lines), stdout=out)
    model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url)
    session = AgentSession(agent=agent or Agent(instructions="Be brief."), model=model)
    await session.start(transport)
    await asyncio.wait_for(session.wait_closed(), 20)  # end of input ends the conversation
    return out.getvalue()


async def test_a_typed_line_is_answered_and_end_of_input_closes(
    scripted_server: LocalServer,
) -> None:
    printed = await chat(scripted_server, "hello there\n")
    lines = printed.splitlines()
    assert lines[0].startswith("Text mode")
    assert "agent: You said: hello there." in lines
    assert printed.index("Text mode") < printed.index("agent: You said")


async def test_quit_ends_after_the_greeting_and_on_exit_runs(
    scripted_server: LocalServer,
) -> None:
    agent = Greeter(instructions="Be brief.")
    agent.console = io.StringIO()
    printed = await chat(scripted_server, "/quit\nnever sent\n", agent)
    assert "never sent" not in printed
    assert [line for line in printed.splitlines() if line.startswith("agent:")]  # the greeting
    assert agent.console.getvalue() == "[on_exit ran]\n"


async def test_tool_calls_are_shown(scripted_server: LocalServer) -> None:
    class Clock(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="x", tools=[self.now])

        async def now(self) -> str:
            """The time now."""
            return "noon"

    printed = await chat(scripted_server, "call now\n", Clock())
    assert "[tool now({}) -> noon]" in printed
    assert "agent: Tool now returned noon." in printed


def test_voice_mode_falls_back_to_text_and_says_why() -> None:
    reason = audio_unavailable_reason()
    if reason is None:
        pytest.skip("this machine has a microphone and a speaker")
    out = io.StringIO()
    transport = ConsoleTransport(stdin=io.StringIO(""), stdout=out)
    assert transport.audio is False
    assert out.getvalue() == f"Voice mode unavailable: {reason}. Using text mode.\n"
    with pytest.raises(RuntimeError, match="unavailable"):
        ConsoleTransport(audio=True, stdin=io.StringIO(""), stdout=out)


class FakeStream:
    """A sounddevice stream whose device thread runs the callback every 20 ms."""

    def __init__(self, kind: str, rate: int, callback: Any, source: np.ndarray | None) -> None:
        self.kind, self.rate, self.callback, self.source = kind, rate, callback, source
        self.block = rate // 50
        self.played: list[np.ndarray] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        position = 0
        while not self._stop.wait(0.02):
            if self.kind == "input":
                assert self.source is not None
                chunk = self.source[position : position + self.block]
                position += self.block
                if chunk.size < self.block:
                    chunk = np.zeros(self.block, np.int16)  # the room is quiet after that
                self.callback(chunk.tobytes(), self.block, None, None)
            else:
                out = np.full((self.block, 1), 12345, np.int16)  # garbage: must be overwritten
                self.callback(out, self.block, None, None)
                self.played.append(out[:, 0].copy())


def fake_sounddevice(speech: np.ndarray, rate: int) -> tuple[types.ModuleType, list[FakeStream]]:
    streams: list[FakeStream] = []
    module = types.ModuleType("sounddevice")

    def query_devices(device: Any = None, kind: str | None = None) -> dict[str, Any]:
        return {"name": f"fake {kind}", "default_samplerate": float(rate)}

    def raw_input_stream(**options: Any) -> FakeStream:
        assert (options["channels"], options["dtype"]) == (1, "int16")
        streams.append(FakeStream("input", options["samplerate"], options["callback"], speech))
        return streams[-1]

    def output_stream(**options: Any) -> FakeStream:
        streams.append(FakeStream("output", options["samplerate"], options["callback"], None))
        return streams[-1]

    module.query_devices = query_devices  # type: ignore[attr-defined]
    module.RawInputStream = raw_input_stream  # type: ignore[attr-defined]
    module.OutputStream = output_stream  # type: ignore[attr-defined]
    return module, streams


async def test_voice_mode_hears_the_microphone_and_plays_the_answer(
    scripted_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Voice mode with a stand-in sounddevice: a 48 kHz microphone and speaker on their own
    threads, as PortAudio runs them."""
    speech = read_wav(make_speech_wav("What is the weather like?", tmp_path / "q.wav"))
    at_48k = np.asarray(resample_oneshot(speech.to_array(), speech.sample_rate, 48000), np.int16)
    module, streams = fake_sounddevice(at_48k, 48000)
    monkeypatch.setitem(sys.modules, "sounddevice", module)

    out = io.StringIO()
    transport = ConsoleTransport(stdin=io.StringIO(), stdout=out)  # no typing: EOF at once
    assert transport.audio is True
    model = OpenAIRealtime(model="gpt-realtime", base_url=scripted_server.base_url)
    session = AgentSession(agent=Agent(instructions="x"), model=model)
    heard: list[str] = []
    session.on("metrics", lambda payload: heard.append("turn"))
    await session.start(transport)
    async with asyncio.timeout(20):
        while not heard or session.agent_state != "listening":
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # stdin ended long ago: voice mode must not have closed
    assert not session.closed
    await session.close()

    printed = out.getvalue()
    assert printed.startswith("Voice mode")
    assert "you: (speech" in printed and "agent: You said: (speech" in printed
    assert heard == ["turn"]
    speaker = next(s for s in streams if s.kind == "output")
    played = np.concatenate(speaker.played)
    assert np.abs(played).max() > 1000  # the answer's audio reached the speaker
    assert not np.any(played == 12345)  # every sample written, silence where nothing played
    assert all(s._stop.is_set() for s in streams)  # devices released at close

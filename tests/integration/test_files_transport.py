"""FilesTransport against the scripted local server: WAVs in, a reply WAV and a JSON report out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from realtalk.agent import Agent
from realtalk.media.frame import AudioFrame
from realtalk.media.resample import resample_oneshot
from realtalk.media.wav import read_wav, write_wav
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from realtalk.session import AgentSession
from realtalk.transports.files import FilesTransport
from tests.conftest import make_speech_wav


class Greeter(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="Be brief.")

    async def on_enter(self) -> None:
        await self.session.say("Hello, ask me anything.")


async def converse(server: LocalServer, transport: FilesTransport, agent: Agent) -> dict:
    model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url)
    session = AgentSession(agent=agent, model=model)
    await session.start(transport)
    await asyncio.wait_for(session.wait_closed(), 30)  # the transport closes it when done
    assert transport.report is not None
    return transport.report


async def test_a_spoken_question_gets_a_recorded_answer(
    scripted_server: LocalServer, tmp_path: Path
) -> None:
    question = make_speech_wav("What time is it?", tmp_path / "q.wav")
    output = tmp_path / "out" / "reply.wav"
    report = await converse(
        scripted_server, FilesTransport([question], output), Agent(instructions="Be brief.")
    )

    reply = read_wav(output)
    assert (reply.sample_rate, reply.num_channels) == (24000, 1)
    assert reply.duration_ms > 500
    assert np.abs(reply.to_array()).max() > 1000  # real audio, not silence

    on_disk = json.loads(output.with_suffix(".json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    [turn] = on_disk["turns"]
    assert turn["input"] == str(question)
    assert turn["user"].startswith("(speech")
    assert turn["agent"] == f"You said: {turn['user']}."
    assert turn["error"] is None
    assert turn["metrics"] and turn["metrics"][0]["latency_ms"] > 0
    assert turn["agent_audio_ms"] == pytest.approx(reply.duration_ms, abs=1)


async def test_inputs_of_any_format_are_answered_in_order_after_the_greeting(
    scripted_server: LocalServer, tmp_path: Path
) -> None:
    speech = read_wav(make_speech_wav("Tell me a joke.", tmp_path / "joke.wav"))
    mono = speech.to_array()
    # The same words at 16 kHz mono and at 48 kHz stereo; a short one at 8 kHz.
    low = tmp_path / "low.wav"
    write_wav(low, np.asarray(resample_oneshot(mono, speech.sample_rate, 16000), np.int16), 16000)
    high = np.asarray(resample_oneshot(mono, speech.sample_rate, 48000), np.int16)
    stereo = tmp_path / "stereo.wav"
    write_wav(stereo, AudioFrame.from_array(np.stack([high, high // 2], axis=1), 48000))
    phone = tmp_path / "phone.wav"
    write_wav(
        phone,
        np.asarray(resample_oneshot(mono[: len(mono) // 2], speech.sample_rate, 8000), np.int16),
        8000,
    )

    inputs = [low, stereo, phone]
    report = await converse(
        scripted_server, FilesTransport(inputs, tmp_path / "reply.wav"), Greeter()
    )

    greeting, *answers = report["turns"]
    assert greeting["input"] is None and greeting["agent"] and not greeting["user"]
    assert [turn["input"] for turn in answers] == [str(p) for p in inputs]
    for turn in answers:
        assert turn["error"] is None
        assert turn["user"].startswith("(speech")
        assert turn["agent"] == f"You said: {turn['user']}."
        assert turn["agent_audio_ms"] > 0
        assert not any(m["interrupted"] for m in turn["metrics"])  # nobody barged in
    # The half-length file was heard as a shorter utterance than the full ones.
    durations = [float(turn["user"].split()[1]) for turn in answers]
    assert durations[2] < durations[0]
    assert report["errors"] == []


async def test_silence_gets_no_answer_and_the_run_still_ends(tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    write_wav(silent, AudioFrame.silence(1000, 16000))
    from tests.conftest import make_engines

    async with LocalServer(port=0, engines=make_engines()) as server:
        transport = FilesTransport([silent], tmp_path / "reply.wav", start_timeout_s=1.0)
        report = await converse(server, transport, Agent(instructions="x"))
    [turn] = report["turns"]
    assert "no reply" in turn["error"]
    assert read_wav(tmp_path / "reply.wav").samples_per_channel == 0


def test_bad_inputs_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        FilesTransport([])
    with pytest.raises(ValueError, match="does not exist"):
        FilesTransport([tmp_path / "missing.wav"])
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio")
    with pytest.raises(ValueError, match="not a readable WAV"):
        FilesTransport([junk])
    empty = tmp_path / "empty.wav"
    write_wav(empty, b"", 16000)
    with pytest.raises(ValueError, match="no audio"):
        FilesTransport([empty])

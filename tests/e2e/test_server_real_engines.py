"""The local server with the REAL offline engines, driven by the official SDK in real time.

A question spoken by Piper is streamed in 20 ms chunks at real-time pace; Silero ends the turn,
Whisper writes it down, SmolLM2 answers, Piper speaks the answer. Prints the voice-to-voice
latency (end of the user's speech in the audio -> first audio delta received) and the server's
own share of it. Slow: loads the models and runs them on the CPU.
"""

from __future__ import annotations

import asyncio
import base64
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from realtalk.protocol import events as ev
from realtalk.server import LocalServer
from realtalk.server.engines import Engines, load_engines
from tests.conftest import read_wav_pcm24k
from tests.integration.server.conftest import sdk_client

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"
CHUNK_MS = 20


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference length (case and punctuation ignored)."""

    def words(text: str) -> list[str]:
        return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()

    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hyp)] / max(len(ref), 1)


def test_word_error_rate() -> None:
    assert word_error_rate("What is it?", "what is it") == 0.0
    assert word_error_rate("a b c d e", "a x c d") == 0.4


@pytest.fixture(scope="module")
def engines() -> Engines:
    return load_engines("local", voice="piper", progress=print)


@pytest.fixture(scope="module")
def question_wav(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The question as Piper says it, written to a WAV at the voice's own rate."""
    pcm = np.concatenate(list(engines.voice.synthesize(QUESTION))).astype("<i2")
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(engines.voice.sample_rate)
        wav.writeframes(pcm.tobytes())
    return path


def speech_end_ms(pcm24k: bytes) -> float:
    """Where the last audible sample is (the end of the user's speech), in ms."""
    samples = np.abs(np.frombuffer(pcm24k, dtype="<i2").astype(np.int32))
    loud = np.nonzero(samples > 500)[0]
    return float(loud[-1]) / 24 if loud.size else 0.0


async def test_a_spoken_question_gets_a_spoken_answer(engines: Engines, question_wav: Path) -> None:
    lead = bytes(48 * 500)
    question = read_wav_pcm24k(question_wav)
    audio = lead + question + bytes(48 * 2000)
    end_of_speech_ms = 500 + speech_end_ms(question)
    async with LocalServer(port=0, engines=engines) as server, sdk_client(server) as client:
        await client.send(
            ev.session_update(
                {
                    "instructions": "You are a helpful assistant. Answer in one short sentence.",
                    "audio": {"input": {"transcription": {"model": "whisper-1"}}},
                }
            )
        )
        await client.until("session.updated")
        first_audio_at: list[float] = []
        sent_speech_end_at: list[float] = []

        async def listen() -> dict:
            while True:
                event = await client.recv(timeout=120)
                if event["type"] == "response.output_audio.delta" and not first_audio_at:
                    first_audio_at.append(time.perf_counter())
                if event["type"] == "response.done":
                    return event

        listener = asyncio.create_task(listen())
        step = 48 * CHUNK_MS
        start = time.perf_counter()
        for n, i in enumerate(range(0, len(audio), step)):
            if listener.done():
                break
            await client.send(
                ev.input_audio_buffer_append(base64.b64encode(audio[i : i + step]).decode())
            )
            if not sent_speech_end_at and (i + step) / 48 >= end_of_speech_ms:
                sent_speech_end_at.append(time.perf_counter())
            await asyncio.sleep(max(0.0, start + (n + 1) * CHUNK_MS / 1000 - time.perf_counter()))
        done = await asyncio.wait_for(listener, 120)

    completed = client.of("conversation.item.input_audio_transcription.completed")
    assert completed, client.types()
    heard = completed[0]["transcript"]
    assert word_error_rate(QUESTION, heard) <= 0.2, heard
    response = done["response"]
    assert response["status"] == "completed"
    answer = response["output"][0]["content"][0]["transcript"]
    assert answer.strip()
    spoken = b"".join(
        base64.b64decode(e["delta"]) for e in client.of("response.output_audio.delta")
    )
    assert len(spoken) / 48 > 500  # at least half a second of answer
    assert np.abs(np.frombuffer(spoken, dtype="<i2")).max() > 3000  # speech, not silence
    stopped = client.of("input_audio_buffer.speech_stopped")[0]
    assert abs(stopped["audio_end_ms"] - end_of_speech_ms) < 400
    latency_ms = (first_audio_at[0] - sent_speech_end_at[0]) * 1000
    print(
        f"\nvoice-to-voice latency: {latency_ms:.0f} ms from the end of speech to the first "
        f"audio delta (VAD silence wait included); heard {heard!r}; answered {answer!r}"
    )

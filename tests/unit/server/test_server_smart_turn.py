"""semantic_vad with an end-of-turn model: a finished sentence ends the turn early, an unfinished
one waits for the longest silence (a fake model stands in for Smart Turn)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from realtalk.protocol import events as ev
from realtalk.server.engines.scripted import ScriptedTranscriber
from realtalk.server.turns import SMART_EAGERNESS
from tests.conftest import make_engines
from tests.unit.server.conftest import Harness, silence, tone_speech

SEMANTIC = {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "medium"}}}}


class FakeEndOfTurn:
    def __init__(self, probability: float) -> None:
        self.value = probability
        self.heard_s: list[float] = []
        self.asked = asyncio.Event()

    def probability(self, pcm16k: np.ndarray) -> float:
        assert pcm16k.dtype == np.float32
        self.heard_s.append(pcm16k.size / 16000)
        self.asked.set()
        return self.value


async def _harness(model: FakeEndOfTurn | None, **options: object) -> Harness:
    engines = make_engines()
    engines.end_of_turn = model
    h = Harness(engines, **options)
    await h.send(ev.session_update(SEMANTIC))
    return h


@pytest.fixture
async def finished() -> AsyncIterator[tuple[Harness, FakeEndOfTurn]]:
    model = FakeEndOfTurn(0.95)
    h = await _harness(model)
    yield h, model
    await h.connection.aclose()


async def test_a_finished_sentence_ends_the_turn_soon_after_the_pause(
    finished: tuple[Harness, FakeEndOfTurn],
) -> None:
    h, model = finished
    await h.append(silence(300) + tone_speech("one two three four"), chunk_ms=20)
    await h.append(silence(300), chunk_ms=20)  # past the shortest pause (192 ms), well short of 800
    await asyncio.wait_for(model.asked.wait(), 10)
    stopped = await h.wait_for("input_audio_buffer.speech_stopped")
    assert model.heard_s and model.heard_s[0] >= 1.0  # the whole utterance so far
    await h.wait_for("response.done")
    # the end of speech is where the pause began, on the audio clock
    assert 1250 <= stopped["audio_end_ms"] <= 1400


async def test_an_unfinished_sentence_waits_for_more_speech() -> None:
    model = FakeEndOfTurn(0.05)
    h = await _harness(model)
    try:
        await h.append(silence(300) + tone_speech("one two three"), chunk_ms=20)
        await h.append(silence(400), chunk_ms=20)
        await asyncio.wait_for(model.asked.wait(), 10)
        await asyncio.sleep(0.05)  # let the answer land
        assert h.of("input_audio_buffer.speech_stopped") == []
        # the user goes on: still one turn
        await h.append(tone_speech("four five") + silence(300), chunk_ms=20)
        assert h.of("input_audio_buffer.speech_stopped") == []
        await h.append(silence(SMART_EAGERNESS["medium"][2]), chunk_ms=20)  # the longest wait
        await h.wait_for("input_audio_buffer.speech_stopped")
        assert len(h.of("input_audio_buffer.speech_started")) == 1
        for _ in range(1000):  # the second answer may still be on its way (a thread)
            if len(model.heard_s) >= 2:
                break
            await asyncio.sleep(0.01)
        assert len(model.heard_s) == 2  # asked once per pause
    finally:
        await h.connection.aclose()


async def test_without_the_model_semantic_vad_ends_turns_on_silence_alone() -> None:
    model = FakeEndOfTurn(0.95)
    h = await _harness(model, smart_turn=False)
    try:
        await h.append(silence(300) + tone_speech("one two three") + silence(900), chunk_ms=20)
        await h.wait_for("input_audio_buffer.speech_stopped")
        assert model.heard_s == []
    finally:
        await h.connection.aclose()


@pytest.mark.parametrize(("heard", "ends_after_ms"), [("Is it raining?", 400), ("It is", 800)])
async def test_words_ending_in_a_question_mark_halve_the_unfinished_wait(
    heard: str, ends_after_ms: int
) -> None:
    """Smart Turn says "unfinished"; the speculative transcript of the pause decides between
    the question's wait (400 ms at medium) and the unfinished one (800 ms)."""
    model = FakeEndOfTurn(0.05)
    h = await _harness(model, speculative_transcripts=True)
    transcriber = h.connection.engines.transcriber
    assert isinstance(transcriber, ScriptedTranscriber)
    try:
        for _ in range(50):  # what every transcription hears (the gaps between words too)
            transcriber.set_next(heard)
        await h.append(silence(300) + tone_speech("one two three"), chunk_ms=20)
        await h.append(silence(600), chunk_ms=20)
        await asyncio.wait_for(model.asked.wait(), 10)
        if ends_after_ms < 600:  # ends as the answer lands: the pause is long enough already
            await h.wait_for("input_audio_buffer.speech_stopped")
        else:
            await asyncio.sleep(0.2)
            assert h.of("input_audio_buffer.speech_stopped") == []
            await h.append(silence(300), chunk_ms=20)
            await h.wait_for("input_audio_buffer.speech_stopped")
        await h.wait_for("response.done")  # the reply answers those very words
        said = "".join(d["delta"] for d in h.of("response.output_audio_transcript.delta"))
        assert heard.rstrip("?") in said
    finally:
        await h.connection.aclose()

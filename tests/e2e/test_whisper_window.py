"""Whisper in a short encoder window writes down what the full 30 s window does, and hears
nothing in silence. Slow: loads Whisper and Piper."""

from __future__ import annotations

import numpy as np
import pytest

from realtalk.media.resample import resample_oneshot
from realtalk.server.engines import Engines, load_engines
from realtalk.testing.audio import speak
from tests.e2e.test_server_real_engines import word_error_rate

pytestmark = pytest.mark.slow

SENTENCES = [
    "What is the capital of France?",
    "Can you recommend a good book?",
    "Tell me a fun fact about cats.",
    "Why is the sky blue?",
    "Could you please explain how a rainbow forms after the rain, and why we always see the "
    "colors in the same order?",
]


@pytest.fixture(scope="module")
def engines() -> Engines:
    return load_engines("local", voice="piper")


def spoken(text: str) -> np.ndarray:
    # The test user's voice: Piper, the same samples every run, so a failure is a real one.
    frame = speak(text)
    at16k = np.asarray(resample_oneshot(frame.to_array(), frame.sample_rate, 16000), np.float32)
    pad = np.zeros(4800, np.float32)
    return np.concatenate([pad, at16k / 32768, pad])


def test_the_short_window_is_as_accurate_as_the_full_one(engines: Engines) -> None:
    whisper = engines.transcriber
    full = getattr(whisper, "_full", None)
    if full is None:
        pytest.skip("not the Whisper transcriber")
    short_errors, full_errors = [], []
    for text in SENTENCES:
        pcm = spoken(text)
        short_errors.append(word_error_rate(text, whisper.transcribe(pcm).text))
        full_errors.append(word_error_rate(text, full(pcm)))
    assert np.mean(short_errors) <= np.mean(full_errors) + 0.05, (short_errors, full_errors)
    assert max(short_errors) <= 0.25, short_errors


def test_silence_and_faint_noise_are_no_words(engines: Engines) -> None:
    noise = np.random.default_rng(0).normal(0, 0.001, 16000).astype(np.float32)
    assert engines.transcriber.transcribe(noise).text == ""
    assert engines.transcriber.transcribe(np.zeros(32000, np.float32)).text == ""


#: ~35 s of speech with no sentence said twice: Whisper's long-form decoding drops repeated text
#: at its 30 s seam (the same three sentences said three times came back with a third missing).
LONG = (
    "Last summer my sister and I rented a small boat on the lake near our grandparents' farm. "
    "The morning was calm, and we rowed past the old mill toward a tiny island covered with "
    "pine trees. We packed sandwiches, apples, lemonade and a thermos of hot tea. Around noon "
    "dark clouds rolled in from the west, so we turned back and rowed as fast as we could. "
    "Thunder followed us across the water, but we reached the dock just before the heavy rain. "
    "Grandmother laughed when she saw us soaked and handed us warm towels and two bowls of soup. "
    "That evening we played cards by the fireplace while the storm rattled every window."
)


def _words(text: str) -> set[str]:
    return set("".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split())


def test_an_utterance_longer_than_the_window_still_works(engines: Engines) -> None:
    pcm = spoken(LONG)
    assert pcm.size > 30 * 16000  # faster-whisper's own long-form path
    heard = engines.transcriber.transcribe(pcm).text
    # The whole utterance is heard, its end (past the 30 s seam) included; a word or two at the
    # seam may go missing, so the check is on the distinct words recalled, not on their order.
    recalled = len(_words(LONG) & _words(heard)) / len(_words(LONG))
    assert recalled >= 0.8, (recalled, word_error_rate(LONG, heard), heard)
    assert {"evening", "storm", "rattled", "window"} <= _words(heard), heard  # the last sentence


#: Names tiny.en does not know: heard as other words unless the session's prompt spells them.
NAMES = [
    ("Please send the report to Siobhan.", "Siobhan"),
    ("Tell Saoirse the meeting moved.", "Saoirse"),
]


def test_the_sessions_prompt_spells_names_whisper_does_not_know(engines: Engines) -> None:
    whisper = engines.transcriber
    for text, name in NAMES:
        pcm = spoken(text)
        assert name not in whisper.transcribe(pcm).text
        assert name in whisper.transcribe(pcm, f"Colleagues: {name}.").text
    # Only the prompt's end is read: a name after a huge prompt still counts, and costs no more.
    huge = "Notes from the meeting. " * 20_000 + "Colleagues: Siobhan."
    assert "Siobhan" in whisper.transcribe(spoken(NAMES[0][0]), huge).text
    # faster-whisper's own path, for utterances longer than 30 s, takes it for the first 30 s
    long = spoken(NAMES[0][0] + " " + LONG)
    assert "Siobhan" in whisper.transcribe(long, "Colleagues: Siobhan.").text

"""Piper's padding is trimmed: little quiet before a text's first sound, and a piece that ends
mid-sentence stops soon after its last; a whole sentence keeps its pause (a fake Piper model
renders a tone between stretches of quiet, so no model file is needed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtalk.server.engines.piper import PiperVoice

RATE = 22050


@dataclass
class Chunk:
    audio_int16_array: np.ndarray
    sample_rate: int = RATE


class PaddedModel:
    """Renders each sentence as 50 ms of quiet, 300 ms of tone and 200 ms of quiet."""

    def synthesize(self, text: str, syn_config: Any = None) -> Iterator[Chunk]:
        t = np.arange(int(0.3 * RATE)) / RATE
        tone = (np.sin(2 * np.pi * 220 * t) * 20000).astype(np.int16)
        quiet = np.zeros(int(0.05 * RATE), np.int16)
        hiss = (np.random.default_rng(0).normal(0, 30, int(0.2 * RATE))).astype(np.int16)
        yield Chunk(np.concatenate([quiet, tone, hiss]))


def voice() -> PiperVoice:
    v = PiperVoice.__new__(PiperVoice)
    v._voice = PaddedModel()
    v.sample_rate = RATE
    v._config = None
    return v


def edges_ms(audio: np.ndarray) -> tuple[float, float]:
    loud = np.flatnonzero(np.abs(audio) > 1000)
    return loud[0] * 1000 / RATE, (audio.size - loud[-1] - 1) * 1000 / RATE


def test_a_first_piece_starts_at_its_sound_and_stops_soon_after_it() -> None:
    (audio,) = voice().synthesize("The capital of France")
    before, after = edges_ms(audio)
    assert 5 <= before <= 15  # 10 ms kept of 50
    assert 35 <= after <= 45  # 40 ms kept of 200: the sentence goes on in the next piece


def test_a_sentence_keeps_its_pause() -> None:
    (audio,) = voice().synthesize("is Paris.")
    before, after = edges_ms(audio)
    assert before <= 15 and after >= 195


def test_silence_alone_is_kept_as_it_is() -> None:
    v = voice()
    v._voice.synthesize = lambda text, syn_config=None: iter([Chunk(np.zeros(2205, np.int16))])
    (audio,) = v.synthesize("Hmm")
    assert audio.size == 2205

"""The encoder window Whisper gets for an utterance (pure arithmetic; the model is not loaded)."""

from __future__ import annotations

import numpy as np
import pytest

from realtalk.server.engines.whisper import (
    MIN_WINDOW_FRAMES,
    padded_window,
    sentence_case,
    window_frames,
)


def test_short_utterances_get_the_minimum_window() -> None:
    assert window_frames(0) == MIN_WINDOW_FRAMES
    assert window_frames(300) == MIN_WINDOW_FRAMES  # 3 s of speech: 10 s of window


def test_longer_ones_get_half_second_steps_with_room_after_the_speech() -> None:
    assert window_frames(1000) == 1500  # exactly 10 s: no room left after it in 10 s
    assert window_frames(1240) == 1500
    assert window_frames(2950) == 3000


def test_what_does_not_fit_in_thirty_seconds_has_no_window() -> None:
    assert window_frames(2951) is None
    assert window_frames(10_000) is None


def test_the_window_is_padded_with_what_silence_looks_like() -> None:
    """Whisper's own padding is silent audio: log-mel at its floor (the maximum less 2)."""
    features = np.array([[0.5, 1.25], [-0.25, 0.0]], dtype=np.float32)
    window = padded_window(features, 5)
    assert window.shape == (2, 5) and window.dtype == np.float32
    assert np.array_equal(window[:, :2], features)
    assert np.all(window[:, 2:] == np.float32(1.25 - 2.0))


def test_the_padding_is_what_whisper_computes_for_silent_audio() -> None:
    """Checked against the feature extractor itself: speech then silence gives the floor."""
    extractor = pytest.importorskip("faster_whisper.feature_extractor").FeatureExtractor()
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with_silence = extractor(np.concatenate([tone, np.zeros(16000, np.float32)]))[:, :-1]
    speech = extractor(tone)[:, :-1]
    window = padded_window(speech, with_silence.shape[-1])
    # the frames well inside the silence (the STFT spreads the edge over a few frames)
    assert np.allclose(window[:, 110:], with_silence[:, 110:], atol=1e-5)


def test_a_transcript_starts_with_a_capital() -> None:
    assert sentence_case("who wrote Romeo and Juliet.") == "Who wrote Romeo and Juliet."
    assert sentence_case("I see.") == "I see."
    assert sentence_case("") == ""
    assert sentence_case("3 apples") == "3 apples"

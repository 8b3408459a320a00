"""EnergyVAD: windowing across arbitrary chunk sizes, and loud vs quiet decisions."""

from __future__ import annotations

import numpy as np
import pytest

from realtalk.server.engines.energy import EnergyVAD


def tone(seconds: float, amplitude: float, freq: float = 997.0) -> np.ndarray:
    t = np.arange(round(seconds * 16000)) / 16000
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_one_probability_per_complete_window_whatever_the_chunking() -> None:
    audio = tone(1.0, 0.3)  # 16000 samples = 31 windows + 128 left over
    whole = EnergyVAD().create_stream().feed(audio)
    stream = EnergyVAD().create_stream()
    pieces = [stream.feed(audio[i : i + 320]) for i in range(0, audio.size, 320)]  # 20 ms frames
    assert whole.shape == (31,)
    assert [p.size for p in pieces[:3]] == [0, 1, 0]  # 320, 640 (one window), 960
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_remainder_is_kept_between_calls_and_dropped_by_reset() -> None:
    stream = EnergyVAD().create_stream()
    assert stream.feed(tone(0.02, 0.3)).size == 0  # 320 samples, waiting for 192 more
    assert stream.feed(np.zeros(192, np.float32)).size == 1
    stream.feed(tone(0.02, 0.3))
    stream.reset()
    assert stream.feed(np.zeros(192, np.float32)).size == 0


def test_speech_level_scores_high_and_silence_low() -> None:
    vad = EnergyVAD()
    loud = vad.create_stream().feed(tone(0.5, 0.1))  # about -23 dBFS
    quiet = vad.create_stream().feed(tone(0.5, 0.0005))  # about -69 dBFS
    silent = vad.create_stream().feed(np.zeros(8000, np.float32))
    assert loud.min() > 0.95
    assert quiet.max() < 0.05
    assert silent.max() < 0.01
    assert vad.probability(tone(0.032, 10 ** (vad.threshold_dbfs / 20) * np.sqrt(2))) == (
        pytest.approx(0.5, abs=0.02)
    )


def test_streams_are_independent() -> None:
    vad = EnergyVAD()
    a, b = vad.create_stream(), vad.create_stream()
    a.feed(tone(0.02, 0.3))
    assert b.feed(np.zeros(200, np.float32)).size == 0
    assert a.feed(np.zeros(200, np.float32)).size == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(512, np.int16), "divide int16"),
        (np.zeros((2, 512), np.float32), "mono"),
        ([0.0] * 512, "numpy array"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(bad: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        EnergyVAD().create_stream().feed(bad)  # type: ignore[arg-type]


def test_float64_input_is_accepted() -> None:
    assert EnergyVAD().create_stream().feed(np.zeros(1024)).size == 2


def test_non_positive_slope_is_refused() -> None:
    with pytest.raises(ValueError, match="slope_db"):
        EnergyVAD(slope_db=0)

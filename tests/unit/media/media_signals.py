"""Test signals and measurements for the media tests (imported by the test modules)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from realtalk.media import read_wav, resample_oneshot

SPEECH_TEXT = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore, "
    "and the shells she sells are surely seashells."
)


def snr_db(reference: npt.NDArray[np.generic], test: npt.NDArray[np.generic]) -> float:
    """Signal-to-noise ratio of `test` against `reference` (same length), in dB."""
    ref = np.asarray(reference, dtype=np.float64)
    err = ref - np.asarray(test, dtype=np.float64)
    noise = float(np.sum(err * err))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(float(np.sum(ref * ref)) / noise)


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> npt.NDArray[np.int16]:
    """A sine tone as int16 mono."""
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def espeak_speech(tmp_dir: Path, rate: int) -> npt.NDArray[np.int16]:
    """Real synthetic speech from espeak-ng at `rate` (skips when espeak-ng is missing)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (scripts/setup installs it): no speech signal")
    path = tmp_dir / "speech.wav"
    subprocess.run([exe, "-w", str(path), SPEECH_TEXT], check=True, capture_output=True)
    frame = read_wav(path)
    mono = frame.to_array()
    if frame.num_channels > 1:
        mono = mono[:, 0]
    return np.asarray(resample_oneshot(mono, frame.sample_rate, rate), dtype=np.int16)

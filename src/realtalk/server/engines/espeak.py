"""Text to speech with the Debian `espeak-ng` binary: robotic, but ready in milliseconds.

One subprocess per sentence, text on stdin (so text starting with "-" is never read as an option),
WAV on stdout. espeak-ng writes a streaming WAV header whose sizes are placeholders (0x7ffff000),
so the header is parsed by hand and everything after the `data` chunk id is the audio.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator

import numpy as np

from realtalk.server.engines.base import EngineError, EngineUnavailableError, Voice
from realtalk.server.engines.sentences import split_sentences

__all__ = ["EspeakVoice", "parse_streaming_wav"]


class EspeakVoice(Voice):
    """espeak-ng at `words_per_minute`, voice `voice` (22,050 Hz mono)."""

    sample_rate = 22050

    def __init__(
        self, voice: str = "en-us", words_per_minute: int = 175, binary: str = "espeak-ng"
    ) -> None:
        path = shutil.which(binary)
        if path is None:
            raise EngineUnavailableError(
                f"{binary!r} not found on PATH: install it (Debian/Ubuntu: apt-get install "
                "espeak-ng) or run scripts/setup"
            )
        self._command = [path, "--stdout", "--stdin", "-b", "1", "-v", voice]
        self._command += ["-s", str(int(words_per_minute))]

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for sentence in split_sentences(text):
            result = subprocess.run(
                self._command, input=sentence.encode("utf-8"), capture_output=True, check=False
            )
            if result.returncode != 0:
                stderr = result.stderr.decode("utf-8", "replace").strip()
                raise EngineError(f"espeak-ng failed ({result.returncode}): {stderr}")
            rate, pcm = parse_streaming_wav(result.stdout)
            if rate != self.sample_rate:
                raise EngineError(f"espeak-ng produced {rate} Hz, expected {self.sample_rate} Hz")
            if pcm.size:
                yield pcm


def parse_streaming_wav(data: bytes) -> tuple[int, np.ndarray]:
    """(sample rate, int16 mono samples) of a 16-bit mono PCM WAV whose size fields may be bogus."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EngineError("espeak-ng output is not a WAV file")
    pos, rate = 12, 0
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt, channels, rate = struct.unpack_from("<HHI", data, body)
            bits = struct.unpack_from("<H", data, body + 14)[0]
            if (fmt, channels, bits) != (1, 1, 16):
                raise EngineError(f"unexpected WAV format {fmt}/{channels} ch/{bits} bit")
        elif chunk_id == b"data":
            audio = data[body:]
            return rate, np.frombuffer(audio[: len(audio) // 2 * 2], dtype="<i2").astype(np.int16)
        pos = body + size + (size & 1)
    raise EngineError("WAV output has no data chunk")

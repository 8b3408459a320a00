"""What the core's helpers may use of it: the :class:`ClientState` protocol.

The server-event handlers (:mod:`.handlers`), the cuts (:mod:`.barge_in`) and the replies
(:mod:`.replies`) work on the :class:`~.client.OpenAIRealtimeClient`, which calls them. They are
typed against this protocol rather than the class, so the modules do not import each other in a
circle, and the protocol lists, in one place, the state and operations a helper may touch.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from realtalk.metrics import SessionMetrics
    from realtalk.protocol import IdGenerator
    from realtalk.realtime.base import ModelError

    from .audio import OutputAudio
    from .audio_clock import AudioClock
    from .config import OpenAIRealtimeConfig
    from .conversation import ConversationMirror
    from .link import Action, LinkState
    from .responses import ResponseTracker, Watchdog
    from .tools_runner import FollowUp, ToolCall
    from .transcript_pacer import TranscriptPacer

__all__ = ["ClientState"]


class ClientState(Protocol):
    config: OpenAIRealtimeConfig
    ids: IdGenerator
    mirror: ConversationMirror
    responses: ResponseTracker
    follow_up: FollowUp
    metrics: SessionMetrics
    audio_out: OutputAudio | None
    audio_clock: AudioClock
    pacer: TranscriptPacer
    paces_transcripts: bool
    playing: set[str]
    link_audio_items: set[str]
    pending_calls: dict[str, ToolCall]
    calls_started: set[str]
    text: OrderedDict[str, str]
    overflow_reported: set[str]
    tools_running: set[str]
    user_turn_open: bool
    vad_relaxed: bool
    watchdog: Watchdog

    @property
    def state(self) -> LinkState: ...

    def act(self, action: Action) -> None: ...
    def emit(self, name: str, payload: Any) -> None: ...
    def report(self, error: ModelError) -> None: ...
    def send(self, event: dict[str, Any]) -> None: ...
    def create_item(self, item: dict[str, Any]) -> str: ...
    def progress(self) -> None: ...
    def watch(self) -> None: ...
    def pump(self) -> None: ...
    def pace(self) -> None: ...
    def turn_detection(self) -> dict[str, Any] | None: ...
    def interrupt_on_speech(self) -> bool: ...
    def user_turn_over(self) -> None: ...
    def start_call(self, call: ToolCall) -> None: ...
    def session_updated(self, session: dict[str, Any]) -> None: ...
    def server_error(self, error: ModelError) -> None: ...
    def maybe_complete_turn(self) -> None: ...
    def maybe_recycle(self) -> None: ...

"""What happened in a test conversation: timed events, and the story a failure prints.

The recorder listens to an :class:`~realtalk.session.AgentSession` (and, for when the agent's
voice starts and stops, to its model's public events) and keeps every event with the time it
arrived. Expectations read the *conversation* events (what the agent said and did); the story
shows everything, state changes and metrics included, so a failure reads like a transcript.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from realtalk.session import AgentSession

__all__ = ["CONVERSATION_TYPES", "Event", "EventType", "Recorder", "format_story"]

EventType = Literal[
    "user_message",
    "agent_message",
    "function_call",
    "function_call_output",
    "interruption",
    "handoff",
    "error",
    # context only (shown in the story, skipped by expectations):
    "user_started_speaking",
    "user_stopped_speaking",
    "agent_started_speaking",
    "agent_stopped_speaking",
    "agent_state",
    "metrics",
    "input",
    "closed",
]

#: The events expectations walk through: what the agent said and did, in order.
CONVERSATION_TYPES: frozenset[str] = frozenset(
    {"agent_message", "function_call", "function_call_output", "interruption", "handoff", "error"}
)


@dataclass(frozen=True)
class Event:
    """One thing that happened, ``t`` seconds after the test conversation started."""

    type: str
    t: float
    data: dict[str, Any] = field(default_factory=dict)

    # Convenient views of the payload, so tests read naturally.
    @property
    def text(self) -> str:
        return str(self.data.get("text", ""))

    @property
    def name(self) -> str | None:
        name = self.data.get("name")
        return None if name is None else str(name)

    @property
    def arguments(self) -> dict[str, Any] | None:
        """A function call's arguments parsed from JSON (None when they are not a JSON object)."""
        raw = self.data.get("arguments")
        try:
            value = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    @property
    def output(self) -> str:
        return str(self.data.get("output", ""))

    @property
    def is_error(self) -> bool:
        return bool(self.data.get("is_error", False))

    def describe(self) -> str:
        """One line, as the story shows it."""
        d = self.data
        if self.type in ("user_message", "agent_message"):
            who = "user" if self.type == "user_message" else "agent"
            return f"{who}: {self.text!r}"
        if self.type == "function_call":
            return f"function_call {self.name}({d.get('arguments', '')})"
        if self.type == "function_call_output":
            flag = " [error]" if self.is_error else ""
            return f"function_call_output {self.name} -> {_clip(self.output)!r}{flag}"
        if self.type == "interruption":
            return f"interruption (the agent was cut off after {d.get('played_ms', '?')} ms)"
        if self.type == "agent_stopped_speaking":
            return f"agent stopped speaking ({d.get('played_ms', '?')} ms played)"
        if self.type == "agent_state":
            return f"agent state -> {d.get('state')}"
        if self.type == "metrics":
            latency = d.get("latency_ms")
            usage = d.get("usage") or {}
            shown = f"{latency:.0f} ms" if isinstance(latency, int | float) else "n/a"
            return (
                f"turn metrics: latency {shown}, {usage.get('total_tokens', 0)} tokens, "
                f"${float(d.get('cost_usd') or 0):.4f}"
                + (", interrupted" if d.get("interrupted") else "")
            )
        if self.type == "input":
            return f">>> {d.get('what', '')}"
        if self.type == "error":
            return f"error: {d.get('message')}" + (" (fatal)" if d.get("fatal") else "")
        if self.type == "handoff":
            return f"handoff {d.get('from', '?')} -> {d.get('to', '?')}" + (
                f" (tool {d['tool']})" if d.get("tool") else ""
            )
        if self.type == "closed":
            return f"session closed ({d.get('reason')})"
        return self.type.replace("_", " ")


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_story(events: list[Event], *, mark: int | None = None, title: str = "") -> str:
    """The events as numbered, timed lines; ``mark`` points at the event index with ``-->``."""
    lines = [title] if title else []
    if not events:
        lines.append("    (nothing happened)")
    for i, event in enumerate(events):
        pointer = "--> " if mark == i else "    "
        lines.append(f"{pointer}{event.t:7.2f}s  {event.describe()}")
    if mark is not None and mark >= len(events):
        lines.append("--> (no further events)")
    return "\n".join(lines)


class Recorder:
    """Keeps every event of one session, timed; :meth:`changed` wakes whoever waits on them."""

    def __init__(self, session: AgentSession, *, t0: float | None = None) -> None:
        self.session = session
        self.events: list[Event] = []
        self.t0 = time.monotonic() if t0 is None else t0
        self._changed = asyncio.Event()
        self._subscriptions: list[tuple[Any, str, Callable[..., Any]]] = []
        self.agent_speech_ms = 0.0  # audio of the current reply played so far (see harness)
        self.metrics_count = 0
        self.user_speech_ended_count = 0
        session_handlers: dict[str, Callable[..., Any]] = {
            "transcription": self._on_transcription,
            "function_call": self._on_function_call,
            "agent_state_changed": self._on_agent_state,
            "user_state_changed": self._on_user_state,
            "metrics": self._on_metrics,
            "error": self._on_error,
            "closed": lambda p: self.add("closed", dict(p or {})),
            "handoff": lambda p=None: self.add("handoff", _as_dict(p)),
        }
        for name, handler in session_handlers.items():
            self._subscribe(session, name, handler)
        # When the agent's voice starts and stops (and whether it was cut off) is part of the
        # model contract (RealtimeBaseModel), not relayed by the session.
        self._subscribe(session.model, "agent_speech_started", self._on_agent_speech_started)
        self._subscribe(session.model, "agent_speech_ended", self._on_agent_speech_ended)

    def _subscribe(self, emitter: Any, name: str, handler: Callable[..., Any]) -> None:
        emitter.on(name, handler)
        self._subscriptions.append((emitter, name, handler))

    def detach(self) -> None:
        for emitter, name, handler in self._subscriptions:
            emitter.off(name, handler)
        self._subscriptions.clear()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add(self, type_: str, data: dict[str, Any] | None = None) -> Event:
        event = Event(type_, round(self.now(), 3), data or {})
        self.events.append(event)
        self.poke()
        return event

    def poke(self) -> None:
        """Wake waiters (also called as agent audio is played)."""
        self._changed.set()

    async def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()``; False after ``timeout`` seconds without it."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    # Also re-check now and then: some conditions (played audio) move without
                    # an event.
                    try:
                        async with asyncio.timeout(0.05):
                            await self._changed.wait()
                    except TimeoutError:
                        pass
        except TimeoutError:
            return condition()
        return True

    # -- handlers ---------------------------------------------------------------------------------

    def _on_transcription(self, payload: dict[str, Any]) -> None:
        if not payload.get("is_final"):
            return
        role = payload.get("role")
        kind = "user_message" if role == "user" else "agent_message"
        self.add(kind, {"text": payload.get("text", ""), "item_id": payload.get("item_id")})

    def _on_function_call(self, payload: dict[str, Any]) -> None:
        name = payload.get("name")
        self.add("function_call", {"name": name, "arguments": payload.get("arguments")})
        self.add(
            "function_call_output",
            {
                "name": name,
                "output": payload.get("output"),
                "is_error": bool(payload.get("is_error")),
            },
        )

    def _on_agent_state(self, payload: dict[str, Any]) -> None:
        self.add("agent_state", {"state": payload.get("state")})

    def _on_user_state(self, payload: dict[str, Any]) -> None:
        if payload.get("state") == "speaking":
            self.add("user_started_speaking")
        else:
            self.user_speech_ended_count += 1
            self.add("user_stopped_speaking")

    def _on_metrics(self, payload: dict[str, Any]) -> None:
        self.metrics_count += 1
        self.add("metrics", dict(payload))

    def _on_error(self, payload: dict[str, Any]) -> None:
        self.add("error", dict(payload))

    def _on_agent_speech_started(self, payload: dict[str, Any]) -> None:
        self.agent_speech_ms = 0.0
        self.add("agent_started_speaking", {"item_id": payload.get("item_id")})

    def _on_agent_speech_ended(self, payload: dict[str, Any]) -> None:
        data = {"item_id": payload.get("item_id"), "played_ms": payload.get("played_ms")}
        self.add("agent_stopped_speaking", data)
        if payload.get("interrupted"):
            self.add("interruption", data)


def _as_dict(payload: Any) -> dict[str, Any]:
    if isinstance(payload, dict):
        return dict(payload)
    return {} if payload is None else {"value": payload}

"""The client's link to the server as an explicit state machine, and what the core asks its driver.

Every state the connection can be in is a :class:`LinkState`, and every allowed change is a row of
:data:`TRANSITIONS` (``state → {trigger: next state}``); :meth:`Link.fire` is the only place the
state changes, so a trigger that makes no sense in a state is a bug caught at once, not a
combination of flags drifting apart. The diagram in ``docs/architecture.md`` is this table.

The actions are the core's only way to make things happen: the asyncio driver
(:mod:`.realtime`) performs them and reports back through the core's inputs
(``connection_opened``, ``connect_failed``, ``timer_fired``, ``tool_finished``, ...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from realtalk.errors import RealtalkError
    from realtalk.realtime.base import ModelError

    from .tools_runner import ToolCall

__all__ = [
    "TRANSITIONS",
    "Action",
    "ArmTimer",
    "CancelTimer",
    "Close",
    "DropLink",
    "Emit",
    "HandshakeFailed",
    "InvalidTransition",
    "Link",
    "LinkState",
    "Ready",
    "Reconnect",
    "RunTool",
    "diagram",
]


class LinkState(enum.Enum):
    IDLE = "idle"  # never connected, or the first connect failed
    CONNECTING = "connecting"  # a socket is being opened
    HANDSHAKE = "handshake"  # the socket is open; waiting for session.updated
    OPEN = "open"  # the server confirmed the settings
    BACKOFF = "backoff"  # the link was lost; waiting before the next attempt
    CLOSED = "closed"  # closed by the user, or for good after a fatal error


S = LinkState

#: Triggers: ``connect`` (the user), ``opened`` (socket up), ``confirmed`` (session.updated),
#: ``lost`` (socket or handshake failed; another attempt follows), ``abandon`` (the first
#: connect failed: reported to the caller, no retry), ``retry`` (backoff over), ``recycle``
#: (a fresh session before the time limit), ``close``.
TRANSITIONS: dict[LinkState, dict[str, LinkState]] = {
    S.IDLE: {"connect": S.CONNECTING, "close": S.CLOSED},
    S.CONNECTING: {"opened": S.HANDSHAKE, "lost": S.BACKOFF, "abandon": S.IDLE, "close": S.CLOSED},
    S.HANDSHAKE: {"confirmed": S.OPEN, "lost": S.BACKOFF, "abandon": S.IDLE, "close": S.CLOSED},
    S.OPEN: {"lost": S.BACKOFF, "recycle": S.CONNECTING, "close": S.CLOSED},
    S.BACKOFF: {"retry": S.CONNECTING, "close": S.CLOSED},
    S.CLOSED: {"connect": S.CONNECTING, "close": S.CLOSED},
}


def diagram() -> str:
    """The transition table as Mermaid ``stateDiagram-v2`` text (``docs/architecture.md``
    carries it; a test keeps the two equal)."""
    lines = ["stateDiagram-v2", "    [*] --> idle"]
    for state, moves in TRANSITIONS.items():
        for trigger, target in moves.items():
            if target is not state:
                lines.append(f"    {state.value} --> {target.value}: {trigger}")
    return "\n".join(lines)


class InvalidTransition(RuntimeError):
    """A trigger the current state does not allow (a bug in the core, never the server's)."""


class Link:
    """The link state, the reconnect attempt count, and whether the link ever opened."""

    def __init__(self) -> None:
        self.state = LinkState.IDLE
        #: Attempts since the link was last *stable*: a link that opens and drops at once does
        #: not reset it, so ``max_attempts`` bounds a flapping server.
        self.attempts = 0
        self.was_open = False  # opened at least once since connect(): losses reconnect

    def fire(self, trigger: str) -> LinkState:
        target = TRANSITIONS[self.state].get(trigger)
        if target is None:
            raise InvalidTransition(f"{trigger!r} is not allowed in link state {self.state.value}")
        self.state = target
        if target is LinkState.OPEN:
            self.was_open = True
        elif target in (LinkState.IDLE, LinkState.CLOSED):
            self.was_open = False
            self.attempts = 0
        return target

    @property
    def reconnecting(self) -> bool:
        return self.was_open and self.state in (S.BACKOFF, S.CONNECTING, S.HANDSHAKE)

    @property
    def usable(self) -> bool:
        """The user may send: the link is open, being opened, or being rebuilt."""
        return self.state is S.OPEN or self.reconnecting or self.state is S.HANDSHAKE


# -- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Emit:
    """Emit a model event (the seed's name and payload)."""

    name: str
    payload: Any


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """Call ``timer_fired(name)`` after ``delay_s`` (re-arming replaces the previous one)."""

    name: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class RunTool:
    """Run this function call off the receive path; report with ``tool_finished``."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class DropLink:
    """Close the current socket; events it had not sent go back through ``requeue_unsent``."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Open a fresh socket now; report ``connection_opened`` or ``connect_failed``."""

    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ready:
    """The server confirmed the settings: ``connect()`` may return."""

    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    """The first connect failed: ``connect()`` raises this error."""

    error: RealtalkError


@dataclass(frozen=True, slots=True)
class Close:
    """Release everything (tools, timers, socket) and emit ``closed``."""

    error: ModelError | None


Action = (
    Emit | ArmTimer | CancelTimer | RunTool | DropLink | Reconnect | Ready | HandshakeFailed | Close
)

"""Turn-taking: who is talking in one session, derived from what is going on.

``user_state`` follows the model's speech detection. ``agent_state`` is derived rather than set
by hand: ``speaking`` while agent audio is being played; else ``thinking`` from the moment a reply
is due (requested, or the user stopped speaking) until the model reports the turn complete (so a
tool call and its follow-up are one stretch of thinking, not a flicker through ``listening``), or
while received audio waits to play; else ``listening``. Before the model is connected it is
``initializing``, after the session closed ``closed``.

:class:`TurnTaking` holds those inputs and emits ``user_state_changed`` / ``agent_state_changed``
``{"state"}`` through its session when a state changes. It does no I/O; the one thing it
schedules is a settle on the running loop (see :meth:`TurnTaking.agent_speech_ended`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["AgentState", "TurnTaking", "UserState"]

UserState = Literal["listening", "speaking"]
AgentState = Literal["initializing", "listening", "thinking", "speaking", "closed"]


class TurnTaking:
    """The user's and the agent's state in one session.

    Args:
        emit: the session's ``emit``, for the ``*_state_changed`` events.
        buffered_ms: how much received agent audio waits to play now.
    """

    def __init__(self, emit: Callable[[str, Any], None], buffered_ms: Callable[[], float]) -> None:
        self._emit = emit
        self._buffered_ms = buffered_ms
        self.user_state: UserState = "listening"
        self.agent_state: AgentState = "initializing"
        #: The model is connected and the session not closed.
        self.connected = False
        self._speaking_items: set[str] = set()
        self._reply_due = False  # asked for (or due after user speech), not yet created
        self._turn_open = False  # a response was created; the model has not completed the turn
        self._settle_pending = False
        self._closed = False

    def connect(self) -> None:
        self.connected = True
        self.update()

    def close(self) -> None:
        """The session closed: ``closed``, and no state changes after this one."""
        self.connected = False
        self._speaking_items.clear()
        self._reply_due = False
        self._turn_open = False
        self._set_user_state("listening")
        self._set_agent_state("closed")
        self._closed = True

    def reply_due(self) -> None:
        """A reply was asked for, or the user's turn ended (server VAD answers it)."""
        self._reply_due = True
        self.update()

    def reply_cancelled(self) -> None:
        """No reply is due any more (an interrupt). The state is derived at the next
        :meth:`update`, once the model has stopped, so it does not pass through ``listening``."""
        self._reply_due = False

    def user_speech_started(self) -> None:
        self._set_user_state("speaking")
        self.update()  # a barge-in may have dropped audio that had not started

    def user_speech_ended(self) -> None:
        self._set_user_state("listening")
        self.reply_due()

    def response_created(self) -> None:
        self._reply_due = False
        self._turn_open = True
        self.update()

    def turn_complete(self) -> None:
        """The model reported the turn over (every response done and its audio played)."""
        self._turn_open = False
        self.update()

    def agent_speech_started(self, item_id: str) -> None:
        self._speaking_items.add(item_id)
        self.update()

    def agent_speech_ended(self, item_id: str) -> None:
        self._speaking_items.discard(item_id)
        # The model completes the turn right after the last audio played (in the same call
        # chain); settle once it has had that chance, so the state does not flicker through
        # "thinking" on its way to "listening".
        if not self._settle_pending:
            self._settle_pending = True
            asyncio.get_running_loop().call_soon(self._settle)

    def update(self) -> None:
        """Derive ``agent_state`` again (see the module docstring)."""
        if self._closed:
            return
        state: AgentState
        if not self.connected:
            state = "initializing"
        elif self._speaking_items:
            state = "speaking"
        elif self._reply_due or self._turn_open or self._buffered_ms():
            state = "thinking"  # a reply is due, in progress, or queued but not yet playing
        else:
            state = "listening"
        self._set_agent_state(state)

    def _settle(self) -> None:
        self._settle_pending = False
        self.update()

    def _set_agent_state(self, state: AgentState) -> None:
        if state != self.agent_state:
            self.agent_state = state
            self._emit("agent_state_changed", {"state": state})

    def _set_user_state(self, state: UserState) -> None:
        if state != self.user_state:
            self.user_state = state
            self._emit("user_state_changed", {"state": state})

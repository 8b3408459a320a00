"""TurnTaking on its own: the states it derives and the events it emits, no session, no model."""

from __future__ import annotations

import asyncio
from typing import Any

from realtalk.turn_taking import TurnTaking


class Fixture:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.buffered_ms = 0.0
        self.turns = TurnTaking(self.emit, lambda: self.buffered_ms)

    def emit(self, event: str, payload: Any) -> None:
        self.events.append((event, payload["state"]))

    def agent_states(self) -> list[str]:
        return [state for event, state in self.events if event == "agent_state_changed"]


async def test_a_turn_with_a_tool_call_is_one_stretch_of_thinking() -> None:
    f = Fixture()
    turns = f.turns
    turns.connect()
    turns.user_speech_started()
    turns.user_speech_ended()  # the server answers the user's turn
    turns.response_created()
    turns.response_created()  # the tool call's follow-up: still the same turn
    turns.agent_speech_started("item_1")
    turns.agent_speech_ended("item_1")
    assert turns.agent_state == "speaking"  # settles on the loop's next pass, not in the call
    await asyncio.sleep(0)
    assert turns.agent_state == "thinking"  # audio played, the model has not closed the turn
    turns.turn_complete()
    assert f.agent_states() == ["listening", "thinking", "speaking", "thinking", "listening"]
    assert [s for e, s in f.events if e == "user_state_changed"] == ["speaking", "listening"]


async def test_queued_audio_keeps_the_agent_thinking_until_it_plays() -> None:
    f = Fixture()
    f.turns.connect()
    f.buffered_ms = 400
    f.turns.update()
    assert f.turns.agent_state == "thinking"
    f.buffered_ms = 0
    f.turns.update()
    assert f.turns.agent_state == "listening"


async def test_after_close_nothing_changes_the_state() -> None:
    f = Fixture()
    assert f.turns.agent_state == "initializing"
    f.turns.connect()
    f.turns.reply_due()
    f.turns.close()
    assert (f.turns.user_state, f.turns.agent_state) == ("listening", "closed")
    assert not f.turns.connected
    f.turns.reply_due()
    f.turns.agent_speech_started("late")
    assert f.turns.agent_state == "closed"
    assert f.agent_states() == ["listening", "thinking", "closed"]

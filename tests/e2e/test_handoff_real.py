"""Handoffs and MCP tools on the real local models (``engine="local"``: Whisper, SmolLM2, espeak).

The same two flows as the scripted tests, with a real LLM choosing the calls: a front desk that
hands a caller over to a booking agent, and an agent answering from the reference
``mcp-server-time`` over stdio. Slow: loads the models.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from realtalk import Agent, AgentSession, function_tool
from realtalk.handoff import Handoff
from realtalk.mcp import MCPServerStdio
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from tests.integration.server.test_server_say_session import Speaker

pytestmark = pytest.mark.slow

TIMEOUT_S = 180.0
BOOKING_LINE = "Booking desk here. Which day would you like?"


class Booking(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You take table bookings. Ask which day. Be brief.")

    @function_tool
    async def book_table(self, day: str) -> str:
        """Book a table.

        Args:
            day: The day, e.g. "Friday".
        """
        return f"booked for {day}"


class FrontDesk(Agent):
    def __init__(self) -> None:
        super().__init__(
            instructions=(
                "You are a restaurant receptionist. If the caller wants to book a table, call "
                "transfer_to_booking. Otherwise answer briefly."
            )
        )

    @function_tool
    async def transfer_to_booking(self) -> Handoff:
        """Transfer the caller to the booking desk, for table reservations."""
        return Handoff(Booking(), message=BOOKING_LINE)


async def test_a_real_model_hands_over_and_the_new_agent_takes_the_next_turn() -> None:
    async with LocalServer(engine="local", voice="espeak") as server:
        model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url)
        session: AgentSession[Any] = AgentSession(agent=FrontDesk(), model=model)
        answers, handoffs = _record(session)
        await session.start(Speaker())
        try:
            await session.send_text("Hi, I would like to book a table, please.")
            await _until(lambda: bool(handoffs) and BOOKING_LINE in answers)
            await _until(lambda: session.agent_state == "listening")
            assert handoffs[0]["to"] == "Booking"
            assert isinstance(session.agent, Booking)
            confirmed = model.session_settings
            assert confirmed["instructions"] == session.agent.instructions
            assert [tool["name"] for tool in confirmed["tools"]] == ["book_table"]
            # Nothing from the front desk after its handoff: the booking line comes last.
            assert answers[-1] == BOOKING_LINE

            await session.send_text("Friday, please.")
            await _until(lambda: len(answers) >= 2 and session.agent_state == "listening")
            assert answers[-1].strip() and answers[-1] != BOOKING_LINE
        finally:
            await session.close()


async def test_a_real_model_answers_from_the_reference_mcp_time_server() -> None:
    pytest.importorskip("mcp_server_time")
    time_server = MCPServerStdio(
        sys.executable, ["-m", "mcp_server_time", "--local-timezone", "UTC"], name="time"
    )
    agent = Agent(
        instructions="You tell the time. Always call get_current_time to know it.",
        mcp_servers=[time_server],
    )
    async with LocalServer(engine="local", voice="espeak") as server:
        model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url)
        session: AgentSession[Any] = AgentSession(agent=agent, model=model)
        answers, _ = _record(session)
        calls: list[dict[str, Any]] = []
        session.on("function_call", calls.append)
        await session.start(Speaker())
        try:
            await session.send_text("What time is it in Tokyo right now?")
            await _until(lambda: bool(calls) and bool(answers))
            await _until(lambda: session.agent_state == "listening")
            call = calls[0]
            assert call["name"] in ("get_current_time", "convert_time"), call
            if not call["is_error"]:
                assert "datetime" in json.loads(call["output"]) or "target" in call["output"]
            assert answers[-1].strip()
        finally:
            await session.close()


def _record(session: AgentSession[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    answers: list[str] = []
    handoffs: list[dict[str, Any]] = []
    session.on(
        "transcription",
        lambda p: answers.append(p["text"]) if p["is_final"] and p["role"] == "agent" else None,
    )
    session.on("handoff", handoffs.append)
    return answers, handoffs


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await asyncio.sleep(0.05)

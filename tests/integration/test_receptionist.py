"""examples/receptionist.py on the scripted local server: the front desk hands over to the booking
agent, whose tools come from examples/booking_mcp_server.py over stdio."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from realtalk import AgentSession
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from tests.integration.test_session_scripted import Events, Speaker

pytest.importorskip("mcp")

TIMEOUT_S = 60.0
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "receptionist.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_receptionist", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def test_the_front_desk_hands_over_to_booking_which_books_through_mcp(
    scripted_server: LocalServer,
) -> None:
    example = load()
    model = OpenAIRealtime(model="gpt-realtime", base_url=scripted_server.base_url)
    desk = example.Receptionist()
    session: AgentSession[Any] = AgentSession(agent=desk, model=model, userdata=example.Caller())
    events = Events(session)
    session.on("handoff", lambda payload: events._add("handoff", payload))

    async def turn(text: str) -> None:
        before = len(events.finals("agent"))
        await session.send_text(text)
        await events.wait(lambda: len(events.finals("agent")) > before, TIMEOUT_S)
        await events.wait(lambda: session.agent_state == "listening", TIMEOUT_S)

    try:
        await session.start(Speaker())
        await events.wait(lambda: session.agent_state == "listening", TIMEOUT_S)
        await turn('call remember_name {"name": "Ada"}')
        await turn('call transfer_to_booking {"note": "friday, two people"}')
        assert isinstance(session.agent, example.Booking)
        assert events.finals("agent")[-1] == "Booking desk here, Ada. Which day would you like?"
        settings = model.session_settings
        assert [tool["name"] for tool in settings["tools"]] == ["check_availability", "book_table"]
        assert "Notes from the front desk: friday, two people" in settings["instructions"]
        assert "receptionist" not in settings["instructions"]

        await turn('call check_availability {"day": "Friday"}')
        await turn('call book_table {"day": "friday", "name": "Ada", "party_size": 2}')
        await turn('call book_table {"day": "friday", "name": "Bo", "party_size": 80}')
        calls = {(c["name"], c["output"], c["is_error"]) for c in events.of("function_call")}
        assert ("check_availability", "4 of 4 tables free on friday", False) in calls
        assert ("book_table", "booked: Ada, 2 people, friday; confirmation FRI-1", False) in calls
        [too_many] = [c for c in events.of("function_call") if "Bo" in c["arguments"]]
        assert too_many["is_error"]  # the server's own validation, read by the model
        [handoff] = events.of("handoff")
        assert (handoff["from"], handoff["to"]) == ("Receptionist", "Booking")
        assert desk.booking_server.connections == 1  # warmed up once, kept across the switch
    finally:
        await session.close()
    assert desk.booking_server._client is None  # its process ended with the call


async def test_a_call_that_ends_at_the_front_desk_stops_the_warm_booking_server(
    scripted_server: LocalServer,
) -> None:
    example = load()
    model = OpenAIRealtime(model="gpt-realtime", base_url=scripted_server.base_url)
    desk = example.Receptionist()
    session: AgentSession[Any] = AgentSession(agent=desk, model=model, userdata=example.Caller())
    await session.start(Speaker())
    await session.close()
    assert desk.booking_server._owner is None and desk.booking_server._client is None

"""Testing examples/receptionist.py: a spoken caller gives their name, asks for a table, is
handed to the booking desk (a handoff), which checks and books through the MCP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtalk.testing import AgentTest

pytest.importorskip("mcp")
pytestmark = pytest.mark.realtalk(speed=2.0, timeout_s=60.0)

RECEPTIONIST = Path(__file__).resolve().parents[1] / "receptionist.py"


@pytest.fixture
def realtalk_backend() -> str:
    """Scripted only: a three-step flow through a handoff is beyond the 135M local model."""
    return "scripted"


async def test_the_caller_is_handed_to_booking_which_books_through_mcp(agent_test) -> None:
    t: AgentTest = await agent_test(RECEPTIONIST)
    t.greeting.expect.next_event().is_agent_message(contains="Realtalk Bistro")

    t.when("my name is ada").call("remember_name", {"name": "Ada"}).then_say("Hello Ada.")
    t.when("book a table").call("transfer_to_booking", {"note": "friday, two people"})
    t.when("friday").call("book_table", {"day": "friday", "name": "Ada", "party_size": 2}).then_say(
        "Done: {output}."
    )

    named = await t.speak("My name is Ada.")
    named.expect.contains_function_call(name="remember_name", arguments={"name": "Ada"})

    handed = await t.speak("I would like to book a table.")
    handed.expect.contains_handoff(to="Booking").is_handoff(from_agent="Receptionist")
    handed.expect.contains_agent_message(contains="Booking desk here, Ada.")

    booked = await t.speak("Friday for two please.")
    booked.expect.next_event().is_function_call(name="book_table")
    booked.expect.next_event().is_function_call_output(contains="confirmation FRI-", is_error=False)
    booked.expect.next_event().is_agent_message(contains="confirmation FRI-")
    booked.expect.no_more_events()

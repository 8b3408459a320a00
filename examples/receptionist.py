"""A front desk that hands callers to a booking agent, which books through an MCP server.

The receptionist greets and answers questions about the bistro; when a caller wants a table,
its ``transfer_to_booking`` tool returns a :class:`~realtalk.handoff.Handoff`: the session swaps
in the booking agent (its instructions and tools, in one update), which says its first line and
uses the tools of ``booking_mcp_server.py`` (started as a subprocess over stdio). What the
caller told the front desk travels in ``session.userdata``.

Run it (see examples/README.md)::

    realtalk run examples/receptionist.py --transport console --text
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from realtalk import Agent, AgentSession, JobContext, function_tool
from realtalk.handoff import Handoff
from realtalk.mcp import MCPServer, MCPServerStdio
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig

BOOKING_SERVER = Path(__file__).with_name("booking_mcp_server.py")


@dataclass
class Caller:
    """What the agents know about the caller, shared across the handoff."""

    name: str | None = None
    notes: list[str] = field(default_factory=list)


class Receptionist(Agent):
    def __init__(self) -> None:
        # A stdio server takes seconds to start: start it while the caller talks to the front
        # desk, so the handoff does not wait for it (MCPServer.start is idempotent).
        self.booking_server = MCPServerStdio(sys.executable, [str(BOOKING_SERVER)], name="booking")
        self._warming: asyncio.Task[None] | None = None
        super().__init__(
            instructions=(
                "You are the receptionist of the Realtalk Bistro. Be warm and brief. We are open "
                "Monday to Saturday, 12:00 to 22:00, at 1 Harbour Street. Ask for the caller's "
                "name and remember it. When they want to book a table, transfer them to booking."
            )
        )

    async def on_enter(self) -> None:
        self._warming = asyncio.get_running_loop().create_task(self._warm_up())
        await self.session.say("Realtalk Bistro, good evening! How can I help?")

    async def on_exit(self) -> None:
        if self.session.closed:  # the call ended here: the booking desk never took over
            if self._warming is not None:
                self._warming.cancel()
            await self.booking_server.aclose()

    async def _warm_up(self) -> None:
        try:
            await self.booking_server.start()
        except Exception as exc:  # the handoff tries again, and reports it if it fails
            logging.getLogger(__name__).warning("booking server not started yet: %s", exc)

    @function_tool
    async def remember_name(self, name: str) -> str:
        """Remember the caller's name.

        Args:
            name: The name the caller gave.
        """
        self.session.userdata.name = name
        return f"noted: {name}"

    @function_tool
    async def transfer_to_booking(self, note: str = "") -> Handoff:
        """Hand the caller to the booking desk.

        Args:
            note: Anything the booking desk should know (day, party size...).
        """
        if note:
            self.session.userdata.notes.append(note)
        name = self.session.userdata.name
        greeting = f"Booking desk here{', ' + name if name else ''}. Which day would you like?"
        return Handoff(Booking(self.session.userdata, self.booking_server), message=greeting)


class Booking(Agent):
    def __init__(self, caller: Caller, server: MCPServer) -> None:
        instructions = (
            "You take table bookings for the Realtalk Bistro. Check availability first, then "
            "book with the guest's name and party size, and read the confirmation code back. "
            "Be brief."
        )
        if caller.name:
            instructions += f"\nThe guest's name: {caller.name}."
        if caller.notes:  # what the front desk learnt arrives with the switch, in one update
            instructions += f"\nNotes from the front desk: {'; '.join(caller.notes)}"
        super().__init__(instructions=instructions, mcp_servers=[server])


async def entrypoint(ctx: JobContext) -> None:
    model = OpenAIRealtime(model="gpt-realtime", config=OpenAIRealtimeConfig(voice="alloy"))
    session: AgentSession[Caller] = AgentSession(
        agent=Receptionist(), model=model, userdata=Caller()
    )
    await session.start(ctx.transport)


if __name__ == "__main__":
    from realtalk.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))

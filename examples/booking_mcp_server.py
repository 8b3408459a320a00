"""A small table-booking MCP server (made with the official ``mcp`` SDK) for receptionist.py.

It keeps bookings in memory for as long as it runs. Run it on its own to try it with any MCP
client::

    python examples/booking_mcp_server.py            # stdio (what receptionist.py starts)
    python examples/booking_mcp_server.py --http 8931  # streamable HTTP on 127.0.0.1:8931/mcp
"""

from __future__ import annotations

import sys
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

OPEN_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
TABLES_PER_DAY = 4
MAX_PARTY = 8

server = MCPServer("booking", instructions="Tables at the Realtalk Bistro.")
_bookings: dict[str, list[dict[str, object]]] = {day: [] for day in OPEN_DAYS}


def _day(day: str) -> str:
    key = day.strip().lower()
    if key not in _bookings:
        raise ValueError(f"we are open {', '.join(OPEN_DAYS)}; not {day!r}")
    return key


@server.tool()
def check_availability(
    day: Annotated[str, Field(description='A weekday, e.g. "friday".')],
) -> str:
    """How many tables are still free on a day."""
    free = TABLES_PER_DAY - len(_bookings[_day(day)])
    return f"{free} of {TABLES_PER_DAY} tables free on {day.strip().lower()}"


@server.tool()
def book_table(
    day: Annotated[str, Field(description='A weekday, e.g. "friday".')],
    name: Annotated[str, Field(description="The guest's name.")],
    party_size: Annotated[int, Field(description="How many people.", ge=1, le=MAX_PARTY)],
) -> str:
    """Book a table; returns a confirmation code."""
    key = _day(day)
    if len(_bookings[key]) >= TABLES_PER_DAY:
        raise ValueError(f"{key} is fully booked")
    code = f"{key[:3].upper()}-{len(_bookings[key]) + 1}"
    _bookings[key].append({"name": name, "party_size": party_size, "code": code})
    return f"booked: {name}, {party_size} people, {key}; confirmation {code}"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run(transport="streamable-http", port=int(sys.argv[2]))
    else:
        server.run()

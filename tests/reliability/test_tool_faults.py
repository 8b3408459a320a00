"""Misbehaving tools and a model that calls tools wrongly, through the whole stack.

The scripted model calls a tool when the user says ``call <name> <json>`` and, given the tool's
output, answers ``Tool <name> returned <output>.``. So for each fault we can check the three
things that matter: the session reports the call (``function_call`` with ``is_error``), the
output reaches the server (the model quotes it back), and the conversation goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtalk.agent import Agent
from realtalk.tools import DEFAULT_MAX_OUTPUT_CHARS, function_tool
from tests.reliability.conftest import Ledger
from tests.reliability.corpus import JSON_VALUES
from tests.reliability.rig import Rig, start_rig

AREA = "tools"


class Unruly(Agent):
    """One tool per way a tool can misbehave."""

    def __init__(self) -> None:
        super().__init__(instructions="Use the tools.")

    @function_tool(timeout=0.3)
    async def hangs(self) -> str:
        """Never returns."""
        await asyncio.Event().wait()
        return "unreachable"

    @function_tool(timeout=0.3)
    def blocks(self) -> str:
        """Blocks its thread for longer than its timeout."""
        time.sleep(1.0)
        return "late"

    @function_tool
    async def raises(self) -> str:
        """Always fails."""
        raise RuntimeError("the database is on fire")

    @function_tool
    async def odd_value(self, kind: str) -> Any:
        """Returns a value JSON cannot express.

        Args:
            kind: which odd value.
        """
        values: dict[str, Any] = {
            "object": object(),
            "set": {3, 1, 2},
            "bytes": b"\xff\x00raw",
            "complex": complex(1, 2),
            "inf": float("inf"),
            "nested": {"when": time, "items": [object()]},
        }
        return values[kind]

    @function_tool
    async def huge(self) -> str:
        """Returns five megabytes."""
        return "x" * 5_000_000

    @function_tool
    async def echo(self, text: str) -> str:
        """Echoes its argument.

        Args:
            text: what to echo.
        """
        return text


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await start_rig(agent=Unruly())
    yield r
    await r.aclose()


async def _call(rig: Rig, command: str, name: str) -> dict[str, Any]:
    """Say ``command``, wait for the tool's report and the model's answer to its output."""
    before = len(rig.events.of("function_call"))
    await rig.session.send_text(command)
    await rig.events.wait(lambda: len(rig.events.of("function_call")) > before)
    call: dict[str, Any] = rig.events.of("function_call")[before]
    await rig.events.wait(
        lambda: any(f"Tool {name} returned" in t for t in rig.events.finals("agent")[-1:])
    )
    await rig.idle()
    assert await rig.turn("are you still there") == "You said: are you still there."
    assert rig.events.fatal_errors() == []
    return call


@pytest.mark.parametrize(
    ("command", "name", "expect"),
    [
        pytest.param("call hangs {}", "hangs", "timed out", id="hangs"),
        pytest.param("call blocks {}", "blocks", "timed out", id="blocks-a-thread"),
        pytest.param("call raises {}", "raises", "the database is on fire", id="raises"),
        pytest.param("call no_such_tool {}", "no_such_tool", "no tool named", id="unknown-tool"),
        pytest.param("call echo {not json", "echo", "not valid JSON", id="arguments-not-json"),
        pytest.param('call echo {"txt": 1}', "echo", "text", id="arguments-wrong-shape"),
    ],
)
async def test_failing_calls_are_reported_and_answered(
    rig: Rig, ledger: Ledger, command: str, name: str, expect: str
) -> None:
    call = await _call(rig, command, name)
    assert call["name"] == name
    assert call["is_error"] is True
    assert expect in call["output"]
    ledger.record(AREA, f"tool call: {name if 'echo' not in command else command[5:]}")


@pytest.mark.parametrize(
    "kind",
    ["object", "set", "bytes", "complex", "inf", "nested"],
)
async def test_values_json_cannot_express(rig: Rig, ledger: Ledger, kind: str) -> None:
    call = await _call(rig, f'call odd_value {{"kind": "{kind}"}}', "odd_value")
    ok = call["is_error"] is False and isinstance(call["output"], str) and bool(call["output"])
    ledger.record(
        AREA,
        "tool returns a value JSON cannot express",
        survived=int(ok),
        lost=None if ok else f"{kind}: reported to the model as a failure",
    )
    assert ok, call


async def test_a_huge_result_is_cut_to_size(rig: Rig, ledger: Ledger) -> None:
    call = await _call(rig, "call huge {}", "huge")
    assert call["is_error"] is False
    assert len(call["output"]) <= DEFAULT_MAX_OUTPUT_CHARS
    ledger.record(AREA, "tool returns 5 MB (cut to 16 KiB)")


@settings(max_examples=200, deadline=None, database=None)
@given(arguments=st.text(max_size=60) | JSON_VALUES.map(json.dumps))
def test_invoke_never_raises_on_any_arguments(ledger: Ledger, arguments: str) -> None:
    """What the model sends as arguments is arbitrary text; invoke always gives a result."""
    tool = Unruly().echo
    result = asyncio.run(tool.invoke(arguments))
    assert isinstance(result.output, str) and result.output
    if result.is_error:
        assert result.output.startswith("Error: ")
    ledger.record(AREA, "FunctionTool.invoke on arbitrary argument text")

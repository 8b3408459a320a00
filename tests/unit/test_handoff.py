"""Handoff values, tools made from a given schema, and the session's tool-call bookkeeping."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from realtalk import Agent, AgentSession, function_tool
from realtalk.handoff import Handoff, ToolCalls, as_handoff, handoff_result, history_to_delete
from realtalk.tools import FunctionTool, ToolResult
from tests.unit.test_session import FakeModel


class Booking(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="book")


def test_what_a_tool_may_return_to_hand_over() -> None:
    agent = Booking()
    assert as_handoff(agent) == Handoff(agent)
    assert as_handoff((agent, "over to booking")) == Handoff(agent, output="over to booking")
    explicit = Handoff(agent, message="Booking here.")
    assert as_handoff(explicit) is explicit
    for value in ("text", None, (agent,), (agent, 3), ("x", "y"), [agent]):
        assert as_handoff(value) is None
    assert Handoff(agent).output_text() == "Transferred to Booking."
    assert Agent(instructions="x", name="Desk").name == "Desk"
    with pytest.raises(TypeError):
        Handoff("not an agent")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Handoff(agent, message="")


async def test_a_tool_returning_an_agent_gives_a_handoff_result() -> None:
    target = Booking()

    @function_tool
    async def transfer() -> Agent:
        """Transfer."""
        return target

    @function_tool
    async def transfer_with_text() -> tuple[Agent, str]:
        """Transfer."""
        return target, "the caller wants Friday"

    calls, caller = ToolCalls(), Booking()
    result = await calls.run(caller, transfer, "{}")
    assert result.handoff == Handoff(target) and result.output == "Transferred to Booking."
    assert not result.is_error and result.reply
    result = await calls.run(caller, transfer_with_text, "{}")
    assert result.handoff == Handoff(target, output="the caller wants Friday")
    assert result.output == "the caller wants Friday"
    # The tool alone knows nothing of agents: the handoff is the session's (ToolCalls') reading.
    assert (await transfer.invoke("{}", interpret=handoff_result)).handoff == Handoff(target)
    assert (await transfer.invoke("{}")).handoff is None


async def test_a_tool_from_a_given_schema_is_cleaned_and_gets_the_raw_arguments() -> None:
    seen: list[dict[str, Any]] = []

    async def call(arguments: dict[str, Any]) -> Any:
        seen.append(arguments)
        if arguments.get("fail"):
            return ToolResult.failure("the server said no")
        return {"ok": True}

    schema = {
        "type": "object",
        "title": "lookupArguments",
        "properties": {
            "title": {"type": "string", "title": "Title"},
            "where": {"$ref": "#/$defs/Place"},
        },
        "required": ["title"],
        "$defs": {"Place": {"title": "Place", "type": "string", "const": "here"}},
    }
    tool = FunctionTool.from_schema(
        call, name="lookup", description="Look up.", parameters=schema, timeout=5
    )
    assert tool.to_openai() == {
        "type": "function",
        "name": "lookup",
        "description": "Look up.",
        "parameters": {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "where": {"type": "string", "enum": ["here"]},
            },
            "required": ["title"],
        },
    }
    assert (await tool.invoke('{"title": "x", "extra": 1}')).output == '{"ok":true}'
    assert seen == [{"title": "x", "extra": 1}]  # unvalidated: the server validates
    failed = await tool.invoke('{"fail": true}')
    assert failed.is_error and failed.output == "Error: the server said no"
    assert (await tool.invoke("[1]")).is_error
    with pytest.raises(TypeError):  # a recursive schema cannot be inlined
        FunctionTool.from_schema(
            call,
            name="bad",
            description="",
            parameters={"$ref": "#/$defs/N", "$defs": {"N": {"items": {"$ref": "#/$defs/N"}}}},
        )


async def test_a_wrapped_tool_keeps_the_schema_and_calls_the_invoker() -> None:
    @function_tool
    def double(x: int) -> int:
        """Double."""
        return 2 * x

    async def invoker(arguments_json: str) -> ToolResult:
        inner = await double.invoke(arguments_json)
        return ToolResult(output=f"via wrapper: {inner.output}")

    wrapped = double.with_invoker(invoker)
    assert wrapped.to_openai() == double.to_openai()
    assert (await wrapped.invoke('{"x": 4}')).output == "via wrapper: 8"
    assert (await double.invoke('{"x": 4}')).output == "8"


async def test_settle_waits_the_grace_then_cancels_with_a_reason() -> None:
    calls = ToolCalls()
    old, other = Booking(), Booking()
    release = asyncio.Event()

    @function_tool
    async def quick() -> str:
        """Quick."""
        await release.wait()
        return "done"

    @function_tool
    async def stuck() -> str:
        """Stuck."""
        await asyncio.sleep(60)
        return "never"

    quick_call = asyncio.ensure_future(calls.run(old, quick, "{}"))
    stuck_call = asyncio.ensure_future(calls.run(old, stuck, "{}"))
    others_call = asyncio.ensure_future(calls.run(other, stuck, "{}"))
    await asyncio.sleep(0)
    assert sorted(calls.running(old)) == ["quick", "stuck"]
    release.set()
    cancelled = await calls.settle(old, grace_s=0.2, reason="cancelled: handed over")
    assert cancelled == ["stuck"]
    assert (await quick_call).output == "done"
    result = await stuck_call
    assert result.is_error and result.output == "Error: cancelled: handed over"
    assert calls.running(other) == ["stuck"]  # another agent's calls are left alone
    others_call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await others_call
    assert calls.running(other) == []


def test_userdata_is_typed_shared_state() -> None:
    session: AgentSession[dict[str, int]] = AgentSession(
        agent=Booking(), model=FakeModel([]), userdata={"visits": 1}
    )
    session.userdata["visits"] += 1
    assert session.userdata == {"visits": 2}
    bare: AgentSession[Any] = AgentSession(agent=Booking(), model=FakeModel([]))
    with pytest.raises(RuntimeError, match="no userdata"):
        _ = bare.userdata
    with pytest.raises(ValueError):
        AgentSession(agent=Booking(), model=FakeModel([]), handoff_grace_s=-1)
    assert json.dumps(Handoff(Booking()).output_text())


def test_history_to_delete_keeps_the_last_messages_and_the_calls_they_need() -> None:
    def msg(i: str) -> dict[str, Any]:
        return {"id": i, "type": "message"}

    def call(i: str, call_id: str) -> dict[str, Any]:
        return {"id": i, "type": "function_call", "call_id": call_id}

    def out(i: str, call_id: str) -> dict[str, Any]:
        return {"id": i, "type": "function_call_output", "call_id": call_id}

    items = [
        msg("u1"),
        call("c1", "a"),
        out("o1", "a"),
        msg("m1"),
        call("c2", "b"),  # its output comes after the cut: the call stays
        msg("u2"),
        out("o2", "b"),
        call("c3", "c"),  # no output yet (the handoff's own call): stays
    ]
    assert history_to_delete(items, 1) == ["u1", "c1", "o1", "m1"]
    assert history_to_delete(items, 3) == []
    assert history_to_delete(items, 10) == []
    assert history_to_delete(items, 0) == ["u1", "c1", "o1", "m1", "c2", "u2", "o2"]
    with pytest.raises(ValueError):
        Agent(instructions="x", keep_history=-1)

"""Handoffs: a tool hands the conversation to another agent.

A function tool hands off by returning one of:

- an :class:`~realtalk.agent.Agent`: the new agent takes over and answers the tool's output;
- ``(agent, "text")`` (LiveKit's shape): ``text`` is the tool's output the new agent reads;
- :class:`Handoff` ``(agent, message=..., output=...)``: ``message`` is said verbatim by the
  new agent right after the switch (its first words), ``output`` is the tool's output.

:class:`~realtalk.session.AgentSession` performs the switch (see ``docs/agents.md`` for the
order and the rules). This module holds the value a tool returns and :class:`ToolCalls`, which
runs every tool call through the session so that calls can be told apart by agent and the old
agent's calls can be finished or cancelled at a switch.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from realtalk.agent import Agent
from realtalk.tools import FunctionTool, ToolResult

__all__ = ["Handoff", "ToolCalls", "as_handoff", "handoff_result", "history_to_delete"]


@dataclass(frozen=True, slots=True)
class Handoff:
    """What a tool returns to hand the conversation to ``agent``.

    Args:
        agent: the agent that takes over (not attached to any session).
        message: said verbatim by the new agent right after the switch; None: the new agent
            replies to the tool's output by itself (unless its ``on_enter`` already spoke).
        output: the tool's output, as the models read it; defaults to
            ``"Transferred to <agent name>."``.
    """

    agent: Agent
    message: str | None = None
    output: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.agent, Agent):
            raise TypeError(f"Handoff needs an Agent, got {type(self.agent).__name__}")
        if self.message is not None and (not isinstance(self.message, str) or not self.message):
            raise ValueError("Handoff message must be a non-empty str or None")

    def output_text(self) -> str:
        return self.output if self.output is not None else f"Transferred to {self.agent.name}."


def as_handoff(value: object) -> Handoff | None:
    """The :class:`Handoff` a tool's return value asks for, or None for an ordinary result."""
    if isinstance(value, Handoff):
        return value
    if isinstance(value, Agent):
        return Handoff(value)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], Agent)
        and isinstance(value[1], str)
    ):
        return Handoff(value[0], output=value[1])
    return None


def handoff_result(value: object) -> ToolResult | None:
    """The result of a tool call that returned ``value``, when ``value`` asks for a handoff
    (the session performs the switch); None for an ordinary value. Tools know nothing of
    agents: :meth:`ToolCalls.run` hands this to :meth:`FunctionTool.invoke`."""
    handoff = as_handoff(value)
    if handoff is None:
        return None
    return ToolResult(output=handoff.output_text(), handoff=handoff)


@dataclass(eq=False)
class _Call:
    agent: Agent
    name: str
    task: asyncio.Task[ToolResult]
    cancel_reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


Runner = Callable[[Agent, FunctionTool, str], Awaitable[ToolResult]]


class ToolCalls:
    """The tool calls in flight, by agent.

    :meth:`wrap` gives the model a copy of a tool (same name, schema and timeout) whose calls go
    through ``runner`` (the session), which calls :meth:`run`: the tool runs in a task of its own
    so that the session can cancel it at a switch and still hand the model an output (an
    ``Error: cancelled ...`` text): every call the model made gets exactly one output.
    """

    def __init__(self) -> None:
        self._calls: set[_Call] = set()

    def wrap(self, agent: Agent, tool: FunctionTool, runner: Runner) -> FunctionTool:
        return tool.with_invoker(functools.partial(runner, agent, tool))

    def running(self, agent: Agent) -> list[str]:
        """Names of ``agent``'s tools running now."""
        return [call.name for call in self._calls if call.agent is agent]

    async def run(self, agent: Agent, tool: FunctionTool, arguments_json: str) -> ToolResult:
        task = asyncio.get_running_loop().create_task(
            tool.invoke(arguments_json, interpret=handoff_result)
        )
        call = _Call(agent, tool.name, task)
        self._calls.add(call)
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:  # the caller (the model's runner) was cancelled
            task.cancel()
            raise
        finally:
            self._calls.discard(call)
            call.done.set()
        if task.cancelled():
            return ToolResult.failure(call.cancel_reason or f"tool {tool.name} was cancelled")
        return task.result()

    async def settle(self, agent: Agent, *, grace_s: float, reason: str) -> list[str]:
        """Wait up to ``grace_s`` for ``agent``'s running calls to finish, then cancel those
        left with ``reason``. Returns the names of the cancelled ones."""
        calls = [c for c in self._calls if c.agent is agent]
        if calls and grace_s > 0:
            waits = [asyncio.ensure_future(c.done.wait()) for c in calls]
            await asyncio.wait(waits, timeout=grace_s)
            for wait in waits:
                wait.cancel()
        cancelled = []
        for call in calls:
            if not call.task.done():
                call.cancel_reason = reason
                call.task.cancel()
                cancelled.append(call.name)
        for call in calls:
            await call.done.wait()
        return cancelled


def history_to_delete(items: list[dict[str, Any]], keep_messages: int) -> list[str]:
    """The ids to delete from ``items`` (oldest first) so that the last ``keep_messages``
    messages remain, with every item after the oldest kept one. A call stays when its output
    stays or has not arrived yet (an output needs its call)."""
    messages = [i for i, item in enumerate(items) if item.get("type") == "message"]
    if keep_messages >= len(messages):
        return []
    cut = messages[-keep_messages] if keep_messages > 0 else len(items)
    outputs = [item.get("call_id") for item in items if item.get("type") == "function_call_output"]
    kept_outputs = {
        item.get("call_id") for item in items[cut:] if item.get("type") == "function_call_output"
    }
    doomed = []
    for item in items[:cut]:
        if item.get("type") == "function_call":
            call_id = item.get("call_id")
            if call_id in kept_outputs or call_id not in outputs:
                continue
        if isinstance(item.get("id"), str):
            doomed.append(str(item["id"]))
    return doomed

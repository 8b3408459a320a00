"""Running the model's function calls, and deciding when the model may answer with their results.

Each call runs as its own task, never inside the receive loop, so barge-in keeps working while a
slow tool runs. :meth:`FunctionTool.invoke` does validation, timeouts, sync-in-a-thread and error
text; a call of an unknown tool gets an error output the model can read. Every call ends in a
``function_call_output`` item — failures included — so a turn never stalls (a seed defect).

When to ask for the follow-up reply (:class:`FollowUp`): the server does not answer a tool output
by itself, and a ``response.create`` sent while a response is active is refused. So outputs are
sent as soon as each tool finishes, and ONE ``response.create`` follows once the response that
made the calls is done and every running tool has finished (parallel calls share one reply).
If the user speaks meanwhile, their turn goes first: a response the server creates *after* it
acknowledged the outputs already sees them, so no extra reply is asked for; outputs it did not see
get their reply once that turn is over. No output is ever dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from realtalk.tools import FunctionTool, ToolResult

__all__ = ["FollowUp", "ToolCall", "ToolRunner"]

logger = logging.getLogger("realtalk.client")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model made."""

    call_id: str
    name: str
    arguments: str
    item_id: str | None = None
    response_id: str | None = None


class ToolRunner:
    """Starts one task per call and hands each result to ``on_result`` (on the event loop)."""

    def __init__(
        self,
        on_result: Callable[[ToolCall, ToolResult], None],
        *,
        timeout_s: float | None = None,
    ) -> None:
        self._on_result = on_result
        self._timeout_s = timeout_s
        self._tools: dict[str, FunctionTool] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._seen: set[str] = set()

    def set_tools(self, tools: Iterable[FunctionTool]) -> None:
        self._tools = {tool.name: tool for tool in tools}

    @property
    def tools(self) -> list[FunctionTool]:
        return list(self._tools.values())

    @property
    def running(self) -> int:
        return len(self._tasks)

    def start(self, call: ToolCall) -> bool:
        """Run ``call`` unless a call with this ``call_id`` was already started."""
        if call.call_id in self._seen:
            return False
        self._seen.add(call.call_id)
        task = asyncio.get_running_loop().create_task(
            self._run(call), name=f"tool:{call.name}:{call.call_id}"
        )
        self._tasks[call.call_id] = task
        return True

    def started(self, call_id: str) -> bool:
        return call_id in self._seen

    async def cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run(self, call: ToolCall) -> None:
        try:
            result = await self.invoke(call)
        except asyncio.CancelledError:
            self._tasks.pop(call.call_id, None)
            raise
        self._tasks.pop(call.call_id, None)
        try:
            self._on_result(call, result)
        except Exception:
            logger.exception("handling the result of tool %s failed", call.name)

    async def invoke(self, call: ToolCall) -> ToolResult:
        """Run one call to its result; never raises (failures become error outputs)."""
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self._tools)) or "none"
            return ToolResult.failure(
                f"there is no tool named {call.name!r}; available tools: {known}"
            )
        try:
            if self._timeout_s is None:
                return await tool.invoke(call.arguments)
            return await asyncio.wait_for(tool.invoke(call.arguments), self._timeout_s)
        except TimeoutError:
            return ToolResult.failure(f"tool {call.name} timed out after {self._timeout_s:g}s")
        except Exception as exc:  # invoke() reports tool errors itself; this is a last resort
            logger.exception("tool %s failed outside its own error handling", call.name)
            return ToolResult.failure(f"tool {call.name} failed: {exc}")


class FollowUp:
    """Tool outputs that still need a reply that has seen them."""

    def __init__(self) -> None:
        self._waiting: list[str] = []  # ids of output items not yet covered by a response

    @property
    def wanted(self) -> bool:
        return bool(self._waiting)

    def output_sent(self, item_id: str) -> None:
        self._waiting.append(item_id)

    def response_started(self, acknowledged: Callable[[str], bool]) -> None:
        """A response began; outputs the server had acknowledged before it are covered."""
        self._waiting = [item_id for item_id in self._waiting if not acknowledged(item_id)]

    def covered(self) -> None:
        """A ``response.create`` was queued after every waiting output: it will see them all."""
        self._waiting.clear()

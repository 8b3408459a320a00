"""Handoff and MCP costs: what a switch of agents and a tool on an MCP server add.

- Handoff turn: a typed request whose tool hands over to another agent, until the new agent's
  line is transcribed and the session is listening again. Baseline: the same turn with an
  ordinary tool (call, output, follow-up reply) on the same session kind, in the same run.
- MCP call: one ``tools/call`` to the reference ``mcp-server-time`` over stdio, through the
  FunctionTool the agent's model sees. Baseline: an in-process function tool doing as little.
- MCP start: launching that server and listing its tools (what a handoff to an agent with a
  stdio server waits for, unless the server was started ahead). No baseline.

Local server with scripted engines in this process; everything on loopback.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

from bench.common import Row, better_ratio, row
from realtalk import Agent, AgentSession, function_tool
from realtalk.handoff import Handoff
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from realtalk.server.engines.base import Engines
from realtalk.server.engines.energy import EnergyVAD
from realtalk.server.engines.scripted import ScriptedLLM, ScriptedTranscriber, ToneVoice
from realtalk.transports.base import Transport, agent_audio


class _Drain(Transport):
    """Takes the agent's audio as fast as it comes (a speaker that never falls behind)."""

    async def attach(self, session: AgentSession[Any]) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain(session))

    async def _drain(self, session: AgentSession[Any]) -> None:
        async for _frame in agent_audio(session.audio_output, realtime=False):
            pass

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class _Next(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="next")


class _First(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="first")

    @function_tool
    async def plain(self) -> str:
        """An ordinary tool."""
        return "ok"

    @function_tool
    async def go(self) -> Handoff:
        """Hand over."""
        return Handoff(_Next(), message="Hello from next.")


async def _turn(session: AgentSession[Any], text: str) -> float:
    done = asyncio.Event()
    finals: list[str] = []

    def on_text(payload: dict[str, Any]) -> None:
        if payload["is_final"] and payload["role"] == "agent":
            finals.append(payload["text"])

    def on_state(payload: dict[str, Any]) -> None:
        if finals and payload["state"] == "listening":
            done.set()

    session.on("transcription", on_text)
    session.on("agent_state_changed", on_state)
    start = time.perf_counter()
    await session.send_text(text)
    await asyncio.wait_for(done.wait(), 30)
    elapsed = time.perf_counter() - start
    session.off("transcription", on_text)
    session.off("agent_state_changed", on_state)
    return elapsed * 1000


async def _turns(rounds: int) -> tuple[list[float], list[float]]:
    engines = Engines(EnergyVAD(), ScriptedTranscriber(), ScriptedLLM(), ToneVoice(), "scripted")
    plain, handoff = [], []
    async with LocalServer(port=0, engines=engines) as server:
        for _ in range(rounds):
            model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url)
            session: AgentSession[Any] = AgentSession(agent=_First(), model=model)
            await session.start(_Drain())
            plain.append(await _turn(session, "call plain"))
            handoff.append(await _turn(session, "call go"))
            await session.close()
    return plain, handoff


async def _mcp(rounds: int) -> tuple[list[float], list[float], list[float]]:
    from realtalk.mcp import MCPServerStdio

    starts, calls, local = [], [], []
    args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]
    for _ in range(max(1, rounds // 5)):
        server = MCPServerStdio(sys.executable, args, name="time")
        t = time.perf_counter()
        await server.start()
        starts.append((time.perf_counter() - t) * 1000)
        tool = next(tool for tool in server.tools if tool.name == "get_current_time")
        for _ in range(rounds):
            t = time.perf_counter()
            await tool.invoke('{"timezone": "UTC"}')
            calls.append((time.perf_counter() - t) * 1000)
        await server.aclose()
    first = _First()
    for _ in range(rounds):
        t = time.perf_counter()
        await first.plain.invoke("{}")
        local.append((time.perf_counter() - t) * 1000)
    return starts, calls, local


def run(quick: bool = False) -> list[Row]:
    rounds = 5 if quick else 20
    plain, handoff = asyncio.run(_turns(rounds))
    med = statistics.median
    rows = [
        row(
            "handoff turn, ms (p50)",
            med(handoff),
            med(plain),
            ratio=better_ratio(med(handoff), med(plain), lower_is_better=True),
            note="baseline: the same turn with an ordinary tool call",
        )
    ]
    try:
        starts, calls, local = asyncio.run(_mcp(rounds))
    except ImportError as exc:
        return [*rows, row(f"MCP: skipped ({exc})", None)]
    rows.append(
        row(
            "MCP stdio call, ms (p50)",
            med(calls),
            med(local),
            ratio=better_ratio(med(calls), med(local), lower_is_better=True),
            note="mcp-server-time; baseline: an in-process function tool",
        )
    )
    rows.append(row("MCP stdio server start, ms (p50)", med(starts), note="mcp-server-time"))
    return rows

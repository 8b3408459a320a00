"""ConsoleTransport in text mode against the scripted local server (no audio device needed)."""

from __future__ import annotations

import asyncio
import io

import pytest

from realtalk.agent import Agent
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from realtalk.session import AgentSession
from realtalk.transports.console import ConsoleTransport, audio_unavailable_reason


class Greeter(Agent):
    async def on_enter(self) -> None:
        await self.session.say("Hello!")

    async def on_exit(self) -> None:
        print("[on_exit ran]", file=self.console)

    console: io.StringIO


async def chat(server: LocalServer, lines: str, agent: Agent | None = None) -> str:
    out = io.StringIO()
    transport = ConsoleTransport(audio=False, stdin=io.StringIO(lines), stdout=out)
    model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url)
    session = AgentSession(agent=agent or Agent(instructions="Be brief."), model=model)
    await session.start(transport)
    await asyncio.wait_for(session.wait_closed(), 20)  # end of input ends the conversation
    return out.getvalue()


async def test_a_typed_line_is_answered_and_end_of_input_closes(
    scripted_server: LocalServer,
) -> None:
    printed = await chat(scripted_server, "hello there\n")
    lines = printed.splitlines()
    assert lines[0].startswith("Text mode")
    assert "agent: You said: hello there." in lines
    assert printed.index("Text mode") < printed.index("agent: You said")


async def test_quit_ends_after_the_greeting_and_on_exit_runs(
    scripted_server: LocalServer,
) -> None:
    agent = Greeter(instructions="Be brief.")
    agent.console = io.StringIO()
    printed = await chat(scripted_server, "/quit\nnever sent\n", agent)
    assert "never sent" not in printed
    assert [line for line in printed.splitlines() if line.startswith("agent:")]  # the greeting
    assert agent.console.getvalue() == "[on_exit ran]\n"


async def test_tool_calls_are_shown(scripted_server: LocalServer) -> None:
    class Clock(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="x", tools=[self.now])

        async def now(self) -> str:
            """The time now."""
            return "noon"

    printed = await chat(scripted_server, "call now\n", Clock())
    assert "[tool now({}) -> noon]" in printed
    assert "agent: Tool now returned noon." in printed


def test_voice_mode_falls_back_to_text_and_says_why() -> None:
    reason = audio_unavailable_reason()
    if reason is None:
        pytest.skip("this machine has a microphone and a speaker")
    out = io.StringIO()
    transport = ConsoleTransport(stdin=io.StringIO(""), stdout=out)
    assert transport.audio is False
    assert out.getvalue() == f"Voice mode unavailable: {reason}. Using text mode.\n"
    with pytest.raises(RuntimeError, match="unavailable"):
        ConsoleTransport(audio=True, stdin=io.StringIO(""), stdout=out)

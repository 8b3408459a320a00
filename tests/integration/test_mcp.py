"""MCP tools against real servers: the reference ``mcp-server-time`` over stdio, and a server
made with the ``mcp`` SDK over stdio and streamable HTTP (``mcp_test_server.py``). Tool calls
go through an AgentSession on the scripted local server, over a real WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from realtalk import Agent, AgentSession
from realtalk.mcp import MCPServer, MCPServerHTTP, MCPServerStdio
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from tests.integration.test_session_scripted import Events, Speaker

pytest.importorskip("mcp")

TIMEOUT_S = 60.0  # starting a Python MCP server takes seconds on a loaded machine
TEST_SERVER = str(Path(__file__).with_name("mcp_test_server.py"))


def time_server(**options: Any) -> MCPServerStdio:
    pytest.importorskip("mcp_server_time")
    args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]
    return MCPServerStdio(sys.executable, args, name="time", **options)


@pytest.fixture
async def http_server() -> AsyncIterator[str]:
    """mcp_test_server.py over streamable HTTP on 127.0.0.1 and a free port; its URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, TEST_SERVER, "--http", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT_S)
        assert line.startswith(b"PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}/mcp"
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


@pytest.fixture
async def running(scripted_server: LocalServer) -> AsyncIterator[Callable[..., Any]]:
    sessions: list[AgentSession[Any]] = []

    async def start(*servers: MCPServer) -> tuple[AgentSession[Any], Events]:
        agent = Agent(instructions="You use tools.", mcp_servers=list(servers))
        model = OpenAIRealtime(model="gpt-realtime", base_url=scripted_server.base_url)
        session: AgentSession[Any] = AgentSession(agent=agent, model=model)
        events = Events(session)
        sessions.append(session)
        await session.start(Speaker())
        return session, events

    yield start
    for session in sessions:
        await session.close()


def confirmed_tools(session: AgentSession[Any]) -> dict[str, Any]:
    model = session.model
    assert isinstance(model, OpenAIRealtime)
    return {tool["name"]: tool for tool in model.session_settings.get("tools", [])}


async def poll(condition: Callable[[], bool]) -> None:
    """Wait for a condition no session event announces."""
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await asyncio.sleep(0.05)


async def call(session: AgentSession[Any], events: Events, text: str) -> dict[str, Any]:
    """Say ``text`` (a "call <tool> {...}" line); the function_call event of that tool."""
    name = text.split()[1]
    before = len(events.of("function_call"))

    def made() -> list[dict[str, Any]]:
        return [c for c in events.of("function_call")[before:] if c["name"] == name]

    await session.send_text(text)
    await events.wait(lambda: bool(made()), TIMEOUT_S)
    # The turn ends with the reply to the output. Typing the next line before that would let
    # the scripted LLM answer the new line in the pending follow-up, then again in its reply.
    await events.wait(lambda: session.agent_state == "listening", TIMEOUT_S)
    return made()[0]


async def test_the_reference_time_server_over_stdio(running: Callable[..., Any]) -> None:
    server = time_server()
    session, events = await running(server)
    tools = confirmed_tools(session)
    assert sorted(tools) == ["convert_time", "get_current_time"]
    # The server's schema, cleaned like ours: no titles, descriptions kept.
    params = tools["get_current_time"]["parameters"]
    assert params["required"] == ["timezone"]
    assert "title" not in json.dumps(params)
    assert "IANA" in params["properties"]["timezone"]["description"]

    result = await call(session, events, 'call get_current_time {"timezone": "Europe/Paris"}')
    assert not result["is_error"], result
    assert json.loads(result["output"])["timezone"] == "Europe/Paris"
    await events.wait(lambda: bool(events.finals("agent")), TIMEOUT_S)
    assert events.finals("agent")[0].startswith("Tool get_current_time returned {")

    # A bad argument is the server's error, as text the model reads.
    bad = await call(session, events, 'call get_current_time {"timezone": "Mars/Olympus"}')
    assert bad["is_error"] and "Mars/Olympus" in bad["output"]

    await session.close()
    assert server.tools and server._client is None  # the subprocess is gone with the session


async def test_an_sdk_server_over_streamable_http(
    running: Callable[..., Any], http_server: str
) -> None:
    server = MCPServerHTTP(http_server, name="test")
    session, events = await running(server)
    assert "extra" not in confirmed_tools(session)

    added = await call(session, events, 'call add {"a": 2, "b": 40}')
    assert (added["output"], added["is_error"]) == ("42", False)
    failed = await call(session, events, "call fail")
    assert failed["is_error"] and failed["output"].startswith("Error: ")

    # The server announces a changed tool list: the model gets it in a session.update.
    await call(session, events, "call unlock_extra")
    await poll(lambda: "extra" in confirmed_tools(session))  # no session event says so
    shouted = await call(session, events, 'call extra {"word": "hi"}')
    assert shouted["output"] == "HI"


async def test_a_stdio_server_that_crashes_mid_call_is_restarted(
    running: Callable[..., Any],
) -> None:
    server = MCPServerStdio(sys.executable, [TEST_SERVER], name="test")
    session, events = await running(server)
    crashed = await call(session, events, "call crash")
    assert crashed["is_error"]
    assert "stopped during the call" in crashed["output"]
    await poll(lambda: server.connections == 2)
    added = await call(session, events, 'call add {"a": 1, "b": 1}')
    assert added["output"] == "2"
    assert not [e for e in events.of("error") if e["code"] == "mcp"]


async def test_a_server_that_cannot_come_back_is_reported(
    running: Callable[..., Any], http_server: str
) -> None:
    # Over HTTP the process is not ours to restart: after the crash, reconnecting fails.
    server = MCPServerHTTP(http_server, name="test", max_restarts=1, connect_timeout_s=5)
    session, events = await running(server)
    crashed = await call(session, events, "call crash")
    assert crashed["is_error"] and "stopped during the call" in crashed["output"]
    await events.wait(lambda: any(e["code"] == "mcp" for e in events.of("error")), TIMEOUT_S)
    [error] = [e for e in events.of("error") if e["code"] == "mcp"]
    assert error["message"].startswith("MCP server test: stopped") and not error["fatal"]
    after = await call(session, events, 'call add {"a": 1, "b": 1}')
    assert after["is_error"] and "MCP server test is unavailable" in after["output"]
    assert session.agent_state != "closed"  # the conversation goes on


async def test_a_hanging_tool_times_out_and_the_conversation_goes_on(
    running: Callable[..., Any],
) -> None:
    server = MCPServerStdio(sys.executable, [TEST_SERVER], name="test", timeout_s=3)
    session, events = await running(server)
    await session.send_text("call hang")
    await poll(lambda: session.model._runner.running == 1)  # type: ignore[attr-defined]
    # While the tool hangs the user is answered.
    await session.send_text("are you there")
    await events.wait(lambda: "You said: are you there." in events.finals("agent"), TIMEOUT_S)
    assert events.of("function_call") == []
    await events.wait(lambda: bool(events.of("function_call")), TIMEOUT_S)
    [hung] = events.of("function_call")
    assert hung["is_error"] and hung["output"] == "Error: tool hang timed out after 3s"
    # The server itself is still fine.
    added = await call(session, events, 'call add {"a": 2, "b": 2}')
    assert added["output"] == "4"


async def test_an_older_protocol_server_announces_list_changes_by_notification() -> None:
    # The pre-2026 handshake: changes come as notifications/tools/list_changed.
    server = MCPServerStdio(sys.executable, [TEST_SERVER], name="test", protocol="legacy")
    changed = asyncio.Event()
    server.on_tools_changed = lambda _server: changed.set()
    await server.start()
    try:
        assert server._client.protocol_version < "2026"
        unlock = next(tool for tool in server.tools if tool.name == "unlock_extra")
        assert (await unlock.invoke("{}")).output == "extra unlocked"
        await asyncio.wait_for(changed.wait(), TIMEOUT_S)
        extra = next(tool for tool in server.tools if tool.name == "extra")
        assert (await extra.invoke('{"word": "ok"}')).output == "OK"
    finally:
        await server.aclose()
    assert server._client is None

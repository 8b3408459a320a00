"""Tool calls over a real socket: sync, async, raising, bad arguments, and a slow tool during
which the user barges in; the conversation goes on after each."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from realtalk.agent import Agent
from realtalk.media.frame import AudioFrame
from realtalk.tools import function_tool


@function_tool
def get_weather(city: str) -> dict:
    """Current weather in a city.

    Args:
        city: the city.
    """
    return {"city": city, "temp_c": 18}


@function_tool
async def lookup(query: str) -> str:
    """Search the notes.

    Args:
        query: what to look for.
    """
    await asyncio.sleep(0.01)
    return f"notes about {query}"


@function_tool
def broken() -> str:
    """A tool whose backend is down."""
    raise RuntimeError("database down")


@function_tool(timeout=10)
async def slow_search(query: str) -> str:
    """A search that takes a while.

    Args:
        query: what to search.
    """
    await asyncio.sleep(1.5)
    return f"slow result for {query}"


AGENT = Agent(instructions="Use tools.", tools=[get_weather, lookup, broken, slow_search])


async def ask(rig: Any, text: str, expected_reply: str) -> None:
    before = len(rig.log.finals("agent"))
    await rig.model.send_text_message(text)
    await rig.log.wait(lambda: len(rig.log.finals("agent")) > before)
    await rig.log.wait(lambda: expected_reply in rig.log.finals("agent")[before:])


@pytest.mark.parametrize(
    ("text", "name", "is_error", "reply"),
    [
        ('call get_weather {"city": "Paris"}', "get_weather", False, 'returned {"city":"Paris"'),
        ('call lookup {"query": "tea"}', "lookup", False, "returned notes about tea."),
        ("call broken {}", "broken", True, "database down"),
        ("call get_weather {not json", "get_weather", True, "Tool get_weather returned Error"),
    ],
)
async def test_tool_call_then_the_conversation_goes_on(
    make_rig: Callable[..., Any], text: str, name: str, is_error: bool, reply: str
) -> None:
    rig = await make_rig()
    await rig.model.update_agent(AGENT)
    await rig.model.send_text_message(text)
    call = await rig.log.next("function_call")
    assert call["name"] == name and call["is_error"] is is_error
    await rig.log.wait(lambda: any(reply in t for t in rig.log.finals("agent")))
    followups = [r for r in rig.log.of("response_created") if r["kind"] == "tool_followup"]
    assert len(followups) == 1
    await ask(rig, "still there", "You said: still there.")
    assert rig.log.of("error") == []
    creates = rig.connection.of("response.create")
    assert len(creates) == 3  # the question, ONE follow-up, the next question


async def test_barge_in_while_a_slow_tool_runs(
    make_rig: Callable[..., Any], speech: Callable[[str], list[AudioFrame]]
) -> None:
    rig = await make_rig()
    await rig.model.update_agent(AGENT)
    long = " ".join(f"word{i}" for i in range(20))
    await rig.model.send_text_message(long)
    await rig.log.next("agent_speech_started")
    await rig.model.send_text_message('call slow_search {"query": "maps"}')
    await rig.log.wait(
        lambda: any(r["kind"] == "reply" for r in rig.log.of("response_done")[1:])
    )  # the call was made; the tool now runs for 1.5 s while the first reply still plays

    rig.mic.say(speech("hurry up please"))
    await rig.log.next("user_speech_started")
    await asyncio.sleep(0.1)
    cut_at = rig.speaker.cut_at
    assert cut_at is not None
    assert all(silent for t, silent in rig.speaker.after_flush if t > cut_at)
    assert rig.log.of("function_call") == []  # barge-in happened while the tool was running

    call = await rig.log.next("function_call")
    assert call["name"] == "slow_search" and not call["is_error"]
    await rig.log.wait(lambda: any("slow result for maps" in t for t in rig.log.finals("agent")))
    await rig.log.wait(  # the reply to the user's barge-in
        lambda: any(t.startswith("You said: (speech") for t in rig.log.finals("agent"))
    )
    await ask(rig, "and now", "You said: and now.")
    assert rig.log.of("error") == []
    outputs = [
        e
        for e in rig.connection.of("conversation.item.create")
        if e["item"]["type"] == "function_call_output"
    ]
    assert len(outputs) == 1

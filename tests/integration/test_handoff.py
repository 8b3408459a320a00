"""Handoffs on the local server with the scripted engine, over a real WebSocket.

What the server holds is read from two places: the session it confirms (``session.updated``,
kept by the client as ``model.session_settings``) and what its LLM is handed for each reply (a
recording ScriptedLLM): instructions, tools and the conversation as the model sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from realtalk import Agent, AgentSession, function_tool
from realtalk.handoff import Handoff
from realtalk.media.frame import AudioFrame
from realtalk.media.wav import iter_frames, read_wav
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.server import LocalServer
from realtalk.server.engines.base import ChatMessage, LLMChunk
from realtalk.server.engines.scripted import ScriptedLLM
from tests.conformance import check_client_event
from tests.conftest import make_engines, make_speech_wav
from tests.integration.test_session_scripted import Events, Speaker

TIMEOUT_S = 30.0


@dataclass
class Call:
    messages: list[ChatMessage]
    tools: list[str]

    @property
    def system(self) -> str:
        return self.messages[0].content if self.messages[0].role == "system" else ""

    def transcript(self) -> list[tuple[str, str]]:
        """The conversation as (role, text or call name), without the system message."""
        out = []
        for message in self.messages:
            if message.role == "system":
                continue
            if message.tool_calls:
                out += [("call", call.name) for call in message.tool_calls]
            else:
                out.append((message.role, message.content))
        return out


class RecordingLLM(ScriptedLLM):
    """The scripted LLM, keeping what it was given for each reply."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any] = "auto",
        max_output_tokens: int | None = None,
    ) -> AsyncIterator[LLMChunk]:
        self.calls.append(Call(list(messages), [str(tool["name"]) for tool in tools]))
        return super().stream(
            messages, tools=tools, tool_choice=tool_choice, max_output_tokens=max_output_tokens
        )


@dataclass
class Shared:
    """Typed state both agents use (session.userdata)."""

    name: str | None = None
    visits: list[str] = field(default_factory=list)


class Booking(Agent):
    def __init__(
        self, message: str | None = "Booking desk here. Which day?", keep: int | None = None
    ) -> None:
        super().__init__(instructions="You book tables. Ask for the day.", keep_history=keep)
        self.message = message

    async def on_enter(self) -> None:
        self.session.userdata.visits.append("booking")

    @function_tool
    async def book_table(self, day: str) -> str:
        """Book a table.

        Args:
            day: The day.
        """
        return f"booked {day} for {self.session.userdata.name}"


class FrontDesk(Agent):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(instructions="You are the front desk. Greet and route callers.")
        self.exit_gate: asyncio.Event | None = None
        self.exiting = asyncio.Event()
        self.slow_started = asyncio.Event()
        self.slow_cancelled = False
        self.booking = Booking(**kwargs)

    async def on_exit(self) -> None:
        self.session.userdata.visits.append("front desk out")
        self.exiting.set()
        if self.exit_gate is not None:
            await self.exit_gate.wait()

    @function_tool
    async def remember_name(self, name: str) -> str:
        """Remember the caller's name."""
        self.session.userdata.name = name
        return "noted"

    @function_tool
    async def transfer_to_booking(self) -> Handoff:
        """Hand the caller to the booking desk."""
        return Handoff(self.booking, message=self.booking.message)

    @function_tool
    async def slow_lookup(self) -> str:
        """A lookup that takes long."""
        self.slow_started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.slow_cancelled = True
            raise
        return "found"


@pytest.fixture
async def rig() -> AsyncIterator[Callable[..., Any]]:
    llm = RecordingLLM()
    engines = make_engines()
    engines.llm = llm
    server = LocalServer(
        port=0, engines=engines, partial_transcripts=False, speculative_transcripts=False
    )
    sessions: list[AgentSession[Shared]] = []
    async with server:

        async def start(
            agent: Agent, *, speaker: Speaker | None = None, grace_s: float = 2.0
        ) -> tuple[AgentSession[Shared], Events, RecordingLLM]:
            model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url)
            session: AgentSession[Shared] = AgentSession(
                agent=agent, model=model, userdata=Shared(), handoff_grace_s=grace_s
            )
            events = Events(session)
            session.on("handoff", lambda payload: events._add("handoff", payload))
            sessions.append(session)
            await session.start(speaker or Speaker())
            return session, events, llm

        yield start
        for session in sessions:
            await session.close()


def settings(session: AgentSession[Any]) -> tuple[str, list[str]]:
    """The instructions and tool names the server last confirmed."""
    model = session.model
    assert isinstance(model, OpenAIRealtime)
    confirmed = model.session_settings
    return confirmed.get("instructions", ""), [t["name"] for t in confirmed.get("tools", [])]


async def idle(session: AgentSession[Any], events: Events) -> None:
    await events.wait(lambda: session.agent_state == "listening", TIMEOUT_S)


def record_sent(session: AgentSession[Any]) -> list[dict[str, Any]]:
    """Every client event the model sends from now on."""
    model = session.model
    assert isinstance(model, OpenAIRealtime)
    sent: list[dict[str, Any]] = []
    take = model.core.events_to_send  # every client event but audio appends goes through it

    def recording() -> list[dict[str, Any]]:
        out = take()
        sent.extend(out)
        return out

    model.core.events_to_send = recording  # type: ignore[method-assign]
    return sent


async def test_a_tool_hands_over_and_only_the_new_agent_is_in_effect(
    rig: Callable[..., Any],
) -> None:
    front = FrontDesk()
    session, events, llm = await rig(front)
    sent = record_sent(session)
    assert settings(session) == (
        front.instructions,
        ["remember_name", "transfer_to_booking", "slow_lookup"],
    )

    await session.send_text('call remember_name {"name": "Ada"}')
    await events.wait(lambda: len(events.finals("agent")) == 1)
    await idle(session, events)
    mark = len(sent)
    await session.send_text("call transfer_to_booking")
    await events.wait(lambda: len(events.finals("agent")) == 2)
    await idle(session, events)

    # On the wire (what OpenAI gets too): one session.update, then the handoff's output, then
    # the new agent's line; all valid GA client events.
    switch = [e["type"] for e in sent[mark:] if e["type"] != "input_audio_buffer.append"]
    assert switch == [
        "conversation.item.create",  # the user's text
        "response.create",
        "session.update",
        "conversation.item.create",  # the handoff's function_call_output
        "response.create",  # the new agent's line
    ]
    for event in sent:
        check_client_event(event)

    assert session.agent is front.booking
    [handoff] = events.of("handoff")
    assert handoff == {
        "from": "FrontDesk",
        "to": "Booking",
        "tool": "transfer_to_booking",
        "message": "Booking desk here. Which day?",
        "cancelled_tools": [],
    }
    # The server's session: the booking agent's instructions and tools, nothing of the old.
    assert settings(session) == ("You book tables. Ask for the day.", ["book_table"])
    assert session.userdata.visits == ["front desk out", "booking"]

    # A call of the old agent's tool now reaches no tool; the new one's tool works, with the
    # state the old agent left in userdata.
    await session.send_text("call remember_name")
    await events.wait(lambda: len(events.finals("agent")) == 3)
    await idle(session, events)
    await session.send_text('call book_table {"day": "friday"}')
    await events.wait(lambda: len(events.finals("agent")) == 4)
    await idle(session, events)

    calls = events.of("function_call")
    assert [(c["name"], c["is_error"]) for c in calls] == [
        ("remember_name", False),
        ("transfer_to_booking", False),
        ("remember_name", True),
        ("book_table", False),
    ]
    assert "there is no tool named 'remember_name'" in calls[2]["output"]
    assert calls[3]["output"] == "booked friday for Ada"

    # What the LLM was given for each reply: old agent before the switch, new agent after.
    assert [(c.system, c.tools) for c in llm.calls] == [
        (front.instructions, ["remember_name", "transfer_to_booking", "slow_lookup"]),
        (front.instructions, ["remember_name", "transfer_to_booking", "slow_lookup"]),
        (front.instructions, ["remember_name", "transfer_to_booking", "slow_lookup"]),
        # (the handoff's line is said verbatim, without the LLM)
        *[("You book tables. Ask for the day.", ["book_table"])] * 4,
    ]
    # The transcript across the switch: complete, in order, one voice line for the handoff
    # and no goodbye from the old agent.
    assert events.finals("agent") == [
        "Tool remember_name returned noted.",
        "Booking desk here. Which day?",
        "Tool remember_name returned Error: there is no tool named 'remember_name'; "
        "available tools: book_table.",
        "Tool book_table returned booked friday for Ada.",
    ]
    assert llm.calls[-1].transcript() == [
        ("user", 'call remember_name {"name": "Ada"}'),
        ("call", "remember_name"),
        ("tool", "noted"),
        ("assistant", "Tool remember_name returned noted."),
        ("user", "call transfer_to_booking"),
        ("call", "transfer_to_booking"),
        ("tool", "Transferred to Booking."),
        ("assistant", "Booking desk here. Which day?"),
        ("user", "call remember_name"),
        ("call", "remember_name"),
        ("tool", calls[2]["output"]),
        ("assistant", events.finals("agent")[2]),
        ("user", 'call book_table {"day": "friday"}'),
        ("call", "book_table"),
        ("tool", "booked friday for Ada"),
    ]
    # The client's mirror (what a reconnect replays) holds the same items in the same order.
    model = session.model
    assert isinstance(model, OpenAIRealtime)
    kinds = {"message": None, "function_call": "call", "function_call_output": "tool"}
    mirrored = [kinds[item["type"]] or item["role"] for item in model.history()]
    assert mirrored == [role for role, _ in llm.calls[-1].transcript()] + ["assistant"]
    # Turns are counted per agent.
    assert sorted(session.metrics_by_agent) == ["Booking", "FrontDesk"]
    assert sum(len(turns) for turns in session.metrics_by_agent.values()) == len(session.metrics)


async def test_without_a_message_the_new_agent_answers_the_handoff(
    rig: Callable[..., Any],
) -> None:
    front = FrontDesk(message=None)
    session, events, llm = await rig(front)
    await session.send_text("call transfer_to_booking")
    await events.wait(lambda: len(events.finals("agent")) == 1)
    await idle(session, events)
    assert events.finals("agent") == [
        "Tool transfer_to_booking returned Transferred to Booking.."  # the rule adds a "."
    ]
    # One reply after the switch, made with the new agent's instructions and tools.
    assert [(c.system, c.tools) for c in llm.calls[1:]] == [
        ("You book tables. Ask for the day.", ["book_table"])
    ]
    assert len(session.metrics) == 1


async def test_a_tool_of_the_old_agent_still_running_is_cancelled_after_the_grace(
    rig: Callable[..., Any],
) -> None:
    front = FrontDesk()
    session, events, llm = await rig(front, grace_s=0.2)
    await session.send_text("call slow_lookup")
    await asyncio.wait_for(front.slow_started.wait(), TIMEOUT_S)
    await session.send_text("call transfer_to_booking")
    await events.wait(lambda: bool(events.of("handoff")))
    await events.wait(lambda: "Booking desk here. Which day?" in events.finals("agent"))
    await idle(session, events)

    assert front.slow_cancelled  # really stopped, not left running
    [handoff] = events.of("handoff")
    assert handoff["cancelled_tools"] == ["slow_lookup"]
    slow = next(c for c in events.of("function_call") if c["name"] == "slow_lookup")
    assert slow["is_error"]
    assert slow["output"] == "Error: cancelled: the conversation was handed to Booking"
    # Every call has its output, the cancelled one before the handoff's, and the only agent
    # line after the switch is the new agent's.
    await session.send_text("thanks")
    await events.wait(lambda: "You said: thanks." in events.finals("agent"))
    transcript = llm.calls[-1].transcript()
    assert transcript[:8] == [
        ("user", "call slow_lookup"),
        ("call", "slow_lookup"),
        ("user", "call transfer_to_booking"),
        ("call", "transfer_to_booking"),
        ("tool", slow["output"]),
        ("tool", "Transferred to Booking."),
        ("assistant", "Booking desk here. Which day?"),
        ("user", "thanks"),
    ]
    assert events.finals("agent") == ["Booking desk here. Which day?", "You said: thanks."]


async def test_a_tool_of_the_old_agent_that_finishes_within_the_grace_keeps_its_result(
    rig: Callable[..., Any],
) -> None:
    front = FrontDesk()

    started = asyncio.Event()

    async def quick() -> str:
        started.set()
        await asyncio.sleep(0.5)
        return "found quickly"

    await front.update_tools([*front.tools, function_tool(quick)])
    session, events, _ = await rig(front, grace_s=20.0)
    await session.send_text("call quick")
    await asyncio.wait_for(started.wait(), TIMEOUT_S)
    await session.send_text("call transfer_to_booking")
    await events.wait(lambda: "Booking desk here. Which day?" in events.finals("agent"))
    await idle(session, events)
    outputs = {c["name"]: c["output"] for c in events.of("function_call")}
    assert outputs["quick"] == "found quickly"
    # Its output is answered by the new agent's first reply, not by a reply of its own.
    assert events.finals("agent") == ["Booking desk here. Which day?"]
    assert events.of("handoff")[0]["cancelled_tools"] == []


async def test_the_user_speaking_during_the_handoff(
    rig: Callable[..., Any], tmp_path: Path
) -> None:
    front = FrontDesk(message=None)
    front.exit_gate = asyncio.Event()
    session, events, llm = await rig(front, speaker=Speaker(realtime=True))
    await session.send_text("call transfer_to_booking")
    await asyncio.wait_for(front.exiting.wait(), TIMEOUT_S)

    # The switch is under way (the old agent is leaving) when the user speaks.
    speech = read_wav(make_speech_wav("Hello, is anyone there?", tmp_path / "q.wav"))
    silence = AudioFrame.silence(20, speech.sample_rate)
    for frame in [*iter_frames(speech, 20, pad=True), *[silence] * 50]:
        await session.push_audio(frame)
    await events.wait(lambda: len(events.finals("agent")) == 1)
    front.exit_gate.set()
    await events.wait(lambda: len(events.finals("agent")) == 2)
    await idle(session, events)
    await asyncio.sleep(0.5)  # room for a stray extra reply to show up

    [heard] = events.finals("user")
    # Until the switch the old agent answers; after it, only the new one, exactly once.
    assert events.finals("agent") == [
        f"You said: {heard}.",
        "Tool transfer_to_booking returned Transferred to Booking..",
    ]
    assert [(c.system, c.tools) for c in llm.calls] == [
        (front.instructions, ["remember_name", "transfer_to_booking", "slow_lookup"]),
        (front.instructions, ["remember_name", "transfer_to_booking", "slow_lookup"]),
        ("You book tables. Ask for the day.", ["book_table"]),
    ]
    assert llm.calls[-1].transcript() == [
        ("user", "call transfer_to_booking"),
        ("call", "transfer_to_booking"),
        ("user", heard),
        ("assistant", f"You said: {heard}."),
        ("tool", "Transferred to Booking."),
    ]
    assert settings(session) == ("You book tables. Ask for the day.", ["book_table"])


async def test_the_user_cutting_off_the_new_agents_first_words(
    rig: Callable[..., Any], tmp_path: Path
) -> None:
    front = FrontDesk(message=" ".join(["Welcome"] * 30))  # about seven seconds of speech
    speaker = Speaker(realtime=True)
    session, events, llm = await rig(front, speaker=speaker)
    await session.send_text("call transfer_to_booking")
    async with asyncio.timeout(TIMEOUT_S):
        while speaker.played_ms < 1500:  # a second and a half of the new agent's line heard
            await asyncio.sleep(0.05)

    speech = read_wav(make_speech_wav("Friday please", tmp_path / "q.wav"))
    silence = AudioFrame.silence(20, speech.sample_rate)
    for frame in [*iter_frames(speech, 20, pad=True), *[silence] * 50]:
        await session.push_audio(frame)
        # As a microphone does: a burst would let the server answer before the client's
        # truncation (sent when the user starts speaking) arrives.
        await asyncio.sleep(0.02)
    await events.wait(lambda: any(t.startswith("You said") for t in events.finals("agent")))
    await idle(session, events)

    [heard] = events.finals("user")
    # The new agent answers, with its own instructions and tools.
    assert (llm.calls[-1].system, llm.calls[-1].tools) == (
        "You book tables. Ask for the day.",
        ["book_table"],
    )
    roles = [role for role, _ in llm.calls[-1].transcript()]
    assert roles == ["user", "call", "tool", "assistant", "user"]
    said = llm.calls[-1].transcript()[3][1]  # what the user heard of the line, not more
    assert said.startswith("Welcome") and len(said.split()) < 30, said
    assert llm.calls[-1].transcript()[-1] == ("user", heard)
    assert events.finals("agent")[-1] == f"You said: {heard}."


async def test_the_new_agent_may_trim_the_conversation(rig: Callable[..., Any]) -> None:
    front = FrontDesk(keep=1)  # the booking agent keeps only the last message
    session, events, llm = await rig(front)
    await session.send_text('call remember_name {"name": "Ada"}')
    await events.wait(lambda: len(events.finals("agent")) == 1)
    await idle(session, events)
    await session.send_text("call transfer_to_booking")
    await events.wait(lambda: len(events.finals("agent")) == 2)
    await idle(session, events)
    await session.send_text("friday")
    await events.wait(lambda: len(events.finals("agent")) == 3)

    # The server's conversation lost what came before the last message, nothing after it.
    assert llm.calls[-1].transcript() == [
        ("user", "call transfer_to_booking"),
        ("call", "transfer_to_booking"),
        ("tool", "Transferred to Booking."),
        ("assistant", "Booking desk here. Which day?"),
        ("user", "friday"),
    ]
    assert session.userdata.name == "Ada"  # what the agents share is not in the conversation
    assert not events.of("error")

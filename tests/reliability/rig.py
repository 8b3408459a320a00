"""A whole agent stack wired for fault injection: local server ⇄ fault proxy ⇄ client ⇄ session.

``Rig`` owns a :class:`LocalServer` with scripted engines, a :class:`FaultProxy` in front of it,
an :class:`OpenAIRealtime` pointed at the proxy, an :class:`AgentSession` and a speaker that
takes the agent's audio as fast as it comes. ``Recorder`` keeps every session event and lets a
test wait for a condition on them (no fixed sleeps).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from realtalk.agent import Agent
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig, ReconnectPolicy
from realtalk.plugins.openai.recovery import EARLIER_HEADER
from realtalk.server import LocalServer
from realtalk.session import AgentSession
from realtalk.transports.base import Transport, agent_audio
from tests.conftest import make_engines
from tests.reliability.proxy import FaultProxy

__all__ = ["FAST_RECONNECT", "Recorder", "Rig", "Speaker", "start_rig"]

WAIT_S = 20.0
FAST_RECONNECT = ReconnectPolicy(max_attempts=8, backoff_base_s=0.05, backoff_max_s=0.4)

SESSION_EVENTS = (
    "user_state_changed",
    "agent_state_changed",
    "transcription",
    "function_call",
    "metrics",
    "error",
    "closed",
    "reconnecting",
    "reconnected",
)


class Speaker(Transport):
    """Takes the agent's audio as soon as it is playable and counts it."""

    def __init__(self) -> None:
        self.played_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def attach(self, session: AgentSession) -> None:
        self.session = session
        self._task = asyncio.get_running_loop().create_task(self._play(session))

    async def _play(self, session: AgentSession) -> None:
        async for frame in agent_audio(session.audio_output, realtime=False):
            self.played_ms += frame.duration_ms

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class Recorder:
    """Every event a session emits, in order, and a way to wait on them."""

    def __init__(self, session: AgentSession) -> None:
        self.log: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        for name in SESSION_EVENTS:
            session.on(name, lambda payload=None, name=name: self._add(name, payload))

    def _add(self, name: str, payload: Any) -> None:
        self.log.append((name, payload))
        self._changed.set()

    def of(self, name: str) -> list[Any]:
        return [payload for event, payload in self.log if event == name]

    def finals(self, role: str) -> list[str]:
        return [p["text"] for p in self.of("transcription") if p["is_final"] and p["role"] == role]

    def fatal_errors(self) -> list[Any]:
        return [e for e in self.of("error") if e.get("fatal")]

    async def wait(self, condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
        """Until ``condition()`` holds (checked on every event, and every 20 ms for state that
        changes without an event); TimeoutError with the log tail otherwise."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.02)
        except TimeoutError:
            tail = [name for name, _ in self.log[-15:]]
            raise TimeoutError(f"condition not met in {timeout} s; last events: {tail}") from None


@dataclass
class Rig:
    """The stack; build it with :func:`start_rig`, end it with :meth:`aclose`."""

    server: LocalServer
    proxy: FaultProxy
    model: OpenAIRealtime
    session: AgentSession
    events: Recorder
    speaker: Speaker
    server_options: dict[str, Any] = field(default_factory=dict)

    async def turn(self, text: str, timeout: float = WAIT_S) -> str:
        """Type ``text``, wait for the agent's next final transcript, return it."""
        before = len(self.events.finals("agent"))
        await self.session.send_text(text)
        await self.events.wait(lambda: len(self.events.finals("agent")) > before, timeout)
        return self.events.finals("agent")[before]

    async def idle(self, timeout: float = WAIT_S) -> None:
        """Until the model has nothing to do: no response, request, tool or audio pending.

        This reads the model, not ``session.agent_state``: the state shown to the user is
        checked separately (see test_agent_state_recovers_after_a_cut_mid_reply)."""
        await self.events.wait(lambda: self.model.idle(), timeout)

    def replayable_texts(self) -> list[str]:
        """The text copy of the conversation the client would replay (roles and words)."""
        out: list[str] = []
        for item in self.model.conversation.replay_items():
            if item.get("type") == "message":
                words = " ".join(str(p.get("text", "")) for p in item.get("content", []))
                if item["role"] == "system" and words.startswith(EARLIER_HEADER):
                    out += _folded(words)  # older turns, carried as one transcript
                    continue
                out.append(f"{item['role']}: {words}")
            elif item.get("type") == "function_call_output":
                out.append(f"tool output: {item['output']}")
            elif item.get("type") == "function_call":
                out.append(f"tool call: {item['name']}")
        return out

    def acknowledged(self) -> bool:
        """Whether the server acknowledged every item of the client's conversation copy."""
        items = self.model.conversation.replay_items()
        return all(self.model.conversation.is_acknowledged(str(i.get("id"))) for i in items)

    async def restart_server(self) -> None:
        """Stop the server (every connection dies with it) and start a new one on its port."""
        port = self.server.port
        await self.server.aclose()
        self.server = LocalServer(port=port, **self.server_options)
        await self.server.start()

    async def aclose(self) -> None:
        await self.session.close()
        await self.proxy.aclose()
        await self.server.aclose()


async def start_rig(
    *,
    agent: Agent | None = None,
    word_delay_s: float = 0.0,
    session_max_seconds: float = 3600.0,
    reconnect: ReconnectPolicy = FAST_RECONNECT,
    **config: Any,
) -> Rig:
    """Server, proxy, client and session, connected through the proxy."""
    options: dict[str, Any] = {
        "engines": make_engines(word_delay_s=word_delay_s),
        "partial_transcripts": False,
        "session_max_seconds": session_max_seconds,
    }
    server = LocalServer(port=0, **options)
    await server.start()
    proxy = await FaultProxy("127.0.0.1", server.port, max_lifetime_s=900).start()
    model = OpenAIRealtime(
        model="gpt-realtime",
        base_url=f"{proxy.base_url}/v1",
        config=OpenAIRealtimeConfig(reconnect=reconnect, connect_timeout_s=10.0, **config),
    )
    session = AgentSession(agent=agent or Agent(instructions="Be brief."), model=model)
    events = Recorder(session)
    speaker = Speaker()
    await session.start(speaker)
    return Rig(server, proxy, model, session, events, speaker, options)


def _folded(transcript: str) -> list[str]:
    """The lines of a folded transcript (``recovery.fold_older``) in ``replayable_texts`` form."""
    out = []
    for line in transcript.splitlines()[1:]:
        role, _, words = line.partition(": ")
        if line.startswith("(the assistant called "):
            out.append("tool call: " + line.removeprefix("(the assistant called ").split("(")[0])
        elif line.startswith("(the result: "):
            out.append("tool output: " + line.removeprefix("(the result: ").removesuffix(")"))
        else:
            out.append(f"{role.lower()}: {words}")
    return out

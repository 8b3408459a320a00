"""The agent side of the WebRTC benchmark, in its own process (the process whose CPU is counted).

``python -m bench.webrtc_agent BASE_URL`` serves :class:`realtalk.transports.webrtc.WebRTCServer`
with one ``AgentSession`` + ``OpenAIRealtime`` (to the Realtime server at BASE_URL) per peer, as
``realtalk run`` would. Each session asks for a reply every 4 s, so the agent's voice streams
back continuously. The outgoing track's frames are timed as the sender takes them.
``--bare`` runs the calls without sessions (the baseline).

Control on stdin, one command a line, answers on stdout: ``start`` (begin recording lateness),
``stop`` (answer ``{"lateness": [...], "sessions": n}`` as one JSON line). It prints
``READY <url>`` once serving, and exits when stdin closes or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
from collections.abc import Callable
from typing import Any

from bench.common import commands
from bench.ramp import Lateness
from realtalk.agent import Agent
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.session import AgentSession
from realtalk.transports.webrtc import WebRTCServer, WebRTCTransport

TEXT = "one two three four five six seven eight nine ten eleven twelve"
TALK_EVERY_S = 4.0


class _Agents:
    def __init__(self, base_url: str, *, bare: bool) -> None:
        self.base_url = base_url
        self.bare = bare
        self.lateness = Lateness()
        self.sessions: list[AgentSession] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.rng = random.Random(3)

    async def entrypoint(self, transport: WebRTCTransport) -> None:
        restart_clock = self._time_frames(transport)
        if self.bare:  # the baseline: the call alone; the track sends paced silence
            return
        model = OpenAIRealtime(model="gpt-realtime", base_url=self.base_url)
        session = AgentSession(agent=Agent(instructions="You are a benchmark."), model=model)
        await session.start(transport)
        restart_clock()  # the track now follows the AudioOutput's schedule, not its own
        self.sessions.append(session)
        task = asyncio.ensure_future(self._talk(session, self.rng.uniform(0, TALK_EVERY_S)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _time_frames(self, transport: WebRTCTransport) -> Callable[[], None]:
        """Time each frame as the sender takes it from the outgoing track (aiortc's sender
        calls ``track.recv()``, which awaits the session's ``AudioOutput.next_frame``)."""
        track = transport.audio_track
        untimed = track.recv
        clock = [self.lateness.consumer()]
        loop = asyncio.get_running_loop()

        async def recv() -> Any:
            called = loop.time()
            frame = await untimed()
            clock[0].frame(called, loop.time())
            return frame

        def restart() -> None:
            clock[0] = self.lateness.consumer()

        track.recv = recv  # type: ignore[method-assign]
        return restart

    async def _talk(self, session: AgentSession, offset_s: float) -> None:
        await asyncio.sleep(offset_s)
        while not session.closed:
            with contextlib.suppress(Exception):
                await session.send_text(TEXT)
            await asyncio.sleep(TALK_EVERY_S)


async def _control(agents: _Agents, max_seconds: float) -> None:
    async for command in commands(max_seconds):
        if command == "start":
            agents.lateness.values = []
            agents.lateness.recording = True
            print(json.dumps({"ok": True}), flush=True)
        elif command == "stop":
            agents.lateness.recording = False
            values = agents.lateness.values
            agents.lateness.values = []
            alive = sum(1 for s in agents.sessions if not s.closed)
            print(json.dumps({"lateness": values, "sessions": alive}), flush=True)


async def _main(base_url: str, max_seconds: float, bare: bool) -> None:
    agents = _Agents(base_url, bare=bare)
    server = WebRTCServer(
        agents.entrypoint,
        "127.0.0.1",
        0,
        max_connections=10_000,
        max_connections_per_client=10_000,
        context_factory=lambda t: t,
    )
    await server.start()
    print(f"READY {server.url}", flush=True)
    try:
        await _control(agents, max_seconds)
    finally:
        for task in list(agents.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.aclose(), 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--bare", action="store_true", help="no sessions: the calls alone")
    args = parser.parse_args()
    asyncio.run(_main(args.base_url, args.max_seconds, args.bare))
    os._exit(0)  # the stdin reader thread may still block


if __name__ == "__main__":
    main()

"""Memory of the local server with its models loaded, and after 50 turns of one conversation.

The server runs in its own process as ``realtalk serve`` does by default (Silero, Whisper tiny.en,
Qwen2.5-Coder-0.5B, Piper). One ``AgentSession`` running ``examples/assistant.py``'s agent and
tools sends typed questions (sums, conversions, the time, small talk: tool calls and plain
replies) one after the other and waits for each spoken answer; the server's resident memory is
read after loading, after the first turn, and after turns 10, 25 and 50. Flat means the growth
from turn 10 to turn 50 is small against the total (the prompt cache and the conversation are
bounded: the LLM's context drops the oldest turns).

``--quick``: 12 turns.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Row, proc_rss_mb, row
from bench.serve import ServerProcess

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

TURNS = 50
QUESTIONS = [
    "What is seventeen times three?",
    "How many kilometers are in ten miles?",
    "What time is it?",
    "Tell me something nice about cats.",
    "What is the square root of 144?",
    "Convert twenty degrees celsius to fahrenheit.",
    "What is the capital of Italy?",
    "Thanks, that's all for now.",
]
CHECKPOINTS = (1, 10, 25, 50)


async def _converse(base_url: str, pid: int, turns: int) -> dict[int, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from examples.assistant import Assistant
    from realtalk.plugins.openai import OpenAIRealtime
    from realtalk.session import AgentSession
    from realtalk.transports.base import Transport, agent_audio

    class Quiet(Assistant):
        async def on_enter(self) -> None:
            return None

    class Drain(Transport):
        async def attach(self, session: Any) -> None:
            self._task = asyncio.get_running_loop().create_task(self._play(session))

        async def _play(self, session: Any) -> None:
            async for _ in agent_audio(session.audio_output, realtime=False):
                pass

        async def aclose(self) -> None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    model = OpenAIRealtime(model="gpt-realtime", base_url=base_url, api_key=None)
    session = AgentSession(agent=Quiet(), model=model)
    answers: list[str] = []
    session.on(
        "transcription",
        lambda p: answers.append(p["text"]) if p["is_final"] and p["role"] == "agent" else None,
    )
    rss: dict[int, float] = {}
    await session.start(Drain())
    try:
        for n in range(1, turns + 1):
            before = len(answers)
            await session.send_text(QUESTIONS[(n - 1) % len(QUESTIONS)])
            async with asyncio.timeout(300):
                while len(answers) <= before or session.agent_state != "listening":
                    await asyncio.sleep(0.05)
            if n in CHECKPOINTS or n == turns:
                rss[n] = proc_rss_mb(pid)
                print(f"turn {n}: {rss[n]:.0f} MB  ({answers[-1]!r})", file=sys.stderr)
    finally:
        await session.close()
    return rss


def run(quick: bool = False) -> list[Row]:
    turns = 12 if quick else TURNS
    start = time.monotonic()
    with ServerProcess("local", voice="piper", max_seconds=3600.0) as server:
        loaded_s = time.monotonic() - start
        loaded = proc_rss_mb(server.pid)
        rss = asyncio.run(_converse(server.base_url, server.pid, turns))
    tenth = rss.get(10, rss[min(rss)])
    last = rss[max(rss)]
    growth = last - tenth
    note = ", ".join(f"turn {n}: {v:.0f} MB" for n, v in sorted(rss.items()))
    return [
        row(
            "realtalk serve resident memory, models loaded (MB)",
            loaded,
            note=f"Silero, Whisper tiny.en, Qwen2.5-Coder-0.5B, Piper; loaded in {loaded_s:.1f} s",
        ),
        row(f"resident memory after {max(rss)} turns (MB)", last, loaded, note=note),
        row(
            f"growth from turn 10 to turn {max(rss)} (MB)",
            growth,
            goal="flat (≤ 5 % of the total)",
            met=growth <= 0.05 * last,
            note="one conversation; the LLM prompt drops its oldest turns to fit the context",
        ),
    ]

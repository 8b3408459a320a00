"""The agent file the scale-out benchmark runs on its workers (``realtalk worker`` loads it).

Like :mod:`bench.webrtc_agent`: per call an AgentSession asks for a ~3.5 s reply every 4 s, and
each frame the outgoing track hands to the Opus encoder is timed against the AudioOutput's
schedule. The lateness values live in the worker process; ``SIGUSR1`` writes those recorded since
the last signal to ``$REALTALK_BENCH_DIR/<pid>.json`` (one file per worker), so the benchmark
reads a window from every worker at once. With ``REALTALK_BENCH_BARE=1`` the entrypoint starts
no session (the dispatch-latency figure measures the offer path alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
from pathlib import Path
from typing import Any

from bench.ramp import Lateness
from realtalk import Agent, AgentSession, JobContext
from realtalk.plugins.openai import OpenAIRealtime

TEXT = "one two three four five six seven eight nine ten eleven twelve"
TALK_EVERY_S = 4.0

_lateness = Lateness()
_lateness.recording = True
_rng = random.Random(os.getpid())
_tasks: set[asyncio.Task[Any]] = set()


def _dump(*_: Any) -> None:
    folder = os.environ.get("REALTALK_BENCH_DIR")
    values, _lateness.values = _lateness.values, []
    if folder:
        path = Path(folder) / f"{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(values))
        tmp.replace(path)


signal.signal(signal.SIGUSR1, _dump)


async def entrypoint(ctx: JobContext) -> None:
    if os.environ.get("REALTALK_BENCH_BARE") == "1":
        return
    transport: Any = ctx.transport
    track = transport.audio_track
    untimed = track.recv
    clock = [_lateness.consumer()]
    loop = asyncio.get_running_loop()

    async def recv() -> Any:
        called = loop.time()
        frame = await untimed()
        clock[0].frame(called, loop.time())
        return frame

    track.recv = recv
    model = OpenAIRealtime(model="gpt-realtime")
    session = AgentSession(agent=Agent(instructions="You are a benchmark."), model=model)
    await session.start(ctx.transport)
    clock[0] = _lateness.consumer()  # the track now follows the AudioOutput's schedule
    task = asyncio.ensure_future(_talk(session, _rng.uniform(0, TALK_EVERY_S)))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _talk(session: AgentSession, offset_s: float) -> None:
    await asyncio.sleep(offset_s)
    while not session.closed:
        with contextlib.suppress(Exception):
            await session.send_text(TEXT)
        await asyncio.sleep(TALK_EVERY_S)

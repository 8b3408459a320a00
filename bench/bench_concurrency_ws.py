"""Concurrent sessions over WebSocket: how many one client process carries in real time.

The local server (scripted engines) runs in its own process. This process runs N sessions, each a
full ``AgentSession`` + ``OpenAIRealtime``: a microphone task of its own pushing 48 kHz mono 20 ms
frames (silence, resampled and sent as 40 ms appends like any microphone audio), a text message
every 4 s whose ~3.5 s spoken reply streams back, and a speaker awaiting ``next_frame`` in real
time. The ramp adds sessions in steps (10 s each) until the p99 lateness of the speakers' frames
passes 10 ms. Sessions per core = sessions / cores of CPU this process used at the largest step
that held.

Baseline, same run: the same traffic with bare ``websockets`` + ``json`` + ``base64`` (appends
prebuilt, deltas decoded into a bytearray, frames sliced on the same drift-free schedule): the
floor for an asyncio Python client, run with as many sessions as our largest passing step.
Ratio = ours / baseline sessions per core at that count.

LiveKit's OpenAI plugin (``livekit-plugins-openai``, the ``livekit`` extra), same run: the same
traffic through its ``RealtimeSession`` with as many sessions, its reply audio sliced into frames
on the bare baseline's schedule (LiveKit leaves playout to its room I/O).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import Row, proc_cpu_s, proc_rss_mb, row
from bench.harness import silence_frame
from bench.ramp import Lateness, LatenessClock, Probe, Step, at, failed, passing, ramp
from bench.serve import ServerProcess
from realtalk.agent import Agent
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.session import AgentSession
from realtalk.transports.base import Transport

LIMIT_MS = 10.0
GOAL_PER_CORE = 200.0
TEXT = "one two three four five six seven eight nine ten eleven twelve"
TALK_EVERY_S = 4.0
FRAME_S = 0.02

log = logging.getLogger("bench")


def _say(line: str) -> None:
    print(f"  ws: {line}", file=sys.stderr, flush=True)


class Speaker(Transport):
    """Pulls the agent's voice in real time, as a sound card or a WebRTC track would."""

    def __init__(self, clock: LatenessClock) -> None:
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def attach(self, session: AgentSession) -> None:
        self.session = session
        self._task = asyncio.get_running_loop().create_task(self._play(session))

    async def _play(self, session: AgentSession) -> None:
        output = session.audio_output
        clock = asyncio.get_running_loop().time  # the AudioOutput's clock: time.monotonic
        while True:
            called = clock()
            await output.next_frame()
            self.clock.frame(called, clock())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _Fleet:
    """N live sessions, one shared 20 ms microphone ticker, a talker per session."""

    def __init__(self, lateness: Lateness, seed: int) -> None:
        self.lateness = lateness
        self.rng = random.Random(seed)
        self.tasks: list[asyncio.Task[Any]] = []
        self.count = 0

    async def add(self, n: int, start_one: Callable[[], Awaitable[None]]) -> int:
        """Bring the fleet to n sessions (25 connecting at a time)."""
        while self.count < n:
            batch = min(25, n - self.count)
            results = await asyncio.gather(
                *(start_one() for _ in range(batch)), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            self.count += batch - len(failed)
            if failed:
                log.warning("%d sessions failed to start: %s", len(failed), failed[0])
                break
        return self.count

    def spawn(self, coro: Awaitable[Any]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))

    async def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _ticker(every_s: float, tick: Callable[[], Awaitable[Any]], offset_s: float) -> None:
    """Call ``tick`` every ``every_s`` on a drift-free clock, starting after ``offset_s``: one per
    session, each with its own phase, like microphones that were not switched on together."""
    await asyncio.sleep(offset_s)
    loop = asyncio.get_running_loop()
    t0, n = loop.time(), 0
    while True:
        await tick()
        n += 1
        delay = t0 + n * every_s - loop.time()
        if delay < -0.1:
            t0, n = loop.time(), 0
        await asyncio.sleep(max(delay, 0.0))


# -- ours -----------------------------------------------------------------------------------------


async def _ramp_fleet(
    fleet: _Fleet,
    start_one: Callable[[], Awaitable[None]],
    lateness: Lateness,
    server_pid: int,
    steps: list[int],
    *,
    window_s: float,
    budget_s: float,
    log: Callable[[str], None],
    close: Callable[[], Awaitable[Any]],
) -> tuple[list[Step], float]:
    """Ramp ``fleet`` through ``steps`` sessions (each started by ``start_one``), then stop it
    and ``close`` its sessions; returns the steps and the process's RSS before the first."""
    rss0 = proc_rss_mb()
    try:
        results = await ramp(
            lambda n: fleet.add(n, start_one),
            _local_probe(lateness, server_pid),
            steps,
            limit_ms=LIMIT_MS,
            window_s=window_s,
            settle_s=2.0,
            budget_s=budget_s,
            log=log,
        )
    finally:
        await fleet.cancel()
        await _bounded(close())
    return results, rss0


async def _run_ours(
    base_url: str, steps: list[int], window_s: float, budget_s: float, server_pid: int
) -> tuple[list[Step], float]:
    lateness = Lateness()
    fleet = _Fleet(lateness, seed=1)
    sessions: list[AgentSession] = []
    frame = silence_frame(48000)

    async def start_one() -> None:
        model = OpenAIRealtime(model="gpt-realtime", base_url=base_url)
        session = AgentSession(agent=Agent(instructions="You are a benchmark."), model=model)
        await session.start(Speaker(lateness.consumer()))
        sessions.append(session)
        fleet.spawn(_ticker(FRAME_S, lambda: session.push_audio(frame), fleet.rng.random() / 50))
        fleet.spawn(_talk(session, fleet.rng.uniform(0, TALK_EVERY_S)))

    return await _ramp_fleet(
        fleet,
        start_one,
        lateness,
        server_pid,
        steps,
        window_s=window_s,
        budget_s=budget_s,
        log=_say,
        close=lambda: asyncio.gather(*(s.close() for s in sessions), return_exceptions=True),
    )


async def _talk(session: AgentSession, offset_s: float) -> None:
    await asyncio.sleep(offset_s)
    while True:
        with contextlib.suppress(Exception):
            await session.send_text(TEXT)
        await asyncio.sleep(TALK_EVERY_S)


# -- baseline: bare websockets --------------------------------------------------------------------


async def _run_bare(
    base_url: str, n: int, window_s: float, server_pid: int
) -> tuple[list[Step], float]:
    lateness = Lateness()
    fleet = _Fleet(lateness, seed=2)
    sockets: list[ClientConnection] = []
    url = base_url.replace("http", "ws", 1) + "/realtime?model=gpt-realtime"
    append = json.dumps(
        {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(bytes(2 * 24000 * 40 // 1000)).decode("ascii"),
        }
    )
    say = [
        json.dumps(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": TEXT}],
                },
            }
        ),
        json.dumps({"type": "response.create"}),
    ]

    async def start_one() -> None:
        ws = await connect(url, compression=None, max_size=None)
        sockets.append(ws)
        buf = bytearray()
        fleet.spawn(_bare_receive(ws, buf))
        fleet.spawn(_bare_speaker(buf, lateness.consumer()))
        fleet.spawn(_bare_talk(ws, say, fleet.rng.uniform(0, TALK_EVERY_S)))
        # 40 ms appends, as ours batches them (a bare client has no frames to convert).
        fleet.spawn(_ticker(2 * FRAME_S, lambda: ws.send(append), fleet.rng.random() / 25))

    return await _ramp_fleet(
        fleet,
        start_one,
        lateness,
        server_pid,
        [n],
        window_s=window_s,
        budget_s=window_s + 60,
        log=lambda line: _say("baseline " + line),
        close=lambda: asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True),
    )


async def _bare_receive(ws: ClientConnection, buf: bytearray) -> None:
    async for raw in ws:
        event = json.loads(raw)
        if event.get("type") == "response.output_audio.delta":
            buf += base64.b64decode(event["delta"])


async def _bare_speaker(buf: bytearray, clock: LatenessClock) -> None:
    loop = asyncio.get_running_loop()
    t0, n = loop.time(), 0
    while True:  # the same schedule as AudioOutput.next_frame
        called = loop.time()
        delay = t0 + n * FRAME_S - called
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > 0.1:
            t0, n = called, 0
        n += 1
        frame = bytes(buf[:960])
        del buf[:960]
        clock.frame(called, loop.time())
        del frame


async def _bare_talk(ws: ClientConnection, say: list[str], offset_s: float) -> None:
    await asyncio.sleep(offset_s)
    while True:
        for text in say:
            await ws.send(text)
        await asyncio.sleep(TALK_EVERY_S)


# -- baseline: LiveKit's OpenAI plugin ------------------------------------------------------------


async def _run_livekit(
    base_url: str, n: int, window_s: float, server_pid: int
) -> tuple[list[Step], float] | None:
    """The same traffic through ``livekit-plugins-openai``'s ``RealtimeSession`` (the
    ``livekit`` extra): ``push_audio`` every 20 ms, a user message and ``generate_reply`` every
    4 s, its reply audio (``rtc.AudioFrame``s from the generation's streams) gathered into a
    buffer that a speaker slices on the same schedule as the bare baseline's. None when LiveKit
    is not installed."""
    try:
        import aiohttp
        from livekit import rtc
        from livekit.plugins.openai.realtime import RealtimeModel
    except ImportError:
        return None
    logging.getLogger("livekit").setLevel(logging.ERROR)
    lateness = Lateness()
    fleet = _Fleet(lateness, seed=3)
    sessions: list[Any] = []
    frame = rtc.AudioFrame(bytes(2 * 960), 48000, 1, 960)
    http = aiohttp.ClientSession()
    model = RealtimeModel(
        base_url=base_url, api_key="sk-bench", http_session=http, input_audio_transcription=None
    )

    async def start_one() -> None:
        session = model.session()
        sessions.append(session)
        buf = bytearray()
        session.on("generation_created", lambda ev: fleet.spawn(_livekit_collect(ev, buf)))
        await asyncio.sleep(1.0)  # it connects in a task of its own

        async def mic() -> None:
            session.push_audio(frame)

        fleet.spawn(_bare_speaker(buf, lateness.consumer()))
        fleet.spawn(_livekit_talk(session, fleet.rng.uniform(0, TALK_EVERY_S)))
        fleet.spawn(_ticker(FRAME_S, mic, fleet.rng.random() / 50))

    async def close() -> None:
        await asyncio.gather(*(s.aclose() for s in sessions), return_exceptions=True)
        await http.close()

    return await _ramp_fleet(
        fleet,
        start_one,
        lateness,
        server_pid,
        [n],
        window_s=window_s,
        budget_s=window_s + 60,
        log=lambda line: _say("livekit " + line),
        close=close,
    )


async def _livekit_collect(generation: Any, buf: bytearray) -> None:
    async for message in generation.message_stream:
        text = asyncio.ensure_future(_drain_stream(message.text_stream))
        async for audio in message.audio_stream:
            buf += audio.data
        await text


async def _drain_stream(stream: Any) -> None:
    async for _ in stream:
        pass


async def _livekit_talk(session: Any, offset_s: float) -> None:
    await asyncio.sleep(offset_s)
    while True:
        with contextlib.suppress(Exception):
            chat = session.chat_ctx.copy()
            chat.add_message(role="user", content=TEXT)
            await session.update_chat_ctx(chat)
            reply = session.generate_reply()
            reply.add_done_callback(lambda f: f.cancelled() or f.exception())
        await asyncio.sleep(TALK_EVERY_S)


# -- shared ---------------------------------------------------------------------------------------


def _per_core(step: Step | None) -> float | None:
    return step.per_core if step is not None and step.cores > 0 else None


def _local_probe(lateness: Lateness, server_pid: int) -> Probe:
    async def start() -> None:
        lateness.values = []
        lateness.recording = True

    async def stop() -> list[float]:
        lateness.recording = False
        return lateness.values

    return Probe(
        cpu_s=proc_cpu_s,
        rss_mb=proc_rss_mb,
        other_cpu_s=lambda: proc_cpu_s(server_pid),
        start_recording=start,
        stop_recording=stop,
    )


async def _bounded(aw: Awaitable[Any], timeout: float = 30.0) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(aw, timeout)


def run(quick: bool = False) -> list[Row]:
    if quick:
        steps, window, budget = [5, 10], 3.0, 30.0
    else:
        steps, window, budget = [10, 25, 50, 100, 150, 200, 250, 300, 400], 8.0, 150.0
    start = time.monotonic()
    # Ours first: its memory growth is measured in a process that has not run anything yet
    # (the baseline afterwards reuses freed memory, so its growth is not reported).
    with ServerProcess("scripted") as server:
        ours, rss0 = asyncio.run(_run_ours(server.base_url, steps, window, budget, server.pid))
    best = passing(ours, LIMIT_MS)
    # The baseline carries as many sessions as our largest passing step, so CPU compares 1:1.
    bare_n = best.sessions if best else steps[0]
    with ServerProcess("scripted") as server:
        bare, _ = asyncio.run(_run_bare(server.base_url, bare_n, window, server.pid))
    with ServerProcess("scripted") as server:
        livekit = asyncio.run(_run_livekit(server.base_url, bare_n, window, server.pid))
    elapsed = time.monotonic() - start
    ours_at_n = _per_core(at(ours, bare_n))
    lk_step = at(livekit[0], bare_n) if livekit is not None else None
    lk_at_n = _per_core(lk_step)
    lk_ratio = ours_at_n / lk_at_n if ours_at_n is not None and lk_at_n else None
    same_n = at(ours, bare_n)
    bare_step = at(bare, bare_n)
    ratio = (
        same_n.per_core / bare_step.per_core
        if same_n is not None and bare_step is not None and bare_step.cores > 0
        else None
    )
    steps_text = "; ".join(s.text() for s in ours)
    first_fail = failed(ours, LIMIT_MS)
    last = best or (ours[-1] if ours else None)
    cpu_bound = (
        f"CPU-bound capacity at {last.sessions} sessions: {1000 / last.cpu_ms_per_session_s:.0f} "
        f"sessions per core ({last.cpu_ms_per_session_s:.1f} ms of CPU per session-second); "
        if last is not None and last.cores > 0
        else ""
    )
    return [
        row(
            f"WebSocket sessions per client core at p99 frame lateness ≤ {LIMIT_MS:.0f} ms",
            best.per_core if best else None,
            bare_step.per_core if bare_step else None,
            ratio=ratio,
            goal=f"≥ {GOAL_PER_CORE:.0f} sessions per core",
            met=best is not None and best.per_core >= GOAL_PER_CORE,
            note=(
                f"{cpu_bound}largest passing step {best.sessions if best else 0} sessions"
                f"{'' if first_fail is None else f', failed at {first_fail.sessions}'}; "
                f"ratio at {bare_n} sessions each (baseline: "
                f"{bare_step.text() if bare_step else 'n/a'}); steps (others = the server): "
                f"{steps_text}; "
                f"{elapsed:.0f} s"
            ),
        ),
        row(
            "WebSocket sessions per client core vs LiveKit's OpenAI plugin, same sessions",
            ours_at_n,
            lk_at_n,
            ratio=lk_ratio,
            goal="more than LiveKit (ratio > 1)",
            met=lk_ratio is not None and lk_ratio > 1,
            note=(
                f"{bare_n} sessions each, the same traffic; LiveKit: "
                + (
                    "not installed (the livekit extra)"
                    if livekit is None
                    else (lk_step.text() if lk_step is not None else "no result")
                )
                + "; LiveKit's lateness is its buffer sliced like the bare baseline's"
            ),
        ),
        row(
            "WebSocket: client memory per session, MiB",
            (best.rss_mb - rss0) / best.sessions if best else None,
            goal="report",
            note=(
                "RSS growth of the client process (fresh, run alone) / sessions, at the largest "
                "passing step"
            ),
        ),
    ]

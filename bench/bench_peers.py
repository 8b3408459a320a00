"""Uplink end to end through each client's public input method, WebSocket send included, against
LiveKit's OpenAI plugin and the seed's way, in the same run; and the downlink end to end, socket
included, against LiveKit.

Per 20 ms frame of 48 kHz stereo int16 (what a browser sends over WebRTC), CPU of this process
(``time.process_time``: every thread) from the frame handed to the client until its bytes were
written to the socket:

- ours: ``OpenAIRealtime.handle_audio_input(AudioFrame)`` (core: soxr stream → 24 kHz mono,
  40 ms batches, base64, JSON; driver: send queue → ``ws.send``)
- livekit: ``livekit-plugins-openai`` ``RealtimeSession.push_audio(rtc.AudioFrame)`` (its
  resampler, 50 ms chunks, base64, pydantic event, aiohttp WebSocket)
- seed's way: ``scipy.signal.resample`` of the frame read as mono, base64, ``json.dumps``,
  ``ws.send`` per frame (the seed plugin's method)

Downlink, per 200 ms of reply audio (the local server's delta): CPU of this process from asking
for a ~10 s reply by text until its audio was read out as 20 ms frames: ours through
``send_text_message``, the receive loop, ``feed`` and the ``AudioOutput``; LiveKit through a user
message, ``generate_reply`` and its generation's audio stream, cut into frames the same way.

The server (``realtalk serve --engine scripted``, turn detection off) runs in its own process, so
none of its CPU is counted. Runs are interleaved and the best of each is kept. LiveKit is optional
(the ``livekit`` extra, which `scripts/setup` installs); without it its row says so.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from bench.common import Row, better_ratio, row
from bench.serve import ServerProcess
from realtalk.media.frame import AudioFrame
from realtalk.media.playout import AudioOutput
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig

IN_RATE = 48000
FRAME_SAMPLES = IN_RATE // 50  # 20 ms
GOAL_US = 20.0

Runner = Callable[[list[bytes]], Awaitable[float]]


def _frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(3)
    return [
        (rng.standard_normal(2 * FRAME_SAMPLES) * 3000).astype("<i2").tobytes() for _ in range(n)
    ]


async def _drain(pending: Callable[[], int], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while pending() and time.monotonic() < deadline:
        await asyncio.sleep(0.001)


def ours(base_url: str) -> Runner:
    async def run(frames: list[bytes]) -> float:
        model = OpenAIRealtime(
            model="gpt-realtime",
            base_url=base_url,
            config=OpenAIRealtimeConfig(
                turn_detection=None, input_audio_transcription=None, input_channels=2
            ),
        )
        await model.connect()
        try:
            audio = [AudioFrame(data, IN_RATE, 2) for data in frames]
            await asyncio.sleep(0.05)
            start = time.process_time()
            for i, frame in enumerate(audio):
                await model.handle_audio_input(frame)
                if i % 10 == 9:
                    await asyncio.sleep(0)  # let the send loop write, as a transport's pace would
            await _drain(lambda: sum(s.msg_queue.qsize() for s in _sessions(model)))
            return (time.process_time() - start) / len(frames)
        finally:
            await model.aclose()

    return run


def _sessions(model: OpenAIRealtime) -> list[Any]:
    session = model.__dict__.get("_session")
    return [session] if session is not None else []


def seed_way(base_url: str) -> Runner:
    from scipy import signal
    from websockets.asyncio.client import connect

    url = base_url.replace("http", "ws", 1) + "/realtime?model=gpt-realtime"

    async def run(frames: list[bytes]) -> float:
        async with connect(url, compression=None) as ws:
            await asyncio.sleep(0.05)
            start = time.process_time()
            for data in frames:
                samples = np.frombuffer(data, dtype=np.int16)
                resampled = signal.resample(samples, len(samples) // 2).astype(np.int16)
                audio = base64.b64encode(resampled.tobytes()).decode("ascii")
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            return (time.process_time() - start) / len(frames)

    return run


def _livekit_session(model_type: Any, base_url: str, http: Any) -> Any:
    """A LiveKit realtime session on our server, its turn detection and transcription off (the
    bench drives the turns)."""
    model = model_type(
        base_url=base_url,
        api_key="sk-bench",
        http_session=http,
        turn_detection=None,
        input_audio_transcription=None,
    )
    return model.session()


def livekit(base_url: str) -> Runner | None:
    try:
        import aiohttp
        from livekit import rtc
        from livekit.plugins.openai.realtime import RealtimeModel
    except ImportError:
        return None
    logging.getLogger("livekit").setLevel(logging.ERROR)

    async def run(frames: list[bytes]) -> float:
        async with aiohttp.ClientSession() as http:
            session = _livekit_session(RealtimeModel, base_url, http)
            try:
                audio = [rtc.AudioFrame(data, IN_RATE, 2, FRAME_SAMPLES) for data in frames]
                await asyncio.sleep(1.0)  # its connect runs in its own task
                start = time.process_time()
                for i, frame in enumerate(audio):
                    session.push_audio(frame)
                    if i % 10 == 9:
                        await asyncio.sleep(0)
                channel = session.__dict__.get("_msg_ch")
                await _drain(lambda: channel.qsize() if channel is not None else 0)
                await asyncio.sleep(0.05)
                return (time.process_time() - start) / len(frames)
            finally:
                with contextlib.suppress(Exception):
                    await session.aclose()

    return run


# -- downlink: a reply's audio through each client, over the socket ------------------------------

#: The scripted server answers "You said: <text>." and speaks 250 ms a word: ~10 s of audio.
REPLY_TEXT = " ".join(f"word{i}" for i in range(38))
DELTA_MS = 200  # the local server's audio deltas
FRAME_BYTES = 2 * 24000 // 50

DownRunner = Callable[[int], Awaitable[tuple[float, int]]]


def ours_downlink(base_url: str) -> DownRunner:
    """``send_text_message`` per reply; the audio arrives through the receive loop, ``feed`` and
    the ``AudioOutput``, and is read as 20 ms frames once the reply is done."""

    async def run(replies: int) -> tuple[float, int]:
        model = OpenAIRealtime(
            model="gpt-realtime",
            base_url=base_url,
            config=OpenAIRealtimeConfig(turn_detection=None, input_audio_transcription=None),
        )
        output = AudioOutput(sample_rate=24000, realtime=False, jitter_ms=0)
        model.audio_output = output
        done = asyncio.Event()
        model.on("response_done", lambda *_: done.set())
        await model.connect()
        try:
            await asyncio.sleep(0.05)
            frames = 0
            start = time.process_time()
            for _ in range(replies):
                done.clear()
                await model.send_text_message(REPLY_TEXT)
                await asyncio.wait_for(done.wait(), 60)
                while n := -(-output.buffered_ms // 20):  # whole frames, the last one padded
                    for _ in range(n):
                        output.read_frame()
                    frames += n
            return time.process_time() - start, frames
        finally:
            await model.aclose()

    return run


def livekit_downlink(base_url: str) -> DownRunner | None:
    """A user message and ``generate_reply`` per reply; the generation's ``rtc.AudioFrame``s
    gathered and cut into 20 ms frames once the reply is done (LiveKit leaves playout to its
    room I/O)."""
    try:
        import aiohttp
        from livekit.plugins.openai.realtime import RealtimeModel
    except ImportError:
        return None
    logging.getLogger("livekit").setLevel(logging.ERROR)

    async def run(replies: int) -> tuple[float, int]:
        async with aiohttp.ClientSession() as http:
            session = _livekit_session(RealtimeModel, base_url, http)
            try:
                await asyncio.sleep(1.0)  # its connect runs in its own task
                frames = 0
                start = time.process_time()
                for _ in range(replies):
                    chat = session.chat_ctx.copy()
                    chat.add_message(role="user", content=REPLY_TEXT)
                    await session.update_chat_ctx(chat)
                    generation = await asyncio.wait_for(session.generate_reply(), 60)
                    pcm = bytearray()
                    async for message in generation.message_stream:
                        text = asyncio.ensure_future(_consume(message.text_stream))
                        async for audio in message.audio_stream:
                            pcm += audio.data
                        await text
                    for i in range(0, len(pcm), FRAME_BYTES):
                        _ = bytes(pcm[i : i + FRAME_BYTES])
                        frames += 1
                return time.process_time() - start, frames
            finally:
                with contextlib.suppress(Exception):
                    await session.aclose()

    return run


async def _consume(stream: Any) -> None:
    async for _ in stream:
        pass


async def _best_of(
    runners: dict[str, Any], repeats: int, measure: Callable[[Any], Awaitable[float | None]]
) -> dict[str, float | None]:
    """Each runner's least ``measure(runner)`` over ``repeats`` rounds, the runners interleaved;
    one that fails says so and is left out from then on."""
    best: dict[str, float | None] = {name: None for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            if runner is None:
                continue
            try:
                value = await measure(runner)
            except Exception as exc:  # a peer that cannot talk to this server: say so
                print(f"  {name}: failed ({type(exc).__name__}: {exc})")
                runners[name] = None
                continue
            current = best[name]
            if value is not None:
                best[name] = value if current is None else min(current, value)
    return best


async def _measure_downlink(base_url: str, replies: int, repeats: int) -> dict[str, float | None]:
    """CPU µs per 200 ms of reply audio (the server's delta), best of interleaved repeats."""
    runners: dict[str, DownRunner | None] = {
        "ours": ours_downlink(base_url),
        "livekit": livekit_downlink(base_url),
    }

    async def measure(runner: DownRunner) -> float | None:
        cpu_s, frames = await asyncio.wait_for(runner(replies), 300)
        deltas = frames * 20 / DELTA_MS
        return cpu_s / deltas * 1e6 if deltas else None

    return await _best_of(runners, repeats, measure)


async def _measure(base_url: str, n: int, repeats: int) -> dict[str, float | None]:
    runners: dict[str, Runner | None] = {
        "ours": ours(base_url),
        "livekit": livekit(base_url),
        "seed": seed_way(base_url),
    }
    frames = _frames(n)

    async def measure(runner: Runner) -> float:
        return await asyncio.wait_for(runner(frames), 120)

    return await _best_of(runners, repeats, measure)


def run(quick: bool = False) -> list[Row]:
    n, repeats = (300, 2) if quick else (3000, 5)
    replies, down_repeats = (1, 1) if quick else (4, 3)
    with ServerProcess("scripted") as server:
        best = asyncio.run(_measure(server.base_url, n, repeats))
        down = asyncio.run(_measure_downlink(server.base_url, replies, down_repeats))
    us = {k: (v * 1e6 if v is not None else None) for k, v in best.items()}
    rows = [
        row(
            "uplink µs/frame end to end vs LiveKit",
            us["ours"],
            us["livekit"],
            ratio=better_ratio(us["ours"], us["livekit"], lower_is_better=True),
            goal=f"≤ {GOAL_US:g} µs",
            met=us["ours"] is not None and us["ours"] <= GOAL_US,
            note="48k stereo 20 ms frame → ws.send, CPU of the client process"
            + ("" if us["livekit"] is not None else "; LiveKit not installed or failed"),
        ),
        row(
            "uplink µs/frame end to end vs the seed's way",
            us["ours"],
            us["seed"],
            ratio=better_ratio(us["ours"], us["seed"], lower_is_better=True),
            note="seed: scipy resample per frame + json + ws.send",
        ),
        row(
            f"downlink µs per {DELTA_MS} ms of reply audio end to end vs LiveKit",
            down["ours"],
            down["livekit"],
            ratio=better_ratio(down["ours"], down["livekit"], lower_is_better=True),
            goal="less CPU than LiveKit (the ≤ 30 µs goal is the downlink figure's)",
            met=None
            if down["ours"] is None or down["livekit"] is None
            else down["ours"] < down["livekit"],
            note=(
                "socket → parse → core/decode → 20 ms frames out, CPU of the client process per "
                f"{DELTA_MS} ms delta, replies of ~10 s asked for by text (the request and the "
                "response's events included)"
                + ("" if down["livekit"] is not None else "; LiveKit not installed or failed")
            ),
        ),
    ]
    return rows


if __name__ == "__main__":
    for r in run(quick=False):
        print(r)

"""Barge-in: from ``input_audio_buffer.speech_started`` arriving at the client's dispatch to the
moment ``AudioOutput.next_frame`` returns silence, over real interruptions.

Setup: the local server (scripted engines) in its own process; one client (``OpenAIRealtime``)
with a real-time paced ``AudioOutput`` and a consumer awaiting ``next_frame`` like a WebRTC track;
a microphone pushing 20 ms frames in real time. Each round waits until an agent reply is playing,
waits a random 50–400 ms, then "speaks" a 350 ms tone; the server's VAD sends ``speech_started``,
the client flushes, and the consumer's next frame is silence. The user's turn then ends, the server
replies, and that reply is the next one interrupted.

Baseline: the frame period (20 ms): a paced consumer sleeping towards its next deadline cannot
notice the flush earlier, so about one frame period is what any paced playout pays at worst.
The ratio is 20 ms / our p99. Also reported: the dispatch itself (arrival → ``feed`` returned,
the flush and truncation included).
"""

from __future__ import annotations

import asyncio
import random
import time

from bench.common import Row, better_ratio, percentile, row, summary_ms
from bench.harness import Tap, live_call
from bench.serve import ServerProcess
from realtalk.media.playout import AudioOutput
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.plugins.openai.config import server_vad

FRAME_MS = 20
GOAL_MS = 20.0
FIRST_TEXT = "please tell me a long story about the sea the wind and the old lighthouse"


async def _measure(
    base_url: str, rounds: int, deadline_s: float
) -> tuple[list[float], list[float], int]:
    output = AudioOutput(sample_rate=24000, realtime=True)
    model = OpenAIRealtime(
        model="gpt-realtime",
        base_url=base_url,
        config=OpenAIRealtimeConfig(
            turn_detection=server_vad(silence_duration_ms=200), input_audio_transcription=None
        ),
    )
    model.audio_output = output
    tap = Tap(model)
    latencies: list[float] = []
    dispatch: list[float] = []
    pending: list[float] = []  # arrival time of a speech_started that cut playing audio
    silenced = asyncio.Event()

    def on_speech_started(event: object, arrival: float) -> None:
        if output.playing_item_id is not None:
            pending.append(arrival)

    def after_speech_started(event: object, arrival: float) -> None:
        if pending and pending[-1] == arrival:
            dispatch.append(time.perf_counter() - arrival)

    tap.on("input_audio_buffer.speech_started", on_speech_started)
    tap.on("input_audio_buffer.speech_started", after_speech_started, after=True)

    async def consume() -> None:
        silence = output.silence_frame
        while True:
            frame = await output.next_frame()
            if pending and frame is silence:
                latencies.append(time.perf_counter() - pending.pop())
                silenced.set()

    skipped = 0
    rng = random.Random(7)
    loop_end = time.monotonic() + deadline_s
    async with live_call(model, output, speaker=consume) as mic:
        await model.send_text_message(FIRST_TEXT)
        while len(latencies) < rounds and time.monotonic() < loop_end:
            playing = await _until(lambda: output.playing_item_id is not None, 8.0)
            if not playing:  # nothing came: ask again
                skipped += 1
                await model.send_text_message(FIRST_TEXT)
                continue
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            silenced.clear()
            mic.speak(0.35)
            try:
                await asyncio.wait_for(silenced.wait(), 3.0)
            except TimeoutError:
                skipped += 1
                pending.clear()
    return latencies, dispatch, skipped


async def _until(condition: object, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.005)
    return False


def run(quick: bool = False) -> list[Row]:
    rounds, deadline = (10, 30.0) if quick else (100, 170.0)
    with ServerProcess("scripted") as server:
        latencies, dispatch, skipped = asyncio.run(_measure(server.base_url, rounds, deadline))
    p99 = percentile([v * 1000 for v in latencies], 99)
    return [
        row(
            f"barge-in: speech_started arrival → output silent, p99 over {len(latencies)} "
            "interruptions, ms",
            p99,
            float(FRAME_MS),
            ratio=better_ratio(p99, FRAME_MS, lower_is_better=True),
            goal=f"p99 ≤ {GOAL_MS:.0f} ms",
            met=bool(latencies) and p99 <= GOAL_MS,
            note=(
                f"{summary_ms(latencies)}; dispatch (arrival → flushed, truncate queued) "
                f"{summary_ms(dispatch)}; {skipped} rounds without a cut; baseline = one frame "
                "period (a paced consumer sleeps until its next deadline)"
            ),
        )
    ]

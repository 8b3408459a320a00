"""Truncation accuracy: the ``audio_end_ms`` the client sends on an interruption against the audio
the consumer really received, over many random interruptions against the local server.

Setup: the local server (scripted engines) in its own process; one client whose AudioOutput is
read by a consumer about 40× faster than real time (two frames every millisecond), so a thousand
interruptions take a minute or two. "Really played" is measured by the consumer alone, from the
audio itself: it keeps every non-silent frame it was handed, and the benchmark checks that those
bytes are exactly the start of the item's audio as the server sent it (byte for byte), then counts
them. The client's ``audio_end_ms`` is read from the server's ``conversation.item.truncated``;
a rejected truncation is an ``error`` event. (An explicit interrupt also sends ``response.cancel``;
when the server finished the reply a moment before, it answers ``response_cancel_not_active``:
a benign race, counted apart.)

Each round asks for a reply of random length, lets the consumer play a random share of it, then
interrupts: half the rounds with ``interrupt()``, half by "speaking" (a loud tone pushed as input
audio, so the server's VAD sends ``speech_started`` and the client cuts on its own).

Baseline: one 20 ms frame, the granularity a client that counted whole frames (or wall-clock
time at frame resolution) would get; the ratio is 20 ms / our p99 error (inf when exact).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field

from bench.common import Row, percentile, row
from bench.harness import Tap, silence_frame, tone_frame
from bench.serve import ServerProcess
from realtalk.media.playout import AudioOutput
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.plugins.openai.config import server_vad

RATE = 24000
BYTES_PER_MS = 2 * RATE // 1000
WORD_MS = 250  # ToneVoice: 200 ms tone + 50 ms gap per word
GOAL_MS = 20.0
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
]


@dataclass
class _Result:
    errors_ms: list[float] = field(default_factory=list)  # sent audio_end_ms - really played
    rejected: int = 0  # error events other than the benign cancel race
    cancel_races: int = 0
    first_error: str | None = None
    mismatched: int = 0  # played bytes that are not the start of the item's sent audio
    deleted: int = 0
    missed: int = 0  # the reply had played out before the cut
    modes: dict[str, int] = field(default_factory=lambda: {"interrupt": 0, "vad": 0})


class _Round:
    def __init__(self) -> None:
        self.played = bytearray()
        self.target_bytes = 0
        self.reached = asyncio.Event()


async def _measure(base_url: str, rounds: int, deadline_s: float) -> _Result:
    output = AudioOutput(sample_rate=RATE, realtime=False)
    model = OpenAIRealtime(
        model="gpt-realtime",
        base_url=base_url,
        config=OpenAIRealtimeConfig(
            turn_detection=server_vad(silence_duration_ms=200, create_response=False),
            input_audio_transcription=None,
        ),
    )
    model.audio_output = output
    tap = Tap(model, keep_audio=True)
    current = _Round()

    async def consume() -> None:
        silence = output.silence_frame
        while True:
            for _ in range(2):  # two frames a millisecond: ~40x real time
                frame = output.read_frame()
                if frame is not silence:
                    current.played += frame.data
                    if len(current.played) >= current.target_bytes:
                        current.reached.set()
            await asyncio.sleep(0.001)

    await model.connect()
    consumer = asyncio.get_running_loop().create_task(consume())
    speech = [tone_frame(i) for i in range(15)] + [silence_frame()] * 20  # 300 ms + 400 ms
    rng = random.Random(11)
    result = _Result()
    end = time.monotonic() + deadline_s
    try:
        while len(result.errors_ms) + result.missed < rounds and time.monotonic() < end:
            words = rng.sample(WORDS, rng.randint(2, 10))
            duration_ms = (len(words) + 2) * WORD_MS  # "You said: w1 ... wn."
            vad = rng.random() < 0.5
            current = _Round()
            # A VAD cut lands a few ms after the tone is pushed, while the consumer plays on at
            # ~40x: keep its target clear of the end so the reply is still playing then.
            latest = duration_ms - (600 if vad else 20)
            current.target_bytes = rng.randint(20, latest) * BYTES_PER_MS
            done = asyncio.ensure_future(tap.wait_for(lambda e: e["type"] == "response.done", 10.0))
            await model.send_text_message(" ".join(words))
            try:
                await asyncio.wait_for(current.reached.wait(), 10.0)
            except TimeoutError:
                result.missed += 1
                continue
            answer = asyncio.ensure_future(
                tap.wait_for(
                    lambda e: (
                        e["type"]
                        in ("conversation.item.truncated", "conversation.item.deleted", "error")
                    ),
                    2.0,
                )
            )
            if not vad:
                result.modes["interrupt"] += 1
                await model.interrupt()
            else:
                result.modes["vad"] += 1
                for frame in speech:
                    await model.handle_audio_input(frame)
            event = await answer
            await done
            if event is None:  # the reply had played out before the cut: nothing to truncate
                result.missed += 1
                continue
            if event["type"] == "error":
                continue
            item_id = str(event["item_id"])
            sent = tap.audio.get(item_id, bytearray())
            played = bytes(current.played)
            if sent[: len(played)] != played:
                result.mismatched += 1
            if event["type"] == "conversation.item.deleted":
                result.deleted += 1
                result.errors_ms.append(-len(played) / BYTES_PER_MS)
            else:
                sent_ms = float(event["audio_end_ms"])
                result.errors_ms.append(sent_ms - len(played) / BYTES_PER_MS)
            await _settle(output)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await model.aclose()
    rejected = [e for e in tap.errors if not _cancel_race(e)]
    result.rejected = len(rejected)
    result.cancel_races = len(tap.errors) - len(rejected)
    if rejected:
        result.first_error = str(rejected[0].get("error", {}).get("message"))
    return result


def _cancel_race(event: dict[str, object]) -> bool:
    error = event.get("error")
    return isinstance(error, dict) and error.get("code") == "response_cancel_not_active"


async def _settle(output: AudioOutput) -> None:
    """Let the VAD round's user turn end before the next reply is requested."""
    for _ in range(100):
        if output.playing_item_id is None and output.buffered_ms == 0:
            return
        await asyncio.sleep(0.005)


def run(quick: bool = False) -> list[Row]:
    rounds, deadline = (40, 40.0) if quick else (1000, 175.0)
    client_log = logging.getLogger("realtalk.client")
    level = client_log.level
    client_log.setLevel(logging.ERROR)  # the benign cancel races would each log a warning
    try:
        with ServerProcess("scripted") as server:
            result = asyncio.run(_measure(server.base_url, rounds, deadline))
    finally:
        client_log.setLevel(level)
    errors = [abs(e) for e in result.errors_ms]
    p99 = percentile(errors, 99)
    ratio = None if not errors else (float("inf") if p99 == 0 else GOAL_MS / p99)
    note = (
        f"n={len(errors)} interruptions ({result.modes}); |error| p50="
        f"{percentile(errors, 50):.2f} p99={p99:.2f} max={max(errors, default=float('nan')):.2f} "
        f"ms; played audio ≠ start of the sent audio: {result.mismatched}; deleted (nothing "
        f"played): {result.deleted}; rounds where the reply ended before the cut: {result.missed}"
    )
    if result.first_error:
        note += f"; first error: {result.first_error}"
    return [
        row(
            "truncation: |sent audio_end_ms − really played|, p99, ms",
            p99,
            GOAL_MS,
            ratio=ratio,
            goal=f"p99 ≤ {GOAL_MS:.0f} ms",
            met=bool(errors) and p99 <= GOAL_MS,
            note=note,
        ),
        row(
            "truncation: rejected by the server (error events)",
            float(result.rejected),
            goal="0",
            met=result.rejected == 0,
            note=(
                "every error event of the run but the benign cancel race "
                f"(response.cancel just after the reply ended: {result.cancel_races})"
            ),
        ),
    ]

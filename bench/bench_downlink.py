"""Downlink cost per audio delta: JSON text → event → PCM in the AudioOutput → 20 ms frames.

What the client does for every ``response.output_audio.delta`` it receives, minus the socket:

- parse: ``realtalk.protocol.parse_event`` on the frame's text (what the receive loop calls)
- dispatch + decode + queue: ``OpenAIRealtime.feed(event)`` (response bookkeeping, base64
  decode, ``AudioOutput.push``)
- frames out: the consumer's ``read_frame`` calls that hand the delta's audio out as 20 ms frames
  (``next_frame`` with pacing adds only a sleep)

Baseline, same run: the floor any client pays for the same bytes — ``json.loads`` of the frame,
``b64decode`` of the delta (pybase64, the client's own decoder) and slicing the PCM into 20 ms
``bytes`` frames. The ratio says
how close ours is to that floor (1.0 would be the floor itself).

Deltas are 200 ms at 24 kHz (what the local server sends; OpenAI's vary in size), filled with
noise so base64 and JSON see realistic bytes. Times are CPU time of this thread
(``time.thread_time``), best of interleaved repeats, so other processes on the machine disturb
them little.
"""

from __future__ import annotations

import base64
import json
import time

import numpy as np
from pybase64 import b64decode

from bench.common import Row, better_ratio, row
from realtalk.media.playout import AudioOutput
from realtalk.plugins.openai import OpenAIRealtime
from realtalk.protocol import events, parse_event

RATE = 24000
DELTA_MS = 200
FRAME_MS = 20
FRAMES_PER_DELTA = DELTA_MS // FRAME_MS
FRAME_BYTES = 2 * RATE * FRAME_MS // 1000
GOAL_US = 30.0  # issue 10


def _delta_frames(n: int, item_id: str, response_id: str) -> list[str]:
    """n server frames (JSON text) of audio deltas, as the local server writes them."""
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        pcm = (rng.standard_normal(RATE * DELTA_MS // 1000) * 3000).astype("<i2").tobytes()
        event = events.response_output_audio_delta(
            f"event_{i}", response_id, item_id, 0, 0, base64.b64encode(pcm).decode("ascii")
        )
        out.append(json.dumps(event, separators=(",", ":")))
    return out


def _client() -> tuple[OpenAIRealtime, AudioOutput]:
    """A client that is not connected, with an unpaced AudioOutput, inside a response."""
    model = OpenAIRealtime(model="gpt-realtime", base_url="http://127.0.0.1:9/v1")
    output = AudioOutput(sample_rate=RATE, realtime=False)
    model.audio_output = output
    # What connect() does before opening the socket: hook the output and build the decoder.
    model._ensure_audio_output()
    model.feed(
        {
            "type": "response.created",
            "event_id": "event_created",
            "response": {"id": "resp_bench", "status": "in_progress", "output": []},
        }
    )
    return model, output


def _time_ours(frames: list[str]) -> float:
    """Mean CPU seconds per delta, parse + feed + frames out, with no clock read inside the
    loop (``thread_time`` costs ~0.8 µs a call here: four per delta would add ~10 %)."""
    model, output = _client()
    read_frame = output.read_frame
    clock = time.thread_time
    start = clock()
    for raw in frames:
        model.feed(parse_event(raw))
        for _ in range(FRAMES_PER_DELTA):
            read_frame()
    return (clock() - start) / len(frames)


def _time_stages(frames: list[str]) -> tuple[float, float, float]:
    """The same loop with a clock read between the stages: their shares (parse, feed, frames
    out) of a total that the clock reads inflate a little."""
    model, output = _client()
    parse = feed = take = 0.0
    clock = time.thread_time
    for raw in frames:
        t0 = clock()
        event = parse_event(raw)
        t1 = clock()
        model.feed(event)
        t2 = clock()
        for _ in range(FRAMES_PER_DELTA):
            output.read_frame()
        t3 = clock()
        parse += t1 - t0
        feed += t2 - t1
        take += t3 - t2
    total = parse + feed + take
    return parse / total, feed / total, take / total


def _time_floor(frames: list[str]) -> float:
    """Mean CPU seconds per delta for the bare minimum: json.loads, b64decode, slicing."""
    clock = time.thread_time
    start = clock()
    sink = 0
    for raw in frames:
        pcm = b64decode(json.loads(raw)["delta"], validate=True)
        for i in range(0, len(pcm), FRAME_BYTES):
            sink += len(pcm[i : i + FRAME_BYTES])
    return (clock() - start) / len(frames)


def run(quick: bool = False) -> list[Row]:
    n, repeats = (200, 3) if quick else (2000, 7)
    frames = _delta_frames(n, "item_bench", "resp_bench")
    _time_ours(frames[:50])  # warm-up: imports, first allocations
    # Interleaved repeats, best of each: both see the same machine, the least disturbed run wins.
    ours_runs, floor_runs, stage_runs = [], [], []
    for _ in range(repeats):
        ours_runs.append(_time_ours(frames))
        floor_runs.append(_time_floor(frames))
        stage_runs.append(_time_stages(frames))
    total = min(ours_runs)
    floor = min(floor_runs)
    shares = [sorted(run[i] for run in stage_runs)[len(stage_runs) // 2] for i in range(3)]
    parse, feed, take = (share / sum(shares) * total for share in shares)
    us = 1e6
    return [
        row(
            f"downlink cost per {DELTA_MS} ms audio delta (JSON → PCM → {FRAMES_PER_DELTA} "
            "frames), µs",
            total * us,
            floor * us,
            ratio=better_ratio(total, floor, lower_is_better=True),
            goal=f"≤ {GOAL_US:g} µs",
            met=total * us <= GOAL_US,
            note=(
                f"parse {parse * us:.1f} µs + feed/decode/queue {feed * us:.1f} µs + frames out "
                f"{take * us:.1f} µs (the median shares of a run timed per stage); "
                f"{total / (DELTA_MS / 1000) * 100:.3f} % of one core in real time; "
                "baseline = json.loads + pybase64 b64decode + slicing"
            ),
        ),
        row(
            "downlink: event-parsing share of the per-delta cost, %",
            100 * parse / total,
            goal="report the share",
            note="parse_event (json.loads + GA type check) / the whole per-delta cost",
        ),
    ]

"""The agent's outgoing audio keeps its timestamps to the wall clock: after a stall the next frame
jumps forward (the browser conceals a gap) instead of every later packet looking late to the
browser's jitter buffer, which would then grow for the rest of the call."""

from __future__ import annotations

import numpy as np
import pytest
from aiortc.codecs.opus import OpusEncoder

from realtalk.media.playout import AudioOutput
from realtalk.transports import webrtc_media
from realtalk.transports.webrtc_media import TIMELINE_SLACK_MS, AgentAudioTrack


async def test_a_stall_jumps_the_timestamps_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(webrtc_media.time, "monotonic", lambda: now[0])
    track = AgentAudioTrack(24000)
    track.bind(AudioOutput(24000, realtime=False, jitter_ms=0))
    pts = []
    for _ in range(5):  # on time: 20 ms of media per 20 ms of wall clock (48 kHz on the wire)
        pts.append((await track.recv()).pts)
        now[0] += 0.020
    assert pts == [0, 960, 1920, 2880, 3840]
    now[0] += (TIMELINE_SLACK_MS - 10) / 1000  # a hiccup within the slack: no jump
    assert (await track.recv()).pts == 4800
    now[0] += 0.5  # the loop stalled half a second
    late = (await track.recv()).pts
    assert late - 4800 >= int(0.5 * 48000)  # the gap is in the timestamps
    assert late % 960 == 0
    now[0] += 0.020
    assert (await track.recv()).pts == late + 960  # and then on time again
    track.stop()


async def test_the_agents_voice_leaves_at_48_khz_with_no_frame_held_back() -> None:
    """aiortc's Opus encoder resamples other rates into whole 960-sample frames and, its filter
    holding back 32 samples, sent each 24 kHz frame one frame late: a packet for every frame
    from the first one on, at 48 kHz, means none waits."""
    output = AudioOutput(24000, realtime=False, jitter_ms=0)
    track = AgentAudioTrack(24000)
    track.bind(output)
    tone = (8000 * np.sin(np.arange(2400) * 2 * np.pi * 997 / 24000)).astype("<i2")
    output.push("item", tone.tobytes())
    output.end_item("item")
    encoder = OpusEncoder()
    packets = []
    for _ in range(5):
        frame = await track.recv()
        assert (frame.sample_rate, frame.samples, frame.layout.name) == (48000, 960, "mono")
        payloads, _timestamp = encoder.encode(frame)
        packets.append(len(payloads))
    assert packets == [1, 1, 1, 1, 1]
    track.stop()


def test_a_rate_that_does_not_divide_48_khz_goes_to_aiortc_as_it_is() -> None:
    assert AgentAudioTrack(22050).wire_rate == 22050
    assert AgentAudioTrack(16000).wire_rate == 48000
    assert AgentAudioTrack(48000).wire_rate == 48000

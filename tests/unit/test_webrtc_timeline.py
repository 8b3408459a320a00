"""The agent's outgoing audio keeps its timestamps to the wall clock: after a stall the next frame
jumps forward (the browser conceals a gap) instead of every later packet looking late to the
browser's jitter buffer, which would then grow for the rest of the call."""

from __future__ import annotations

import pytest

from realtalk.media.playout import AudioOutput
from realtalk.transports import webrtc_media
from realtalk.transports.webrtc_media import TIMELINE_SLACK_MS, AgentAudioTrack


async def test_a_stall_jumps_the_timestamps_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(webrtc_media.time, "monotonic", lambda: now[0])
    track = AgentAudioTrack(24000)
    track.bind(AudioOutput(24000, realtime=False, jitter_ms=0))
    pts = []
    for _ in range(5):  # on time: 20 ms of media per 20 ms of wall clock
        pts.append((await track.recv()).pts)
        now[0] += 0.020
    assert pts == [0, 480, 960, 1440, 1920]
    now[0] += (TIMELINE_SLACK_MS - 10) / 1000  # a hiccup within the slack: no jump
    assert (await track.recv()).pts == 2400
    now[0] += 0.5  # the loop stalled half a second
    late = (await track.recv()).pts
    assert late - 2400 >= 480 + int(0.5 * 24000) - 480  # the gap is in the timestamps
    assert late % 480 == 0
    now[0] += 0.020
    assert (await track.recv()).pts == late + 480  # and then on time again
    track.stop()

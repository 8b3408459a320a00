"""Media plumbing of the WebRTC transport: the agent's voice as an aiortc track, and the pumps
that carry the browser's microphone and camera into the session.

Why a track that *pulls*: aiortc's sender calls ``recv()`` once per packet and encodes what it
gets, so the pace of the outgoing stream is set by whoever answers ``recv()``. Here that is
:meth:`AudioOutput.next_frame`, which releases one 20 ms frame per 20 ms on a drift-free clock and
records exactly what was handed out (the played position that barge-in truncation needs). Before
a session is attached the track sends paced silence, so the browser's jitter buffer starts clean.

Timestamps follow the wall clock. When the event loop stalls (a busy machine), the paced output
re-anchors rather than bursting, so fewer frames go out than time passed; with timestamps that
simply count frames, each stall would make every later packet look late to the browser, and its
jitter buffer would grow a little more each time (measured: the agent's audio reached the
page's speaker 0.15 s after it left the agent at the start of a call and 0.9 s four turns later,
on a 2-core machine at load average 14). A frame more than ``TIMELINE_SLACK_MS`` behind the wall
clock therefore jumps the timestamps forward: the browser conceals a short gap instead of
buffering more.

Frames leave at 48 kHz, Opus's own rate. aiortc's Opus encoder resamples anything else through
libswresample into exactly 960-sample frames: its filter holds back 32 samples, so from 24 kHz
each call could fill only 928 of the 960 and every packet went out one frame (19.3 ms) late.
The track upsamples itself with soxr's quick (cubic) stream, which holds back 4 samples, and
hands out exactly twice the samples it took, 8 samples (0.17 ms) behind: ~16 µs a frame.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtalk.media.frame import AudioFrame
from realtalk.media.resample import StreamResampler

if TYPE_CHECKING:  # pragma: no cover - typing only
    from realtalk.media.playout import AudioOutput

__all__ = ["AgentAudioTrack", "pump_audio", "pump_video"]

logger = logging.getLogger("realtalk.transport")

FRAME_MS = 20
#: How far the stream's timestamps may fall behind the wall clock before they jump forward.
TIMELINE_SLACK_MS = 60
#: The rate of the frames handed to aiortc: Opus's, so its encoder passes them straight through.
WIRE_RATE = 48000
#: Samples the upsampler's output starts with, so each frame's samples are whole at once (soxr's
#: quick stream holds back 4 of the first frame's).
_UPSAMPLE_LEAD = 8


class _Upsampler:
    """Mono int16 from ``rate`` to :data:`WIRE_RATE`, exactly ``WIRE_RATE / rate`` times as many
    samples out as in, every call (a constant 8-sample lead absorbs the filter's delay)."""

    def __init__(self, rate: int) -> None:
        self._ratio = WIRE_RATE // rate
        self._stream = StreamResampler(rate, WIRE_RATE, quality="live")  # upsampling: quick
        self._carry = np.zeros(_UPSAMPLE_LEAD, dtype=np.int16)

    def __call__(self, samples: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        want = samples.size * self._ratio
        out = np.concatenate((self._carry, self._stream.push(samples)))
        if out.size < want:  # not seen with soxr's quick filter; never hand out short frames
            out = np.concatenate((np.zeros(want - out.size, dtype=np.int16), out))
        self._carry = out[want:]
        return out[:want]


class AgentAudioTrack(MediaStreamTrack):
    """The agent's voice: one 20 ms ``av.AudioFrame`` per ``recv()``, paced by the AudioOutput.

    Frames go out at 48 kHz mono (the AudioOutput's rate, 24 kHz by default, upsampled; see the
    module docstring; a rate that does not divide 48 kHz goes as it is) with a continuous ``pts``
    in samples. A frame at another rate or channel count than the AudioOutput's (an AudioOutput
    swapped mid-call) is refused with a clear error rather than sent at the wrong speed.
    """

    kind = "audio"

    def __init__(self, sample_rate: int = 24000) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        # A rate that does not divide 48 kHz (22.05, 44.1 kHz) goes as it is: aiortc resamples it.
        upsample = sample_rate != WIRE_RATE and WIRE_RATE % sample_rate == 0
        self._upsample = _Upsampler(sample_rate) if upsample else None
        #: the rate of the frames handed to aiortc
        self.wire_rate = WIRE_RATE if upsample else sample_rate
        self._time_base = fractions.Fraction(1, self.wire_rate)
        self._samples_per_frame = self.wire_rate * FRAME_MS // 1000
        self._silence = np.zeros((1, self._samples_per_frame), dtype=np.int16)
        self._output: AudioOutput | None = None
        self._pts = 0
        self._t0: float | None = None  # pacing of the silence sent before a session is bound
        self._n = 0
        self._clock0: float | None = None  # wall-clock time of pts 0

    def bind(self, output: AudioOutput) -> None:
        """Start playing ``output`` (the session's AudioOutput) from the next frame on."""
        if output.sample_rate != self.sample_rate:
            raise ValueError(
                f"the AudioOutput plays {output.sample_rate} Hz but this track was built for "
                f"{self.sample_rate} Hz; build AgentAudioTrack(sample_rate={output.sample_rate})"
            )
        self._output = output

    def unbind(self) -> None:
        """Go back to silence (the session closed but the peer connection still runs)."""
        self._output = None
        self._t0 = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        output = self._output
        if output is None:
            await self._pace()
            return self._to_av(self._silence)
        frame = await output.next_frame()
        if self.readyState != "live":
            raise MediaStreamError
        return self._convert(frame)

    def _convert(self, frame: AudioFrame) -> av.AudioFrame:
        if frame.sample_rate != self.sample_rate or frame.num_channels != 1:
            raise MediaStreamError(
                f"AgentAudioTrack expects {self.sample_rate} Hz mono frames, got "
                f"{frame.sample_rate} Hz x {frame.num_channels}"
            )
        samples = np.frombuffer(frame.data, dtype="<i2")
        if self._upsample is not None:
            samples = self._upsample(samples)
        return self._to_av(samples.reshape(1, -1))

    def _keep_to_the_clock(self) -> None:
        """Jump the timestamps to the wall clock when they have fallen behind it (a stall)."""
        now = time.monotonic()
        if self._clock0 is None:
            self._clock0 = now - self._pts / self.wire_rate
            return
        behind = now - self._clock0 - self._pts / self.wire_rate
        if behind * 1000 > TIMELINE_SLACK_MS:
            frames = int(behind * self.wire_rate) // self._samples_per_frame
            self._pts += frames * self._samples_per_frame

    def _to_av(self, samples: np.ndarray[Any, Any]) -> av.AudioFrame:
        self._keep_to_the_clock()
        out = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        out.sample_rate = self.wire_rate
        out.time_base = self._time_base
        out.pts = self._pts
        self._pts += samples.shape[1]
        return out

    async def _pace(self) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._n = now, 0
        delay = self._t0 + self._n * FRAME_MS / 1000 - now
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > 0.1:  # fell far behind (a stalled loop): re-anchor, never burst
            self._t0, self._n = now, 0
        self._n += 1


async def pump_audio(
    track: MediaStreamTrack,
    deliver: Callable[[AudioFrame], Awaitable[None] | None],
) -> None:
    """Read the browser's microphone track until it ends, handing each frame to ``deliver``.

    aiortc decodes Opus to 48 kHz s16 (usually stereo); :meth:`AudioFrame.from_av` reads the
    rate and channels from each frame, so nothing is assumed here. ``deliver`` returns ``None``
    to drop a frame (no session yet): the track is drained either way, so aiortc's queue never
    grows while the agent starts.
    """
    failures = 0
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, av.AudioFrame):
            continue  # an encoded packet: aiortc only hands those out for relayed tracks
        try:
            result = deliver(AudioFrame.from_av(frame))
            if result is not None:
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            if failures == 1 or failures % 500 == 0:
                logger.exception("microphone frame could not be delivered (%d so far)", failures)


async def pump_video(
    track: MediaStreamTrack,
    deliver: Callable[[Any], Awaitable[None] | None],
) -> None:
    """Read the browser's camera track until it ends, handing decoded frames to ``deliver``.

    The session throttles frames to its own rate; ``deliver`` may drop them (camera toggled off).
    """
    failures = 0
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        try:
            result = deliver(frame)
            if result is not None:
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            if failures == 1 or failures % 100 == 0:
                logger.exception("camera frame could not be delivered (%d so far)", failures)

"""Client-side instruments shared by the benchmarks that talk to a local server.

- :class:`Tap` sees every server event the moment the client dispatches it (it wraps the model's
  ``feed``, which the receive loop calls for each event), timestamps it, keeps the audio of each
  item as the server sent it, and lets a benchmark wait for an event.
- :class:`Mic` pushes 20 ms microphone frames in real time (silence, or a loud tone while
  "speaking"), as a microphone would.
- :func:`tone_frame` / :func:`silence_frame`: 48 kHz mono frames the energy VAD hears as speech
  and as silence.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import numpy as np

from realtalk.media.frame import AudioFrame
from realtalk.plugins.openai import OpenAIRealtime

MIC_RATE = 48000
FRAME_S = 0.02

Event = dict[str, Any]


def tone_frame(index: int, rate: int = MIC_RATE, level: float = 0.2) -> AudioFrame:
    """A 20 ms frame of a 220 Hz harmonic tone, continuous across frame indices (~-17 dBFS)."""
    n = int(rate * FRAME_S)
    t = (np.arange(n) + index * n) / rate
    wave = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in (1, 2, 3)) * (level / 1.84)
    return AudioFrame.from_array(np.round(wave * 32767).astype(np.int16), rate)


def silence_frame(rate: int = MIC_RATE) -> AudioFrame:
    return AudioFrame.silence(FRAME_S * 1000, rate)


class Tap:
    """Every server event at the client's dispatch, with its arrival time (perf_counter)."""

    def __init__(self, model: OpenAIRealtime, *, keep_audio: bool = False) -> None:
        self.model = model
        self.keep_audio = keep_audio
        self.audio: dict[str, bytearray] = defaultdict(bytearray)
        self.counts: dict[str, int] = defaultdict(int)
        self.errors: list[Event] = []
        self._hooks: dict[str, list[Callable[[Event, float], None]]] = defaultdict(list)
        self._after: dict[str, list[Callable[[Event, float], None]]] = defaultdict(list)
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []
        self._feed = model.feed
        # The receive loop calls ``self.feed(event)``: an instance attribute shadows the method.
        model.feed = self._dispatch  # type: ignore[method-assign]

    def on(
        self, event_type: str, hook: Callable[[Event, float], None], *, after: bool = False
    ) -> None:
        """Call ``hook(event, arrival_time)`` before the client handles each such event (or
        right after it did, with ``after=True``)."""
        (self._after if after else self._hooks)[event_type].append(hook)

    def _dispatch(self, event: Event) -> None:
        arrival = time.perf_counter()
        kind = str(event.get("type"))
        self.counts[kind] += 1
        for hook in self._hooks.get(kind, ()):
            hook(event, arrival)
        if kind == "error":
            self.errors.append(event)
        elif self.keep_audio and kind == "response.output_audio.delta":
            self.audio[str(event.get("item_id"))] += base64.b64decode(event.get("delta") or "")
        self._feed(event)
        for hook in self._after.get(kind, ()):
            hook(event, arrival)
        if self._waiters:
            for predicate, future in list(self._waiters):
                if not future.done() and predicate(event):
                    future.set_result(event)
            self._waiters = [w for w in self._waiters if not w[1].done()]

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float) -> Event | None:
        """The next event matching ``predicate`` (after this call), or None after ``timeout``."""
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None


class Mic:
    """Pushes a 20 ms frame every 20 ms on a drift-free clock: silence, a tone while speaking, or
    the frames of a clip given to :meth:`play`."""

    def __init__(self, push: Callable[[AudioFrame], Any], rate: int = MIC_RATE) -> None:
        self._push = push
        self._rate = rate
        self._silence = silence_frame(rate)
        self._tones = [tone_frame(i, rate) for i in range(50)]
        self._speak_frames = 0
        self._clip: list[AudioFrame] = []
        self._clip_times: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def speak(self, seconds: float) -> None:
        """Send the tone for the next ``seconds`` (then silence again)."""
        self._speak_frames = round(seconds / FRAME_S)

    def play(self, frames: list[AudioFrame]) -> list[float]:
        """Send these frames next, in real time; returns the list that receives the
        ``perf_counter`` time at which each one was pushed (filled as they go out)."""
        self._clip = list(frames)
        self._clip_times = []
        return self._clip_times

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        n = 0
        while True:
            if self._clip:
                frame = self._clip.pop(0)
                self._clip_times.append(time.perf_counter())
            elif self._speak_frames > 0:
                self._speak_frames -= 1
                frame = self._tones[n % len(self._tones)]
            else:
                frame = self._silence
            result = self._push(frame)
            if asyncio.iscoroutine(result):
                await result
            n += 1
            delay = t0 + n * FRAME_S - loop.time()
            if delay < -0.1:  # fell far behind: re-anchor rather than burst
                t0, n = loop.time(), 0
            await asyncio.sleep(max(delay, 0.0))


@contextlib.asynccontextmanager
async def live_call(
    model: OpenAIRealtime,
    output: Any,
    speaker: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> AsyncIterator[Mic]:
    """``model`` connected, a real-time :class:`Mic` pushing into it and a speaker pulling
    ``output`` (an ``AudioOutput``, the model's) frame by frame, or ``speaker()`` doing that
    its own way; all closed on the way out."""

    async def pull() -> None:
        while True:
            await output.next_frame()

    await model.connect()
    mic = Mic(model.handle_audio_input)
    mic.start()
    play = asyncio.get_running_loop().create_task((speaker or pull)())
    try:
        yield mic
    finally:
        await mic.stop()
        play.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await play
        await model.aclose()

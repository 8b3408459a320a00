"""A browser stand-in for the scale-out tests: aiortc, talking to a gateway like the page does.

It sends a (silent) 48 kHz stereo microphone track, receives and decodes the agent's voice,
speaks on the "events" data channel, and resumes the way the page does: when the agent's audio
stops arriving for ``stall_s``, when the connection fails, or when the worker says ``migrate``, it
sends a new offer through the gateway with its session id.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

MIC_RATE = 48000


class SilentMic(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._n = MIC_RATE // 50
        self._samples = np.zeros((1, 2 * self._n), dtype=np.int16)
        self._pts = 0
        self._t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        self._t0 = self._t0 or now
        delay = self._t0 + self._pts / MIC_RATE - now
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.AudioFrame.from_ndarray(self._samples, format="s16", layout="stereo")
        frame.sample_rate = MIC_RATE
        frame.time_base = fractions.Fraction(1, MIC_RATE)
        frame.pts = self._pts
        self._pts += self._n
        return frame


async def make_offer_sdp() -> str:
    """A real browser-like offer (audio + the events channel), for offers that never connect."""
    pc = RTCPeerConnection()
    pc.addTrack(SilentMic())
    pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


class Peer:
    def __init__(
        self, gateway_url: str, *, stall_s: float = 4.0, greetings: tuple[str, ...] = ()
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.greetings = greetings  # agent lines that are no answer to a question
        self.stall_s = stall_s
        self.session_id: str | None = None
        self.worker: str | None = None
        self.workers: list[str] = []  # every worker this call has been on, in order
        self.resumed_flags: list[bool] = []
        self.events: list[dict[str, Any]] = []
        self.resumes = 0
        self._pc: RTCPeerConnection | None = None
        self._channel: Any = None
        self._open = asyncio.Event()
        self._new_event = asyncio.Event()
        self._last_audio = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._resuming: asyncio.Task[None] | None = None
        self._closed = False

    # -- connecting ---------------------------------------------------------------------------

    async def connect(self, timeout_s: float = 60.0) -> None:
        await asyncio.wait_for(self._connect(), timeout_s)
        if self._watch is None:
            self._watch = asyncio.create_task(self._watchdog())

    async def _connect(self) -> None:
        pc = RTCPeerConnection()
        self._pc = pc
        self._open = asyncio.Event()
        pc.addTrack(SilentMic())
        channel = pc.createDataChannel("events", ordered=True)
        self._channel = channel

        @channel.on("open")
        def _opened() -> None:
            self._open.set()

        @channel.on("message")
        def _message(raw: str | bytes) -> None:
            if self._pc is not pc:
                return  # a message from the connection this call left
            event = json.loads(raw)
            self.events.append(event)
            self._new_event.set()
            if event.get("type") == "migrate":
                self._start_resume("migrate")

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._spawn(self._drain_audio(pc, track))

        await pc.setLocalDescription(await pc.createOffer())
        body: dict[str, Any] = {"sdp": pc.localDescription.sdp, "type": "offer"}
        if self.session_id is not None:
            body["session_id"] = self.session_id
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.gateway_url}/api/offer", json=body) as resp,
        ):
            answer = await resp.json()
            if resp.status != 200:
                await pc.close()
                raise OfferRefused(resp.status, answer.get("error", ""))
        self.session_id = answer["session_id"]
        self.worker = answer["worker"]
        self.workers.append(self.worker)
        self.resumed_flags.append(bool(answer.get("resumed")))
        self._last_audio = time.monotonic()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await self._open.wait()

    async def _drain_audio(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while self._pc is pc:
                await track.recv()
                self._last_audio = time.monotonic()

    async def _watchdog(self) -> None:
        tick = time.monotonic()
        while not self._closed:
            await asyncio.sleep(0.25)
            now, last_tick, tick = time.monotonic(), tick, time.monotonic()
            if now - last_tick > 1.0:  # this loop itself stalled: the audio had no chance
                self._last_audio = now
                continue
            pc = self._pc
            if pc is None or self._resuming is not None:
                continue
            stalled = time.monotonic() - self._last_audio > self.stall_s
            if stalled or pc.connectionState == "failed":
                self._start_resume("stalled" if stalled else "failed")

    def _start_resume(self, reason: str) -> None:
        if self._resuming is None and not self._closed:
            self._resuming = asyncio.create_task(self._resume(reason))

    async def _resume(self, reason: str) -> None:
        try:
            old, self._pc = self._pc, None
            if old is not None:
                self._spawn(old.close())
            for attempt in range(10):
                try:
                    await asyncio.wait_for(self._connect(), 30)
                    self.resumes += 1
                    return
                except (OfferRefused, TimeoutError, aiohttp.ClientError):
                    await asyncio.sleep(0.5 * (attempt + 1))
        finally:
            self._resuming = None

    async def wait_resumed(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.resumes < count or self._resuming is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no resume after {timeout_s} s (resumes: {self.resumes})")
            await asyncio.sleep(0.1)

    # -- talking ------------------------------------------------------------------------------

    async def ask(self, text: str, timeout_s: float = 60.0) -> str:
        """Type ``text`` and return the agent's final transcript of its reply."""
        seen = len(self.events)
        self._channel.send(json.dumps({"type": "text", "text": text}))
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self.events[seen:]:
                if event.get("type") == "error" and event.get("code") == "not_ready":
                    await asyncio.sleep(0.3)  # the agent is still starting: say it again
                    self._channel.send(json.dumps({"type": "text", "text": text}))
                if (
                    event.get("type") == "transcription"
                    and event.get("role") in ("agent", "assistant")
                    and event.get("is_final")
                    and event.get("text") not in self.greetings
                ):
                    return str(event.get("text"))
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply to {text!r} in {timeout_s} s: {self.events[-8:]}")
            self._new_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_event.wait(), min(left, 1.0))

    def agent_lines(self) -> list[str]:
        """The agent's final transcripts so far, greetings included."""
        return [
            str(e.get("text"))
            for e in self.events
            if e.get("type") == "transcription"
            and e.get("role") in ("agent", "assistant")
            and e.get("is_final")
        ]

    async def close(self) -> None:
        """Hang up as the page does: "bye", then close."""
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
        if self._resuming is not None:
            self._resuming.cancel()
        pc, self._pc = self._pc, None
        if pc is not None:
            with contextlib.suppress(Exception):
                if self._channel is not None and self._channel.readyState == "open":
                    self._channel.send(json.dumps({"type": "bye"}))
                    await asyncio.sleep(0.1)
            await pc.close()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class OfferRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason

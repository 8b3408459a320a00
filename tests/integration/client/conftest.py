"""OpenAIRealtime against the local server over real WebSockets: a paced speaker, a microphone
that streams 48 kHz stereo frames in real time, and a record of what the server received.

The server runs the scripted engines (EnergyVAD, ScriptedTranscriber, ScriptedLLM, ToneVoice), so
replies are exact: "You said: <text>." (four words a second of audio), and "call <tool> {json}"
makes the model call a tool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest

from realtalk.media.frame import AudioFrame
from realtalk.media.playout import AudioOutput
from realtalk.media.resample import resample_oneshot
from realtalk.media.wav import iter_frames, read_wav
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.realtime.events import ModelEventName
from realtalk.server import LocalServer, app
from tests.conftest import RecordingConnection, make_engines, make_speech_wav

TIMEOUT_S = 15.0
FRAME_MS = 20

MODEL_EVENTS = get_args(ModelEventName)  # every event the model may emit


class Log:
    """Every event the model emitted, with the loop time, and a way to wait for one."""

    def __init__(self, model: OpenAIRealtime) -> None:
        self.events: list[tuple[str, Any, float]] = []
        self._changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        for name in MODEL_EVENTS:
            model.on(name, lambda *a, _n=name: self._add(_n, a[0] if a else None, loop.time()))

    def _add(self, name: str, payload: Any, t: float) -> None:
        self.events.append((name, payload, t))
        self._changed.set()

    def of(self, name: str) -> list[Any]:
        return [p for n, p, _ in self.events if n == name]

    def finals(self, role: str) -> list[str]:
        return [
            p["text"]
            for p in self.of("realtime_model_transcription")
            if p["is_final"] and p["role"] == role
        ]

    async def wait(self, condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def next(self, name: str, timeout: float = TIMEOUT_S) -> Any:
        count = len(self.of(name))
        await self.wait(lambda: len(self.of(name)) > count, timeout)
        return self.of(name)[count]


class Speaker:
    """Pulls 20 ms frames from the model's AudioOutput at real-time pace, counting per item."""

    def __init__(self, model: OpenAIRealtime) -> None:
        assert model.audio_output is not None
        self.output = model.audio_output
        self.current: str | None = None
        self.frames: dict[str, int] = {}  # frames handed out per item
        self.after_flush: list[tuple[float, bool]] = []  # (time, silent) of frames after cuts
        self.watch_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self.cut_at: float | None = None
        model.on("agent_speech_started", self._started)
        model.on("agent_speech_ended", self._ended)
        model.on("user_speech_started", self._cut)

    def _started(self, payload: dict[str, Any]) -> None:
        self.current = payload["item_id"]
        self.frames[self.current] = 0

    def _ended(self, payload: dict[str, Any]) -> None:
        if not payload["interrupted"] and self.current == payload["item_id"]:
            self.frames[self.current] += 1  # its last frame went out in this read
        self.current = None

    def _cut(self, _: Any) -> None:
        """The model has just flushed (it emits user_speech_started after the cut)."""
        self.cut_at = asyncio.get_running_loop().time()
        self.watch_until = self.cut_at + 0.3

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await self.output.next_frame()
            if self.current is not None:
                self.frames[self.current] += 1
            now = loop.time()
            if now <= self.watch_until:
                self.after_flush.append((now, not any(frame.data)))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Microphone:
    """Streams 48 kHz stereo 20 ms frames in real time: silence, or queued speech."""

    def __init__(self, model: OpenAIRealtime) -> None:
        self.model = model
        self._queue: list[AudioFrame] = []
        self._silence = AudioFrame.silence(FRAME_MS, 48000, 2)
        self._task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()
        self.sent_ms = 0

    def say(self, frames: list[AudioFrame]) -> None:
        self.done.clear()
        self._queue.extend(frames)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        n = 0
        while True:
            frame = self._queue.pop(0) if self._queue else self._silence
            if not self._queue:
                self.done.set()
            await self.model.handle_audio_input(frame)
            self.sent_ms += FRAME_MS
            n += 1
            await asyncio.sleep(max(0.0, t0 + n * FRAME_MS / 1000 - loop.time()))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def speech_frames_48k_stereo(path: Path) -> list[AudioFrame]:
    """A mono espeak WAV as 48 kHz stereo 20 ms frames (what a WebRTC browser sends)."""
    wav = read_wav(path)
    mono = np.frombuffer(wav.data, dtype="<i2")
    at48 = np.asarray(resample_oneshot(mono, wav.sample_rate, 48000), dtype=np.int16)
    stereo = AudioFrame.from_array(np.repeat(at48[:, None], 2, axis=1), 48000)
    return list(iter_frames(stereo, FRAME_MS, pad=True))


@dataclass
class Rig:
    server: LocalServer
    model: OpenAIRealtime
    log: Log
    speaker: Speaker
    mic: Microphone
    connections: list[RecordingConnection] = field(default_factory=list)
    proxy: Any = None  # set when the model goes through a proxy (``via=``)

    @property
    def connection(self) -> RecordingConnection:
        return self.connections[-1]


@pytest.fixture
def speech(tmp_path: Path) -> Callable[[str], list[AudioFrame]]:
    counter = iter(range(1000))

    def make(text: str) -> list[AudioFrame]:
        return speech_frames_48k_stereo(make_speech_wav(text, tmp_path / f"s{next(counter)}.wav"))

    return make


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[RecordingConnection]:
    RecordingConnection.made = []
    monkeypatch.setattr(app, "Connection", RecordingConnection)
    return RecordingConnection.made


@pytest.fixture
async def make_rig(
    recording: list[RecordingConnection],
) -> AsyncIterator[Callable[..., Any]]:
    """``rig = await make_rig(config=..., base_url=..., word_delay_s=...)``; all closed after."""
    opened: list[tuple[Rig, Any]] = []

    async def make(
        *,
        config: OpenAIRealtimeConfig | None = None,
        word_delay_s: float = 0.0,
        via: Callable[[LocalServer], Any] | None = None,
        connect: bool = True,
    ) -> Rig:
        server = LocalServer(
            port=0, engines=make_engines(word_delay_s=word_delay_s), partial_transcripts=False
        )
        await server.start()
        base_url = server.base_url
        proxy = None
        if via is not None:
            proxy = await via(server)
            base_url = proxy.base_url + "/v1"
        model = OpenAIRealtime(model="gpt-realtime", base_url=base_url, config=config)
        model.audio_output = AudioOutput(24000)  # what AgentSession does: a paced playout
        rig = Rig(server, model, Log(model), Speaker(model), Microphone(model), recording, proxy)
        opened.append((rig, proxy))
        if connect:
            await model.connect()
        rig.speaker.start()
        rig.mic.start()
        return rig

    yield make
    for rig, proxy in opened:
        await rig.mic.aclose()
        await rig.speaker.aclose()
        await rig.model.aclose()
        if proxy is not None:
            await proxy.aclose()
        await rig.server.aclose()

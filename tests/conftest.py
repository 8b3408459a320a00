"""Fixtures shared by every test package.

- ``scripted_server``: a :class:`~realtalk.server.LocalServer` on a free port with the scripted
  engines (EnergyVAD, ScriptedTranscriber, ScriptedLLM, ToneVoice): starts in milliseconds, replies
  deterministically ("You said: <text>."; "call <tool> {json}" makes a function call).
- ``scripted_engines``: a fresh set of those engines, for tests that build their own server.
- ``make_speech_wav(text, path)``: espeak-ng speech as a WAV file (skips the test without
  espeak-ng); ``speech_pcm24k(text)`` gives the same speech as 24 kHz int16 mono bytes, the
  Realtime wire format.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from realtalk.server import LocalServer
from realtalk.server.connection import Connection
from realtalk.server.engines.base import Engines
from realtalk.server.engines.energy import EnergyVAD
from realtalk.server.engines.scripted import ScriptedLLM, ScriptedTranscriber, ToneVoice


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak runs take tens of minutes: they run only when ``-m`` names them.

    The ini's ``-m 'not soak'`` is replaced by any ``-m`` on the command line (``-m "not slow"``
    would otherwise start a 20-minute soak in the quick development loop).
    """
    if "soak" in (config.option.markexpr or ""):
        return  # the expression decides
    kept = [item for item in items if item.get_closest_marker("soak") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


__all__ = ["make_engines", "make_speech_wav", "read_wav_pcm24k"]


def make_engines(*, word_delay_s: float = 0.0) -> Engines:
    """Scripted engines; ``word_delay_s`` slows the LLM down for interruption tests."""
    return Engines(
        vad=EnergyVAD(),
        transcriber=ScriptedTranscriber(),
        llm=ScriptedLLM(word_delay_s=word_delay_s),
        voice=ToneVoice(),
        name="scripted",
    )


def make_speech_wav(text: str, path: Path | str) -> Path:
    """Speak ``text`` with espeak-ng into a WAV at ``path`` (22,050 Hz mono); skip without it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (scripts/setup installs it)")
    path = Path(path)
    subprocess.run([exe, "-v", "en-us", "-s", "160", "-w", str(path), text], check=True)
    return path


def read_wav_pcm24k(path: Path | str) -> bytes:
    """A mono 16-bit WAV resampled to 24 kHz int16 little-endian bytes."""
    from realtalk.media.resample import resample_oneshot

    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit samples")
        rate, channels = wav.getframerate(), wav.getnchannels()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1).astype(np.int16)
    out = resample_oneshot(pcm, rate, 24000) if rate != 24000 else pcm
    return np.asarray(out, dtype="<i2").tobytes()


@pytest.fixture
def scripted_engines() -> Engines:
    return make_engines()


@pytest.fixture
async def scripted_server() -> AsyncIterator[LocalServer]:
    """A running LocalServer with scripted engines on 127.0.0.1 and a free port.

    Early transcription (partials, speculation in pauses) is off, so the ScriptedTranscriber is
    called exactly once per committed turn and ``set_next`` texts land where a test expects.
    """
    server = LocalServer(
        port=0, engines=make_engines(), partial_transcripts=False, speculative_transcripts=False
    )
    async with server:
        yield server


@pytest.fixture
def speech_pcm24k(tmp_path: Path) -> Callable[[str], bytes]:
    """``speech_pcm24k(text)``: espeak-ng speech as 24 kHz int16 mono bytes."""
    counter = iter(range(1_000_000))

    def speak(text: str) -> bytes:
        return read_wav_pcm24k(make_speech_wav(text, tmp_path / f"speech_{next(counter)}.wav"))

    return speak


class RecordingConnection(Connection):
    """The server's connection, keeping every client event it handled (and itself)."""

    made: ClassVar[list[RecordingConnection]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[dict[str, Any]] = []
        RecordingConnection.made.append(self)

    async def handle(self, event: Any) -> None:
        if isinstance(event, dict):
            self.received.append(event)
        await super().handle(event)

    def items(self) -> list[dict[str, Any]]:
        return [entry.item for entry in self.conversation]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e.get("type") == kind]

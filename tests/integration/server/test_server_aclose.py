"""LocalServer.aclose leaves no engine work behind: a transcription or a voice that was running
when it was called has ended when it returns, and no engine is called afterwards.

Engine calls run in threads, which cancelling a task does not stop; before the fix Whisper went
on transcribing after the server had closed.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator

import numpy as np

from realtalk.protocol import events as ev
from realtalk.server import LocalServer
from realtalk.server.engines.base import Transcript
from realtalk.server.engines.scripted import ScriptedTranscriber, ToneVoice
from tests.conftest import make_engines
from tests.integration.server.conftest import raw_client

WORK_S = 0.4  # how long each engine call blocks: long enough to be caught in the middle


class Ledger:
    """Counts engine calls that are running, and those that ran or started after a moment."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.started = threading.Event()
        self.closed_at: float | None = None
        self.late: list[str] = []  # calls running (or starting) after the server closed

    def enter(self, what: str) -> None:
        with self.lock:
            self.running += 1
            if self.closed_at is not None:
                self.late.append(f"{what} started after close")
        self.started.set()

    def leave(self, what: str) -> None:
        with self.lock:
            self.running -= 1
            if self.closed_at is not None:
                self.late.append(f"{what} still running at close")

    def close(self) -> None:
        with self.lock:
            self.closed_at = time.monotonic()


class SlowTranscriber(ScriptedTranscriber):
    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger

    def transcribe(self, pcm16k: np.ndarray, prompt: str | None = None) -> Transcript:
        self.ledger.enter("transcribe")
        try:
            time.sleep(WORK_S)
            return super().transcribe(pcm16k, prompt)
        finally:
            self.ledger.leave("transcribe")


class SlowVoice(ToneVoice):
    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        self.ledger.enter("synthesize")
        try:
            for chunk in super().synthesize(text):
                time.sleep(WORK_S)
                yield chunk
        finally:
            self.ledger.leave("synthesize")


def slow_server(ledger: Ledger) -> LocalServer:
    engines = make_engines()
    engines.transcriber = SlowTranscriber(ledger)
    engines.voice = SlowVoice(ledger)
    return LocalServer(engines=engines, partial_transcripts=False, speculative_transcripts=False)


async def close_when_busy(server: LocalServer, ledger: Ledger) -> None:
    assert await asyncio.to_thread(ledger.started.wait, 10), "the engine was never called"
    await server.aclose()
    with ledger.lock:
        running = ledger.running
    ledger.close()
    assert running == 0, "engine work outlived LocalServer.aclose()"
    await asyncio.sleep(3 * WORK_S)  # anything left behind would show up now
    assert ledger.late == []


async def test_a_transcription_in_flight_has_ended_when_aclose_returns() -> None:
    ledger = Ledger()
    server = slow_server(ledger)
    await server.start()
    async with raw_client(server) as client:
        await client.send(ev.session_update({"audio": {"input": {"turn_detection": None}}}))
        await client.until("session.updated")
        audio = base64.b64encode(bytes(48 * 1000)).decode()
        await client.send(ev.input_audio_buffer_append(audio))
        await client.send(ev.input_audio_buffer_commit())
        await client.until("input_audio_buffer.committed")
        await client.send(ev.response_create())  # waits on the transcript
        await close_when_busy(server, ledger)


async def test_a_voice_in_flight_has_ended_when_aclose_returns() -> None:
    ledger = Ledger()
    server = slow_server(ledger)
    await server.start()
    async with raw_client(server) as client:
        await client.send(ev.conversation_item_create(ev.user_text_item("one. two. three.")))
        await client.send(ev.response_create())
        await client.until("response.created")
        await close_when_busy(server, ledger)

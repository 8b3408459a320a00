"""A Connection driven directly: events in through ``handle``, events out into a list."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from realtalk.protocol.ids import IdGenerator
from realtalk.server.connection import Connection
from realtalk.server.engines.base import Engines
from realtalk.server.engines.scripted import ToneVoice
from tests.conformance import check_client_event, check_server_event
from tests.conftest import make_engines

Event = dict[str, Any]


class Harness:
    """Feeds a Connection and reads what it sends; every event is checked against the SDK."""

    def __init__(self, engines: Engines, **options: Any) -> None:
        # early transcriptions would consume the ScriptedTranscriber's queued texts
        options.setdefault("partial_transcripts", False)
        options.setdefault("speculative_transcripts", False)
        self.engines = engines
        self.events: list[Event] = []
        self.connection = Connection(
            engines, self._collect, new_id=IdGenerator(deterministic=True), **options
        )
        self.connection.open()

    def _collect(self, event: Event) -> None:
        check_server_event(event)
        self.events.append(event)

    async def send(self, event: Event, *, valid: bool = True) -> None:
        if valid:
            check_client_event(event)
        await self.connection.handle(event)

    def types(self, since: int = 0) -> list[str]:
        return [e["type"] for e in self.events[since:]]

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["type"] == kind]

    async def wait_for(self, kind: str, count: int = 1, timeout: float = 10.0) -> Event:
        """The ``count``-th event of ``kind`` (waits for the connection's tasks to send it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.of(kind)) < count:
            if loop.time() > deadline:
                raise AssertionError(f"no {kind} #{count}; got {self.types()}")
            await asyncio.sleep(0.005)
        return self.of(kind)[count - 1]

    async def append(self, pcm: bytes, chunk_ms: int = 100) -> None:
        step = 48 * chunk_ms
        for i in range(0, len(pcm), step):
            audio = base64.b64encode(pcm[i : i + step]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": audio})

    def last_error(self) -> dict[str, Any]:
        errors = self.of("error")
        assert errors, f"no error among {self.types()}"
        error: dict[str, Any] = errors[-1]["error"]
        return error


def tone_speech(text: str = "hello there my friend") -> bytes:
    """Loud tone bursts (250 ms a word) at 24 kHz: speech as far as the energy VAD can tell."""
    return np.concatenate(list(ToneVoice(amplitude=0.5).synthesize(text))).astype("<i2").tobytes()


def silence(ms: int) -> bytes:
    return bytes(48 * ms)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(make_engines())
    yield h
    await h.connection.aclose()


@pytest.fixture
async def make_harness() -> AsyncIterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(engines: Engines | None = None, **options: Any) -> Harness:
        h = Harness(engines or make_engines(), **options)
        made.append(h)
        return h

    yield make
    for h in made:
        await h.connection.aclose()

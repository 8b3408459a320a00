"""The client's receive loop under arbitrary and mutated server frames, over a real WebSocket.

A fake Realtime server (just enough protocol to let ``OpenAIRealtime.connect`` finish) sends the
client fuzzed frames, then a sentinel ``error`` event with a unique code. The receive loop
survived if the client reports the sentinel, on the same connection (no reconnect was needed).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig, ReconnectPolicy
from realtalk.protocol import events as ev
from realtalk.protocol.session import default_session
from realtalk.realtime.base import ModelError
from tests.reliability.conftest import Ledger
from tests.reliability.corpus import SERVER_EVENTS, byte_mutations, mutated_events

AREA = "client, bad server input"

Frame = str | bytes


class FakeServer:
    """Answers the handshake (session.created, session.updated), then sends what it is told."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: Server | None = None
        self._current: ServerConnection | None = None

    async def start(self) -> FakeServer:
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=None)
        return self

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self._current = ws
        session = {**default_session("gpt-realtime"), "id": "sess_fake", "expires_at": 0}
        await ws.send(json.dumps(ev.session_created("e0", session)))
        try:
            async for frame in ws:
                event = json.loads(frame)
                if event.get("type") == "session.update":
                    await ws.send(json.dumps(ev.session_updated("e1", session)))
        except ConnectionClosed:
            pass

    async def push(self, frames: list[Frame]) -> None:
        assert self._current is not None
        for frame in frames:
            await self._current.send(frame)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class Client:
    """A connected OpenAIRealtime and the error codes it reported."""

    def __init__(self, model: OpenAIRealtime) -> None:
        self.model = model
        self.codes: list[str | None] = []
        self._seen = asyncio.Event()
        model.on("error", self._on_error)

    def _on_error(self, error: ModelError) -> None:
        self.codes.append(error.code)
        self._seen.set()

    async def wait_for_code(self, code: str, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while code not in self.codes:
                self._seen.clear()
                await self._seen.wait()


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    server = await FakeServer().start()
    yield server
    await server.aclose()


@pytest.fixture
async def client(fake: FakeServer) -> AsyncIterator[Client]:
    logging.getLogger("realtalk.client").setLevel(logging.CRITICAL)  # thousands of warnings
    config = OpenAIRealtimeConfig(reconnect=ReconnectPolicy(max_attempts=0))
    model = OpenAIRealtime(model="gpt-realtime", base_url=fake.base_url, config=config)
    await model.connect()
    yield Client(model)
    await model.aclose()
    logging.getLogger("realtalk.client").setLevel(logging.NOTSET)


def _sentinel(n: int) -> str:
    return json.dumps(ev.error(f"s{n}", message="sentinel", code=f"sentinel_{n}"))


def _harmless(event: dict[str, Any]) -> dict[str, Any]:
    """A mutated event, minus what would legitimately end the session (a fatal error)."""
    if event.get("type") == "error":
        event["error"] = {"type": "invalid_request_error", "code": "fuzzed", "message": "x"}
    return event


FRAMES: st.SearchStrategy[Frame] = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80),
    byte_mutations(SERVER_EVENTS),
    mutated_events(SERVER_EVENTS).map(lambda e: json.dumps(_harmless(e))),
    mutated_events(SERVER_EVENTS).map(lambda e: json.dumps(_harmless(e))),
)

_COUNTER = iter(range(10**9))


async def _survives(
    fake: FakeServer, client: Client, frames: list[Frame], timeout: float = 5.0
) -> None:
    n = next(_COUNTER)
    await fake.push([*frames, _sentinel(n)])
    await client.wait_for_code(f"sentinel_{n}", timeout)
    assert fake.connections == 1, "the client had to reconnect"
    assert client.model.connected


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(FRAMES, min_size=1, max_size=8))
async def test_receive_loop_survives_fuzzed_frames(
    fake: FakeServer, client: Client, ledger: Ledger, frames: list[Frame]
) -> None:
    await _survives(fake, client, frames)
    ledger.record(AREA, "random/mutated server frames", tries=len(frames))


async def test_unreadable_frames_are_reported(
    fake: FakeServer, client: Client, ledger: Ledger
) -> None:
    """Bad frames are not swallowed: each one the parser refuses becomes an error event."""
    bad: list[Frame] = ["", "{", "[]", "null", '{"type": 3}', b"\xff\xfe", '"text"']
    await _survives(fake, client, bad)
    assert client.codes.count("invalid_event") == len(bad)
    ledger.record(AREA, "unreadable server frames reported as errors", tries=len(bad))


async def test_a_deeply_nested_frame(fake: FakeServer, client: Client, ledger: Ledger) -> None:
    try:
        await _survives(fake, client, ['{"type": "error", "x": ' + "[" * 100_000 + "}"], 2.0)
    except (TimeoutError, AssertionError):
        ledger.record(AREA, "deeply nested server frame", survived=0, lost="the receive loop")
        raise
    ledger.record(AREA, "deeply nested server frame")

"""Clients for the local server: the official SDK, and a raw WebSocket for malformed input.

Both read raw frames and check every server event against the SDK's models (strictly: no unknown
keys); events the tests send are checked against the client union.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from openai import AsyncOpenAI
from websockets.asyncio.client import ClientConnection, connect

from realtalk.server import LocalServer
from tests.conformance import check_client_event, check_server_event

Event = dict[str, Any]


class EventReader:
    """What a test client received, in order, each event validated on arrival."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def _got(self, raw: str | bytes) -> Event:
        event: Event = json.loads(raw)
        check_server_event(event)
        self.events.append(event)
        return event

    async def _recv_raw(self) -> str | bytes:
        raise NotImplementedError

    async def recv(self, timeout: float = 15.0) -> Event:
        return self._got(await asyncio.wait_for(self._recv_raw(), timeout))

    async def until(self, kind: str, timeout: float = 15.0) -> Event:
        """Read until an event of ``kind`` arrives; returns it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.recv(max(deadline - loop.time(), 0.01))
            if event["type"] == kind:
                return event

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["type"] == kind]

    def types(self, since: int = 0) -> list[str]:
        return [e["type"] for e in self.events[since:]]


class SdkClient(EventReader):
    """The official SDK's realtime connection, read frame by frame."""

    def __init__(self, connection: Any) -> None:
        super().__init__()
        self.connection = connection

    async def _recv_raw(self) -> str | bytes:
        raw: bytes = await self.connection.recv_bytes()
        return raw

    async def send(self, event: Event) -> None:
        check_client_event(event)
        await self.connection.send(event)

    async def append_pcm(self, pcm: bytes, chunk_ms: int = 100) -> None:
        step = 48 * chunk_ms
        for i in range(0, len(pcm), step):
            audio = base64.b64encode(pcm[i : i + step]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": audio})


class RawClient(EventReader):
    """A bare WebSocket: sends anything, malformed frames included."""

    def __init__(self, websocket: ClientConnection) -> None:
        super().__init__()
        self.websocket = websocket

    async def _recv_raw(self) -> str | bytes:
        return await self.websocket.recv()

    async def send_raw(self, frame: str | bytes) -> None:
        await self.websocket.send(frame)

    async def send(self, event: Event) -> None:
        await self.websocket.send(json.dumps(event))


@asynccontextmanager
async def sdk_client(server: LocalServer, api_key: str = "x") -> AsyncIterator[SdkClient]:
    client = AsyncOpenAI(api_key=api_key, base_url=server.base_url)
    async with client.realtime.connect(model="gpt-realtime") as connection:
        yield SdkClient(connection)


@asynccontextmanager
async def raw_client(server: LocalServer, **kwargs: Any) -> AsyncIterator[RawClient]:
    async with connect(
        server.ws_url + "?model=gpt-realtime", max_size=None, compression=None, **kwargs
    ) as websocket:
        yield RawClient(websocket)

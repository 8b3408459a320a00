"""The local server against hostile clients and web pages, over real sockets (issue 11).

Regression tests for what an attacker on loopback broke: a client that never reads grew the
server without limit (1), a frame of millions of values froze every session (2), any web page
could drive the keyless server and a few idle sockets locked everyone out (6), and a malformed
``Authorization`` header put the key in the log (7).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtalk.server import LocalServer, app
from realtalk.server.app import scrub_secrets
from realtalk.server.limits import Limits
from tests.conftest import make_engines

MiB = 1024 * 1024


@asynccontextmanager
async def scripted(**options: Any) -> AsyncIterator[LocalServer]:
    async with LocalServer(engines=make_engines(), **options) as server:
        yield server


class RawSocket:
    """A WebSocket client written by hand, so it can do what real clients never do: not read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, headers: dict[str, str] | None = None) -> RawSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel buffers little
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /v1/realtime?model=gpt-realtime HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    @staticmethod
    def frame(opcode: int, payload: bytes) -> bytes:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 4096 else None
        if masked is None:  # large payloads: mask with an all-zero key (allowed, and fast)
            mask, masked = b"\0\0\0\0", payload
        return head + mask + masked

    def send(self, event: dict[str, Any]) -> None:
        self.writer.write(self.frame(0x1, json.dumps(event).encode()))

    def close(self) -> None:
        self.writer.close()


async def _until(condition: Any, timeout: float = 30.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_client_that_never_reads_is_closed_and_its_queue_let_go() -> None:
    limits = Limits(max_queued_bytes=2 * MiB)
    async with scripted(limits=limits) as server:
        raw = await RawSocket.open(server.port)
        audio = base64.b64encode(bytes(1 * MiB)).decode()
        item = {"id": "item_big", "type": "message", "role": "user"}
        raw.send(
            {
                "type": "conversation.item.create",
                "item": {**item, "content": [{"type": "input_audio", "audio": audio}]},
            }
        )
        for _ in range(60):  # 60 x 1.3 MB of retrieved item, never read
            raw.send({"type": "conversation.item.retrieve", "item_id": "item_big"})
        await raw.writer.drain()
        assert await _until(lambda: not server._per_client), "the connection was kept open"
        assert server.queued_bytes == 0
        raw.close()
        async with connect(server.ws_url) as ws:  # the server serves others as before
            assert json.loads(await ws.recv())["type"] == "session.created"


@pytest.mark.parametrize("guard", ["rate", "write buffer"])
async def test_a_ping_flood_whose_pongs_are_never_read_is_cut_off(
    guard: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if guard == "write buffer":  # the rate limit off: the pongs owed must be bounded alone
        monkeypatch.setattr(app, "CONTROL_FRAMES_BURST", 10**9)
        monkeypatch.setattr(app, "CONTROL_FRAMES_PER_S", 1e9)
    async with scripted(limits=Limits(max_queued_bytes=256 * 1024)) as server:
        raw = await RawSocket.open(server.port)
        pings = RawSocket.frame(0x9, b"p" * 125) * 2000
        try:
            for _ in range(100):  # up to 200,000 pings, 26 MB of pongs owed
                raw.writer.write(pings)
                await asyncio.wait_for(raw.writer.drain(), 30)
                if not server._per_client:
                    break
        except (ConnectionError, TimeoutError):
            pass
        assert await _until(lambda: not server._per_client), "the flood was served forever"
        raw.close()


async def test_a_frame_of_a_million_values_is_refused_before_parsing() -> None:
    async with scripted() as server, connect(server.ws_url, max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        zeros = ",".join(["0"] * 1_000_000)
        frame = f'{{"type":"session.update","event_id":"big","session":{{"tools":[{zeros}]}}}}'
        await ws.send(frame)
        error = json.loads(await asyncio.wait_for(ws.recv(), 30))["error"]
        assert error["code"] == "invalid_event" and "JSON values" in error["message"]
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "session.updated"


async def test_a_large_append_still_works_through_the_lifted_parse() -> None:
    async with scripted() as server, connect(server.ws_url, max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        off = {"type": "session.update", "session": {"type": "realtime"}}
        off["session"]["audio"] = {"input": {"turn_detection": None}}
        await ws.send(json.dumps(off))
        assert json.loads(await ws.recv())["type"] == "session.updated"
        pcm = bytes(range(256)) * (4 * MiB // 256)  # 87 s of 24 kHz audio in one frame
        append = {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
        await ws.send(json.dumps(append))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        committed = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert committed["type"] == "input_audio_buffer.committed", committed
        retrieve = {"type": "conversation.item.retrieve", "item_id": committed["item_id"]}
        await ws.send(json.dumps(retrieve))
        while (event := json.loads(await asyncio.wait_for(ws.recv(), 30)))["type"] != (
            "conversation.item.retrieved"
        ):
            pass
        assert base64.b64decode(event["item"]["content"][0]["audio"]) == pcm


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Host": "evil.example:8765"},
        {"Host": "evil.example:8765", "Origin": "http://evil.example:8765"},
    ],
    ids=["foreign origin", "null origin", "foreign host (rebinding)", "rebinding page"],
)
async def test_the_keyless_server_refuses_other_sites(headers: dict[str, str]) -> None:
    async with scripted() as server:
        status, body = await _handshake(server.port, headers)
        assert status == 403 and b"forbidden" in body
        status, _ = await _handshake(server.port, {"Origin": "http://localhost:3000"})
        assert status == 101


async def _handshake(port: int, headers: dict[str, str]) -> tuple[int, bytes]:
    """The status (and body) of a WebSocket upgrade request sent with these headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    fields = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **headers,
    }
    request = "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\n"
    request += "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    writer.write(request.encode("latin-1"))
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        body = b"" if head.startswith(b"HTTP/1.1 101") else await reader.read(65536)
    finally:
        writer.close()
    return int(head.split()[1]), body


async def test_an_allowed_host_and_a_key_open_the_server_up() -> None:
    foreign = {"Origin": "https://app.example"}
    async with (
        scripted(allowed_hosts=["app.example"]) as server,
        connect(server.ws_url, additional_headers=foreign) as ws,
    ):
        assert json.loads(await ws.recv())["type"] == "session.created"
    async with scripted(api_key="k-123") as server:
        headers = {**foreign, "Authorization": "Bearer k-123"}
        async with connect(server.ws_url, additional_headers=headers) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"


async def test_an_idle_connection_is_closed_and_frees_its_slot() -> None:
    limits = Limits(idle_timeout_s=1.0, max_connections=2, max_connections_per_client=2)
    async with scripted(limits=limits) as server:
        async with connect(server.ws_url) as a, connect(server.ws_url) as b:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(server.ws_url):
                    pass
            assert refused.value.response.status_code in (429, 503)
            for ws in (a, b):
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), 30)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        async with connect(server.ws_url) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"


async def test_a_process_wide_cap_below_the_per_client_one() -> None:
    limits = Limits(max_connections=1, max_connections_per_client=1)
    async with scripted(limits=limits) as server, connect(server.ws_url):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws_url):
                pass
        assert refused.value.response.status_code in (429, 503)


KEY = "sk-test-Zq8v3LrT0p9"


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", f"Basic {KEY}")],
        [("Authorization", f"Bearer{KEY}")],
        [("Authorization", f"Bearer  {KEY} extra")],
        [("Authorization", f"Bearer {KEY}"), ("Authorization", "Bearer other")],
        [("api-key", f"{KEY}x")],
        [("Sec-WebSocket-Protocol", f"realtime, openai-insecure-api-key.{KEY}, x y")],
        [("X-Api-Key", KEY)],
        [("Authorization", f"Bearer {KEY}\x7f")],
    ],
    ids=["basic", "no space", "extra", "twice", "near miss", "bad subprotocol", "other", "ctl"],
)
async def test_no_malformed_key_header_reaches_any_log_line(
    headers: list[tuple[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with scripted(api_key=KEY) as server:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            lines = [
                "GET /v1/realtime?model=gpt-realtime HTTP/1.1",
                f"Host: 127.0.0.1:{server.port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
                "Sec-WebSocket-Version: 13",
                *(f"{k}: {v}" for k, v in headers),
            ]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await asyncio.wait_for(reader.read(65536), 15)
            writer.close()
        except (ConnectionError, TimeoutError):
            pass
        await asyncio.sleep(0.2)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    text = "\n".join(handler.format(r) for r in caplog.records)
    assert caplog.records, "nothing was logged at DEBUG: the test would prove nothing"
    assert KEY not in text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], text  # 401, not 500


def test_scrubbing_covers_the_shapes_a_key_is_written_in() -> None:
    for line in (
        f"Authorization: Bearer {KEY}",
        f"InvalidHeaderValue('Authorization', 'Basic {KEY}')",
        f"api-key: {KEY}",
        f"openai-insecure-api-key.{KEY}",
    ):
        assert KEY not in scrub_secrets(line), line


async def test_a_handshake_that_never_finishes_is_dropped() -> None:
    async with scripted(limits=Limits(handshake_timeout_s=1.0)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /v1/realtime HTTP/1.1\r\n")  # and nothing more, ever
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 30) == b""  # closed by the server
        writer.close()

"""Handshake, auth, health, session expiry and G.711 both ways, over real sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from realtalk.media.g711 import alaw_decode, ulaw_encode
from realtalk.media.resample import resample_oneshot
from realtalk.protocol import events as ev
from realtalk.server import LocalServer
from tests.conftest import make_engines
from tests.integration.server.conftest import RawClient, sdk_client

KEY = "sk-local-test-key"


@pytest.fixture
async def keyed_server() -> AsyncIterator[LocalServer]:
    async with LocalServer(port=0, api_key=KEY, engines=make_engines()) as server:
        yield server


async def expect_session(websocket: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await websocket.recv())
    assert event["type"] == "session.created"
    return event


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}"},
        {"api-key": KEY},
        {"Authorization": "Bearer wrong", "api-key": KEY},  # Azure-style clients send both
    ],
    ids=["bearer", "api-key", "bearer-and-api-key"],
)
async def test_accepted_key_headers(keyed_server: LocalServer, headers: dict[str, str]) -> None:
    async with connect(
        keyed_server.ws_url + "?model=gpt-realtime", additional_headers=headers
    ) as ws:
        await expect_session(ws)


async def test_key_in_a_browser_subprotocol_and_realtime_is_echoed(
    keyed_server: LocalServer,
) -> None:
    async with connect(
        keyed_server.ws_url + "?model=gpt-realtime",
        subprotocols=[Subprotocol("realtime"), Subprotocol(f"openai-insecure-api-key.{KEY}")],
    ) as ws:
        assert ws.subprotocol == "realtime"
        await expect_session(ws)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"api-key": KEY + "x"}],
    ids=["none", "wrong", "near"],
)
async def test_missing_or_wrong_key_is_refused_before_the_upgrade(
    keyed_server: LocalServer, headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(keyed_server.ws_url + "?model=gpt-realtime", additional_headers=headers):
            pass
    response = refused.value.response
    assert response.status_code == 401
    body = json.loads(response.body)
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["type"] == "invalid_request_error"
    assert KEY not in response.body.decode()


async def test_the_sdk_with_the_right_key(keyed_server: LocalServer) -> None:
    async with sdk_client(keyed_server, api_key=KEY) as client:
        assert (await client.recv())["type"] == "session.created"


async def test_the_sdk_with_a_wrong_key_gets_401(keyed_server: LocalServer) -> None:
    client = AsyncOpenAI(api_key="wrong", base_url=keyed_server.base_url)
    with pytest.raises(Exception, match="401"):
        async with client.realtime.connect(model="gpt-realtime"):
            pass


async def test_azure_path_and_deployment_query(scripted_server: LocalServer) -> None:
    url = f"ws://127.0.0.1:{scripted_server.port}/openai/v1/realtime?deployment=my-dep"
    async with connect(url) as ws:
        assert (await expect_session(ws))["session"]["model"] == "my-dep"


async def test_health_and_unknown_paths(scripted_server: LocalServer) -> None:
    def get(path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{scripted_server.port}{path}") as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, body = await asyncio.to_thread(get, "/healthz")
    assert (status, body) == (200, {"status": "ok", "engines": "scripted"})
    status, body = await asyncio.to_thread(get, "/v2/nothing")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_session_expires_with_an_error_then_close_1001() -> None:
    server = LocalServer(port=0, engines=make_engines(), session_max_seconds=1)
    async with server, connect(server.ws_url + "?model=gpt-realtime") as ws:
        client = RawClient(ws)
        created = await client.recv()
        assert abs(created["session"]["expires_at"] - time.time()) <= 2
        error = await client.until("error", timeout=10)
        assert error["error"]["code"] == "session_expired"
        assert error["error"]["message"] == "Your session hit the maximum duration of 1 second."
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1001
        assert ws.close_reason == error["error"]["message"]


async def test_g711_both_ways(
    scripted_server: LocalServer, speech_pcm24k: Callable[[str], bytes]
) -> None:
    speech = np.frombuffer(speech_pcm24k("Hello, how are you today?") + bytes(48_000), dtype="<i2")
    ulaw = ulaw_encode(resample_oneshot(speech, 24000, 8000).astype(np.int16))
    async with sdk_client(scripted_server) as client:
        await client.send(
            ev.session_update(
                {
                    "audio": {
                        "input": {"format": {"type": "audio/pcmu"}},
                        "output": {"format": {"type": "audio/pcma"}},
                    }
                }
            )
        )
        updated = await client.until("session.updated")
        assert updated["session"]["audio"]["output"]["format"] == {"type": "audio/pcma"}
        for i in range(0, len(ulaw), 800):  # 100 ms of µ-law a chunk
            await client.send(
                ev.input_audio_buffer_append(base64.b64encode(ulaw[i : i + 800]).decode())
            )
        done = await client.until("response.done")
        assert done["response"]["audio"]["output"]["format"] == {"type": "audio/pcma"}
        alaw = b"".join(
            base64.b64decode(e["delta"]) for e in client.of("response.output_audio.delta")
        )
        words = len(done["response"]["output"][0]["content"][0]["transcript"].split())
        assert len(alaw) == words * 250 * 8  # 8 kHz, one byte a sample, 250 ms a word
        pcm = np.frombuffer(alaw_decode(alaw), dtype="<i2")
        assert np.abs(pcm).max() > 3000  # real tone bursts, not silence or noise


async def test_keys_never_reach_the_log_even_at_debug(
    keyed_server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    offers: list[dict[str, Any]] = [
        {"additional_headers": {"Authorization": f"Bearer {KEY}"}},
        {"additional_headers": {"api-key": KEY}},
        {"subprotocols": [Subprotocol("realtime"), Subprotocol(f"openai-insecure-api-key.{KEY}")]},
    ]
    for offer in offers:
        async with connect(keyed_server.ws_url + "?model=gpt-realtime", **offer) as ws:
            await expect_session(ws)
    server_lines = [r.getMessage() for r in caplog.records if r.name.startswith("realtalk")]
    assert any("Authorization" in line for line in server_lines)  # headers were logged...
    assert not any(KEY in line for line in server_lines)  # ...but never the key

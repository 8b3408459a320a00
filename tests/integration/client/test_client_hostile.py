"""The driver against hostile servers over real sockets (127.0.0.1, ephemeral ports): a server
that confirms the session and drops at once, and DEBUG logging of the handshake."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig, ReconnectPolicy
from realtalk.protocol import events
from realtalk.server import LocalServer
from tests.conftest import make_engines

TIMEOUT_S = 20.0


async def test_a_server_that_confirms_then_closes_is_given_up_after_max_attempts() -> None:
    """Regression: 466 reconnects in 20 s with max_attempts=4 (the count reset on every
    successful connect). Now the attempts run out and the error is fatal."""
    connections = 0

    async def flapping(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        update = json.loads(await ws.recv())
        await ws.send(json.dumps(events.session_updated(f"e{connections}", update["session"])))
        await ws.close()

    async with serve(flapping, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        policy = ReconnectPolicy(max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05)
        model = OpenAIRealtime(
            model="gpt-realtime",
            base_url=f"http://127.0.0.1:{port}/v1",
            config=OpenAIRealtimeConfig(reconnect=policy),
        )
        closed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        errors: list[Any] = []
        model.on("error", errors.append)
        model.on("closed", lambda payload: closed.done() or closed.set_result(payload))
        await model.connect()
        await asyncio.wait_for(closed, TIMEOUT_S)
        await model.aclose()
    assert connections == 1 + 4  # the first connect and four attempts, not hundreds
    assert errors[-1].fatal and errors[-1].code == "connection_lost"


async def test_debug_logging_never_shows_the_key(caplog: pytest.LogCaptureFixture) -> None:
    """Regression: with DEBUG logging, websockets' handshake lines showed the bearer token."""
    key = "sk-local-0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    async with LocalServer(port=0, engines=make_engines(), api_key=key) as server:
        model = OpenAIRealtime(model="gpt-realtime", api_key=key, base_url=server.base_url)
        await model.connect()
        await model.aclose()
    handshake = [r for r in caplog.records if r.name.startswith("websockets.client")]
    assert any("Authorization" in r.getMessage() for r in handshake)  # the line is there...
    assert key not in caplog.text  # ...without the key
    assert all(key not in r.getMessage() for r in caplog.records)


async def test_a_response_that_never_ends_does_not_wedge_later_messages() -> None:
    """Regression: a ``response.created`` (no metadata echoed) with no ``response.done``
    wedged every later send_text_message (waited 30 s, no error). The watchdog reports it and
    the next request goes out."""
    creates: list[dict[str, Any]] = []
    got_second = asyncio.Event()

    async def stalling(ws: ServerConnection) -> None:
        async for raw in ws:
            event = json.loads(raw)
            if event["type"] == "session.update":
                await ws.send(json.dumps(events.session_updated("e0", event["session"])))
            elif event["type"] == "response.create":
                creates.append(event)
                response = {"id": f"resp_{len(creates)}", "object": "realtime.response"}
                response["status"] = "in_progress"
                await ws.send(json.dumps(events.response_created(f"e{len(creates)}", response)))
                if len(creates) == 2:
                    got_second.set()

    async with serve(stalling, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        model = OpenAIRealtime(
            model="gpt-realtime",
            base_url=f"http://127.0.0.1:{port}/v1",
            config=OpenAIRealtimeConfig(response_timeout_s=0.5),
        )
        errors: list[Any] = []
        model.on("error", errors.append)
        await model.connect()
        try:
            await model.send_text_message("first")
            await model.send_text_message("second")
            await asyncio.wait_for(got_second.wait(), TIMEOUT_S)
        finally:
            await model.aclose()
    assert any(e.code == "response_timeout" and not e.fatal for e in errors)
    assert [c["response"]["metadata"]["kind"] for c in creates] == ["reply", "reply"]

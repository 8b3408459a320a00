"""Connecting: the first session.update is confirmed; a refused key is fatal at once; an
unreachable server is a clear connection error."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from realtalk.errors import ConnectionLostError, FatalServerError
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.server import LocalServer
from tests.conftest import make_engines


def collect(model: OpenAIRealtime, *names: str) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {name: [] for name in names}
    for name in names:
        model.on(name, lambda payload, _n=name: seen[_n].append(payload))
    return seen


async def test_connect_waits_for_the_confirmed_session() -> None:
    async with LocalServer(port=0, engines=make_engines(), api_key="sk-local") as server:
        config = OpenAIRealtimeConfig(voice="marin", turn_detection={"threshold": 0.6})
        model = OpenAIRealtime(
            model="gpt-realtime", api_key="sk-local", base_url=server.base_url, config=config
        )
        await model.connect()
        try:
            settings = model.session_settings
            assert settings["audio"]["output"]["voice"] == "marin"
            assert settings["audio"]["input"]["turn_detection"]["threshold"] == 0.6
            assert model.connected
        finally:
            await model.aclose()
        assert not model.connected


async def test_a_refused_key_is_fatal_and_never_retried() -> None:
    async with LocalServer(port=0, engines=make_engines(), api_key="sk-right") as server:
        model = OpenAIRealtime(model="gpt-realtime", api_key="sk-wrong", base_url=server.base_url)
        seen = collect(model, "error", "reconnecting")
        with pytest.raises(FatalServerError, match="refused the credentials"):
            await model.connect()
        (error,) = seen["error"]
        assert error.fatal and error.code
        assert seen["reconnecting"] == []
        await asyncio.sleep(0.1)
        assert seen["reconnecting"] == []
        await model.aclose()


async def test_an_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = OpenAIRealtime(model="gpt-realtime", base_url=f"http://127.0.0.1:{port}/v1")
    seen = collect(model, "reconnecting")
    with pytest.raises(ConnectionLostError, match=f"127.0.0.1:{port}/v1/realtime"):
        await model.connect()
    await asyncio.sleep(0.1)
    assert seen["reconnecting"] == []
    await model.aclose()

"""Security limits of the local server: API keys, message size, connections per client, binding.

A key must never be echoed: we capture every log record at DEBUG (every logger) and every event
a client receives, and grep them for the key.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtalk.server import LocalServer
from tests.conftest import make_engines
from tests.reliability.conftest import Ledger

AREA = "security"
KEY = "sk-reliability-SECRET-7f3a9c"


@pytest.fixture
async def keyed_server() -> AsyncIterator[LocalServer]:
    async with LocalServer(
        port=0,
        api_key=KEY,
        engines=make_engines(),
        partial_transcripts=False,
        max_message_bytes=64 * 1024,
        max_connections_per_client=3,
    ) as server:
        yield server


async def _session(
    server: LocalServer, *, headers: dict[str, str] | None = None, subprotocols: list[str] | None
) -> ClientConnection:
    ws = await connect(
        server.ws_url,
        additional_headers=headers,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        max_size=None,
    )
    first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert first["type"] == "session.created"
    return ws


@pytest.mark.parametrize(
    ("headers", "subprotocols"),
    [
        pytest.param(None, None, id="no-key"),
        pytest.param({"Authorization": "Bearer wrong"}, None, id="wrong-bearer"),
        pytest.param({"Authorization": f"Bearer {KEY}x"}, None, id="key-plus-one"),
        pytest.param({"Authorization": f"Bearer {KEY[:-1]}"}, None, id="key-minus-one"),
        pytest.param({"api-key": ""}, None, id="empty-api-key"),
        pytest.param(None, ["realtime", "openai-insecure-api-key.nope"], id="wrong-subprotocol"),
        pytest.param({"Authorization": KEY}, None, id="key-without-bearer"),
    ],
)
async def test_missing_or_wrong_keys_are_refused(
    keyed_server: LocalServer,
    ledger: Ledger,
    headers: dict[str, str] | None,
    subprotocols: list[str] | None,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await _session(keyed_server, headers=headers, subprotocols=subprotocols)
    assert refused.value.response.status_code == 401
    body = json.loads(refused.value.response.body or b"{}")
    assert body["error"]["code"] == "invalid_api_key"
    assert KEY not in (refused.value.response.body or b"").decode()
    ledger.record(AREA, "missing or wrong API key refused (401)")


@pytest.mark.parametrize(
    ("headers", "subprotocols"),
    [
        pytest.param({"Authorization": f"Bearer {KEY}"}, None, id="bearer"),
        pytest.param({"api-key": KEY}, None, id="api-key-header"),
        pytest.param(None, ["realtime", f"openai-insecure-api-key.{KEY}"], id="subprotocol"),
    ],
)
async def test_the_right_key_is_accepted(
    keyed_server: LocalServer,
    headers: dict[str, str] | None,
    subprotocols: list[str] | None,
) -> None:
    ws = await _session(keyed_server, headers=headers, subprotocols=subprotocols)
    await ws.close()


NEAR_MISSES = [f"{KEY}x", KEY[:-1]]


async def _exercise(server: LocalServer) -> list[str]:
    """Refused attempts with near-miss keys, then a full reply and an error with the key;
    returns every frame the client received."""
    for wrong in NEAR_MISSES:
        with pytest.raises(InvalidStatus):
            await _session(server, headers={"Authorization": f"Bearer {wrong}"}, subprotocols=None)
    ws = await _session(server, headers={"Authorization": f"Bearer {KEY}"}, subprotocols=None)
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
    await ws.send(json.dumps({"type": "response.create"}))
    await ws.send(json.dumps({"type": "bogus", "event_id": "bad-1"}))
    received: list[str] = []
    async with asyncio.timeout(10):
        while True:
            text = await ws.recv()
            assert isinstance(text, str)
            received.append(text)
            if json.loads(text)["type"] == "response.done":
                break
    await ws.close()
    assert any('"error"' in r for r in received)
    return received


def _grep(records: list[logging.LogRecord], received: list[str]) -> list[str]:
    """Where a key or a near-miss key shows up, in our own loggers' records or in events.
    (``websockets.client`` is this test's raw client, not realtalk code.)"""
    ours = [r for r in records if r.name.startswith("realtalk")]
    assert ours, "nothing was logged: the grep would prove nothing"
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in ours)
    found = [s for s in (KEY, *NEAR_MISSES) if s in text]
    found += [f"event: {s}" for s in (KEY, *NEAR_MISSES) if any(s in r for r in received)]
    return found


async def test_keys_never_appear_in_info_logs_or_events(
    keyed_server: LocalServer, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    received = await _exercise(keyed_server)
    assert _grep(caplog.records, received) == []
    ledger.record(AREA, "API key grepped in INFO logs and events", tries=len(caplog.records))


async def test_keys_never_appear_in_debug_logs(
    keyed_server: LocalServer, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """websockets logs every handshake header at DEBUG; the server redacts the key there
    (it leaked until d6440b6)."""
    caplog.set_level(logging.DEBUG)
    received = await _exercise(keyed_server)
    leaks = _grep(caplog.records, received)
    ledger.record(
        AREA,
        "API key grepped in DEBUG logs",
        survived=0 if leaks else 1,
        lost="key in realtalk.server.websockets DEBUG lines" if leaks else None,
    )
    assert leaks == []


async def test_oversized_messages_close_only_that_connection(
    keyed_server: LocalServer, ledger: Ledger
) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    ws = await _session(keyed_server, headers=auth, subprotocols=None)
    big = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (100 * 1024)})
    await ws.send(big)
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
    other = await _session(keyed_server, headers=auth, subprotocols=None)  # the server lives on
    await other.close()
    ledger.record(AREA, "message over the size limit (closed 1009, server lives)")


async def test_connections_per_client_are_limited(
    keyed_server: LocalServer, ledger: Ledger
) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    open_ones = [await _session(keyed_server, headers=auth, subprotocols=None) for _ in range(3)]
    with pytest.raises(InvalidStatus) as refused:
        await _session(keyed_server, headers=auth, subprotocols=None)
    assert refused.value.response.status_code == 429
    await open_ones.pop().close()
    for _ in range(50):  # the server counts the close asynchronously
        try:
            again = await _session(keyed_server, headers=auth, subprotocols=None)
            break
        except InvalidStatus:
            await asyncio.sleep(0.05)
    else:
        pytest.fail("a slot freed by closing a connection was never given back")
    for ws in [*open_ones, again]:
        await ws.close()
    ledger.record(AREA, "connections per client over the limit (429)")


def test_servers_bind_to_loopback_by_default(ledger: Ledger) -> None:
    """`realtalk serve`, LocalServer and the web runner listen on 127.0.0.1 unless told."""
    import argparse

    from realtalk.server import cli as serve_cli

    assert inspect.signature(LocalServer).parameters["host"].default == "127.0.0.1"
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    assert parser.parse_args([]).host == "127.0.0.1"
    from realtalk import runner
    from realtalk.transports import webrtc

    assert inspect.signature(webrtc.WebRTCServer).parameters["host"].default == "127.0.0.1"
    run_parser = argparse.ArgumentParser()
    runner.add_arguments(run_parser)
    assert run_parser.parse_args(["agent.py"]).host == "127.0.0.1"
    ledger.record(AREA, "default bind address is loopback", tries=4)


async def test_the_web_runner_warns_when_bound_beyond_localhost(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """Bound to another address (127.0.0.2 here: still loopback, never a real interface), it
    says why that is risky and where the safe way is written down."""
    from realtalk.transports.webrtc import WebRTCServer

    async def nothing(ctx: object) -> None:
        return None

    caplog.set_level(logging.WARNING, logger="realtalk.transport")
    server = WebRTCServer(nothing, "127.0.0.2", 0)
    try:
        await server.start()
    except OSError:
        pytest.skip("127.0.0.2 is not routable on this machine")
    await server.aclose()
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "anyone who reaches this port" in text and "exposing it safely" in text
    ledger.record(AREA, "web runner bound beyond localhost warns and points to the safe way")

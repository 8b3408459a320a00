"""The local server under arbitrary and mutated client frames, over a real WebSocket.

For every frame the oracle knows whether it is acceptable (a JSON object that
``validate_client_event`` accepts). After each frame we send a probe that always fails
(``conversation.item.retrieve`` of an unknown item, with a unique ``event_id``); the server
handles frames in order, so everything before the probe's answer is the answer to the frame.
Properties:

- a bad frame is answered with an ``error`` event, never with silence or a closed socket;
- no frame, good or bad, makes the server fail internally (``server_error``);
- the connection stays usable: the probe is always answered, and the session still works.
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
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from realtalk.protocol import validate_client_event
from realtalk.server import LocalServer
from tests.conftest import make_engines
from tests.reliability.conftest import Ledger
from tests.reliability.corpus import (
    CLIENT_EVENTS,
    JSON_VALUES,
    byte_mutations,
    mutated_events,
)

AREA = "local server, bad client input"
ANSWER_TIMEOUT_S = 10.0

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

Frame = str | bytes

_MUTATED = mutated_events(CLIENT_EVENTS)
FRAMES: st.SearchStrategy[Frame] = st.one_of(
    st.text(max_size=100),
    st.binary(max_size=100),
    JSON_VALUES.map(json.dumps),
    _MUTATED.map(json.dumps),
    _MUTATED.map(json.dumps),  # twice: the richest source
    byte_mutations(CLIENT_EVENTS),
)


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    async with LocalServer(port=0, engines=make_engines(), partial_transcripts=False) as srv:
        yield srv


async def _open(server: LocalServer) -> ClientConnection:
    ws = await connect(server.ws_url + "?model=gpt-realtime", max_size=None)
    first = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT_S))
    assert first["type"] == "session.created"
    return ws


def acceptable(frame: Frame) -> bool:
    """The oracle: would a correct server accept this frame as a well-formed event?"""
    try:
        event = json.loads(frame)
    except (ValueError, RecursionError):
        return False
    return validate_client_event(event) is None


async def exchange(ws: ClientConnection, frame: Frame, probe: int) -> list[dict[str, Any]]:
    """Send ``frame`` then a probe; return the events that came back before the probe's error."""
    probe_id = f"probe-{probe}"
    await ws.send(frame)
    await ws.send(
        json.dumps(
            {"type": "conversation.item.retrieve", "event_id": probe_id, "item_id": "no-such"}
        )
    )
    answers: list[dict[str, Any]] = []
    async with asyncio.timeout(ANSWER_TIMEOUT_S):
        while True:
            event = json.loads(await ws.recv())
            if event["type"] == "error" and event["error"].get("event_id") == probe_id:
                return answers
            answers.append(event)


def check_answers(frame: Frame, answers: list[dict[str, Any]]) -> None:
    errors = [a["error"] for a in answers if a["type"] == "error"]
    internal = [e for e in errors if e.get("code") == "server_error" or e["type"] == "server_error"]
    assert not internal, f"the server failed on {frame!r}: {internal}"
    if not acceptable(frame):
        assert errors, f"no error event for the bad frame {frame!r}; got {answers}"


@FUZZ
@given(frames=st.lists(FRAMES, min_size=1, max_size=6))
async def test_bad_frames_get_errors_and_the_connection_lives(
    server: LocalServer, ledger: Ledger, frames: list[Frame]
) -> None:
    ws = await _open(server)
    try:
        for i, frame in enumerate(frames):
            try:
                answers = await exchange(ws, frame, i)
            except ConnectionClosed as exc:
                ledger.record(AREA, "random/mutated frames", survived=0, lost="connection")
                pytest.fail(f"the server closed the connection ({exc}) after {frame!r}")
            check_answers(frame, answers)
            ledger.record(AREA, "random/mutated frames")
    finally:
        await ws.close()


async def test_a_thousand_bad_frames_on_one_connection(server: LocalServer, ledger: Ledger) -> None:
    """One connection, many bad frames in a row: the session still answers normally after."""
    ws = await _open(server)
    bad: list[Frame] = [
        "",
        "{",
        "null",
        "[]",
        '{"type": 1}',
        '{"type": "response.create", "response": 7}',
        '{"type": "input_audio_buffer.append", "audio": "%%%"}',
        '{"type": "session.update", "session": {"type": "realtime", "voice": {}}}',
        b"\x00\xff",
        '{"type": "conversation.item.truncate", "item_id": "x", "content_index": -1}',
    ]
    for i in range(1000):
        frame = bad[i % len(bad)]
        answers = await exchange(ws, frame, i)
        check_answers(frame, answers)
    ledger.record(AREA, "1,000 bad frames on one connection", tries=1000)
    await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
    event = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT_S))
    assert event["type"] == "session.updated"
    await ws.close()


def _deep_parameters(depth: int) -> str:
    params: dict[str, Any] = {}
    node = params
    for _ in range(depth):
        node["properties"] = {}
        node = node["properties"]
    tool = {"type": "function", "name": "f", "parameters": params}
    return json.dumps({"type": "session.update", "session": {"type": "realtime", "tools": [tool]}})


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("[" * 100_000, id="bare-100k"),
        pytest.param(
            '{"type": "response.create", "response": ' + "[" * 5000 + "}",
            id="in-a-field-5k",
        ),
        pytest.param(_deep_parameters(200), id="tool-schema-200"),
        pytest.param(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {"type": "message", "role": [], "content": []},
                }
            ),
            id="list-role",
        ),
        pytest.param(_deep_parameters(500), id="tool-schema-500"),
    ],
)
async def test_frames_that_broke_the_server(
    server: LocalServer, ledger: Ledger, frame: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Frames that broke the server once (fuzzing found them; fixed in 9978327): JSON nested
    deeper than the recursion limit or deep enough to break a copy, a role that is a list."""
    caplog.set_level(logging.CRITICAL, logger="realtalk.server")
    ws = await _open(server)
    try:
        answers = await exchange(ws, frame, 0)
        check_answers(frame, answers)
    except (ConnectionClosed, AssertionError):
        ledger.record(AREA, "frames fuzzing found", survived=0, lost="connection or server_error")
        raise
    ledger.record(AREA, "frames fuzzing found")
    await ws.close()

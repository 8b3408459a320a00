"""Bad input gets an OpenAI-shaped error and the session keeps serving."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from realtalk.protocol import events as ev
from realtalk.server import LocalServer
from tests.integration.server.conftest import RawClient, raw_client

FIFTEEN_MIB = 15 * 1024 * 1024


def _nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["properties"] = {}
        node = node["properties"]
    return root


DEEP_500 = _nested(500)

# (frame, code, param, client event_id echoed)
CASES: list[tuple[str, str | bytes, str, str | None, str | None]] = [
    ("malformed json", '{"type": "session.update", ', "invalid_json", None, None),
    ("not an object", "[1, 2, 3]", "invalid_event", None, None),
    ("missing type", json.dumps({"event_id": "e1"}), "invalid_event", "type", "e1"),
    (
        "unknown type",
        json.dumps({"type": "response.audio.delta", "event_id": "e2"}),
        "invalid_event",
        "type",
        "e2",
    ),
    (
        "wrong field type",
        json.dumps({"type": "conversation.item.delete", "item_id": 5, "event_id": "e3"}),
        "invalid_type",
        "item_id",
        "e3",
    ),
    (
        "missing field",
        json.dumps({"type": "conversation.item.truncate", "item_id": "x", "event_id": "e4"}),
        "missing_required_parameter",
        "content_index",
        "e4",
    ),
    (
        "unknown field",
        json.dumps({"type": "input_audio_buffer.clear", "bogus": 1, "event_id": "e5"}),
        "unknown_parameter",
        "bogus",
        "e5",
    ),
    (
        "beta session field",
        json.dumps(
            {
                "type": "session.update",
                "event_id": "e6",
                "session": {"type": "realtime", "modalities": ["text"]},
            }
        ),
        "unknown_parameter",
        "session.modalities",
        "e6",
    ),
    (
        "non-base64 audio",
        json.dumps({"type": "input_audio_buffer.append", "audio": "not base64!", "event_id": "e7"}),
        "invalid_value",
        "audio",
        "e7",
    ),
    (
        "audio over 15 MiB",
        json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(bytes(FIFTEEN_MIB + 3)).decode(),
                "event_id": "e8",
            }
        ),
        "invalid_value",
        "audio",
        "e8",
    ),
    (
        "binary garbage",
        b"\x00\xff\x10 not utf-8",
        "invalid_json",
        None,
        None,
    ),
    ("nested past the recursion limit", "[" * 100_000, "invalid_json", None, None),
    (
        "a tool schema nested 500 deep",
        json.dumps(
            {
                "type": "session.update",
                "event_id": "deep",
                "session": {
                    "type": "realtime",
                    "tools": [{"type": "function", "name": "f", "parameters": DEEP_500}],
                },
            }
        ),
        "invalid_value",
        "session.tools[0].parameters" + ".properties" * 61,  # the first value at depth 65
        "deep",
    ),
    (
        "a role that is not a string",
        json.dumps(
            {
                "type": "conversation.item.create",
                "event_id": "role",
                "item": {"type": "message", "role": [], "content": []},
            }
        ),
        "invalid_value",
        "item.role",
        "role",
    ),
    (
        "commit with nothing buffered",
        json.dumps({"type": "input_audio_buffer.commit", "event_id": "e9"}),
        "input_audio_buffer_commit_empty",
        None,
        "e9",
    ),
    (
        "cancel with nothing active",
        json.dumps({"type": "response.cancel", "event_id": "e10"}),
        "response_cancel_not_active",
        None,
        "e10",
    ),
    (
        "truncate a missing item",
        json.dumps(ev.conversation_item_truncate("item_nope", 10, event_id="e11")),
        "item_truncate_invalid_item_id",
        "item_id",
        "e11",
    ),
    (
        "retrieve a missing item",
        json.dumps(ev.conversation_item_retrieve("item_nope", event_id="e12")),
        "item_retrieve_invalid_item_id",
        "item_id",
        "e12",
    ),
    (
        "insert after a missing item",
        json.dumps(
            ev.conversation_item_create(
                ev.user_text_item("x"), previous_item_id="item_nope", event_id="e13"
            )
        ),
        "invalid_value",
        "previous_item_id",
        "e13",
    ),
    (
        "assistant audio from a client",
        json.dumps(
            ev.conversation_item_create(
                ev.message_item("assistant", [{"type": "output_audio", "audio": "AAAA"}]),
                event_id="e14",
            )
        ),
        "invalid_value",
        "item.content[0].type",
        "e14",
    ),
]


async def served_after(client: RawClient) -> None:
    """A valid event right after the bad one is answered as usual."""
    await client.send(ev.conversation_item_create(ev.user_text_item("still here?")))
    added = await client.recv()
    assert added["type"] == "conversation.item.added", added
    assert (await client.recv())["type"] == "conversation.item.done"


@pytest.mark.parametrize(
    ("frame", "code", "param", "event_id"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_input_is_answered_with_an_error_and_the_session_goes_on(
    scripted_server: LocalServer,
    frame: str | bytes,
    code: str,
    param: str | None,
    event_id: str | None,
) -> None:
    async with raw_client(scripted_server) as client:
        assert (await client.recv())["type"] == "session.created"
        await client.send_raw(frame)
        error: dict[str, Any] = (await client.recv())["error"]
        assert error["type"] == "invalid_request_error"
        assert (error["code"], error["param"], error["event_id"]) == (code, param, event_id)
        assert error["message"]
        await served_after(client)


async def test_response_create_while_one_is_active(scripted_server: LocalServer) -> None:
    async with raw_client(scripted_server) as client:
        await client.recv()
        await client.send(ev.conversation_item_create(ev.user_text_item("Hi. How are you. Good.")))
        await client.send(ev.response_create())
        created = await client.until("response.created")
        await client.send(ev.response_create(event_id="dup"))
        error = (await client.until("error"))["error"]
        assert error["code"] == "conversation_already_has_active_response"
        assert created["response"]["id"] in error["message"]
        assert error["event_id"] == "dup"
        done = await client.until("response.done")
        assert done["response"]["status"] == "completed"
        await served_after(client)

"""Client-event validation: the error a server sends for each kind of bad input."""

from __future__ import annotations

import base64

import pytest

from realtalk.protocol import decode_audio, validate_client_event
from realtalk.protocol import events as ev
from realtalk.protocol.errors import ProtocolError
from tests.unit.protocol.test_events import CLIENT_EVENTS


@pytest.mark.parametrize("event", CLIENT_EVENTS, ids=lambda e: e["type"])
def test_what_we_build_is_what_we_accept(event: dict) -> None:
    assert validate_client_event(event) is None


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ([], "invalid_event", None),
        ({}, "invalid_event", "type"),
        ({"type": 7}, "invalid_type", "type"),
        ({"type": "response.audio.delta"}, "invalid_event", "type"),
        ({"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio"),
        ({"type": "input_audio_buffer.append", "audio": 5}, "invalid_type", "audio"),
        ({"type": "response.cancel", "extra": 1}, "unknown_parameter", "extra"),
        ({"type": "response.cancel", "event_id": 5}, "invalid_type", "event_id"),
        (
            {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0},
            "missing_required_parameter",
            "audio_end_ms",
        ),
        (
            {
                "type": "conversation.item.truncate",
                "item_id": "i",
                "content_index": 0,
                "audio_end_ms": -5,
            },
            "invalid_value",
            "audio_end_ms",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "robot", "content": []},
            },
            "invalid_value",
            "item.role",
        ),
        (
            ev.conversation_item_create(
                ev.message_item("assistant", [{"type": "output_audio", "audio": "AA"}])
            ),
            "invalid_value",
            "item.content[0].type",
        ),
        (
            ev.conversation_item_create(ev.message_item("user", [{"type": "input_text"}])),
            "missing_required_parameter",
            "item.content[0].text",
        ),
        (
            ev.conversation_item_create(
                ev.message_item("user", [{"type": "input_image", "image_url": "http://x/y.png"}])
            ),
            "invalid_value",
            "item.content[0].image_url",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "c"},
            },
            "missing_required_parameter",
            "item.output",
        ),
        (
            ev.response_create({"metadata": {"k": 5}}),
            "invalid_value",
            "response.metadata.k",
        ),
        (
            ev.response_create({"modalities": ["text"]}),
            "unknown_parameter",
            "response.modalities",
        ),
        (
            {"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}},
            "unknown_parameter",
            "session.voice",
        ),
    ],
)
def test_bad_events_get_openais_error(event: object, code: str, param: str | None) -> None:
    problem = validate_client_event(event)
    assert isinstance(problem, ProtocolError)
    assert (problem.code, problem.param) == (code, param)
    assert problem.type == "invalid_request_error"


def test_item_references_are_accepted_in_response_input() -> None:
    # The SDK types them only in its *_with_references params, not in the event union.
    event = ev.response_create({"input": [{"type": "item_reference", "id": "item_1"}]})
    assert validate_client_event(event) is None
    broken = ev.response_create({"input": [{"type": "item_reference"}]})
    problem = validate_client_event(broken)
    assert problem is not None and problem.param == "response.input[0].id"


def test_decode_audio() -> None:
    assert decode_audio(base64.b64encode(b"\x01\x02").decode()) == b"\x01\x02"
    bad = decode_audio("not base64!!")
    assert isinstance(bad, ProtocolError) and bad.param == "audio"
    huge = decode_audio("A" * (16 * 1024 * 1024 * 4 // 3))
    assert isinstance(huge, ProtocolError) and "15 MiB" in huge.message

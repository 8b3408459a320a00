"""Every builder in realtalk.protocol.events produces what the official SDK accepts, strictly."""

from __future__ import annotations

import json

import pytest

from realtalk.protocol import events as ev
from realtalk.protocol import parse_event
from realtalk.protocol.session import default_session
from tests.conformance import check_client_event, check_server_event

LOC = dict(response_id="resp_1", item_id="item_1", output_index=0, content_index=0)

CLIENT_EVENTS = [
    ev.session_update({"instructions": "hi", "output_modalities": ["audio"]}, event_id="e1"),
    ev.session_update(
        {
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": None,
                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                    "noise_reduction": {"type": "near_field"},
                },
                "output": {"format": {"type": "audio/pcma"}, "voice": "marin", "speed": 1.2},
            },
            "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {}}],
            "tool_choice": {"type": "function", "name": "f"},
            "max_output_tokens": 200,
        }
    ),
    ev.input_audio_buffer_append("AAAA"),
    ev.input_audio_buffer_commit(event_id="c"),
    ev.input_audio_buffer_clear(),
    ev.conversation_item_create(ev.user_text_item("hello"), previous_item_id="root"),
    ev.conversation_item_create(ev.assistant_text_item("earlier reply")),
    ev.conversation_item_create(ev.system_text_item("be brief")),
    ev.conversation_item_create(
        ev.message_item("user", [ev.input_image("data:image/jpeg;base64,AAAA", "low")])
    ),
    ev.conversation_item_create(ev.function_call_output_item("call_1", '{"ok": true}')),
    ev.conversation_item_create(ev.function_call_item(call_id="call_1", name="f", arguments="{}")),
    ev.conversation_item_retrieve("item_1"),
    ev.conversation_item_truncate("item_1", 1234),
    ev.conversation_item_delete("item_1"),
    ev.response_create(),
    ev.response_create(
        {
            "instructions": "say hi",
            "metadata": {"client_request_id": "r1"},
            "conversation": "none",
            "input": [ev.user_text_item("classify this")],
            "output_modalities": ["text"],
        }
    ),
    ev.response_cancel(),
    ev.response_cancel(response_id="resp_1"),
    ev.output_audio_buffer_clear(),
]


@pytest.mark.parametrize("event", CLIENT_EVENTS, ids=lambda e: e["type"])
def test_client_builders_match_the_sdk(event: dict) -> None:
    check_client_event(event)
    assert json.loads(json.dumps(event)) == event


def _server_events() -> list[dict]:
    session = {**default_session("gpt-realtime"), "id": "sess_1", "expires_at": 1}
    audio_item = ev.message_item(
        "assistant",
        [{"type": "output_audio", "transcript": "hi"}],
        item_id="item_1",
        status="completed",
        with_object=True,
    )
    response = {
        "id": "resp_1",
        "object": "realtime.response",
        "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": "turn_detected"},
        "output": [audio_item],
        "conversation_id": "conv_1",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
        "metadata": None,
        "usage": {
            "total_tokens": 30,
            "input_tokens": 20,
            "output_tokens": 10,
            "input_token_details": {
                "text_tokens": 10,
                "audio_tokens": 10,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": 2, "audio_tokens": 8},
        },
    }
    return [
        ev.error("e", message="bad", code="invalid_value", param="x", client_event_id="c1"),
        ev.session_created("e", session),
        ev.session_updated("e", session),
        ev.conversation_item_added("e", audio_item, None),
        ev.conversation_item_done("e", audio_item, "item_0"),
        ev.conversation_item_deleted("e", "item_1"),
        ev.conversation_item_retrieved("e", audio_item),
        ev.conversation_item_truncated("e", "item_1", 0, 500),
        ev.input_audio_transcription_delta("e", "item_1", "hel"),
        ev.input_audio_transcription_completed(
            "e", "item_1", "hello", usage={"type": "duration", "seconds": 1.5}
        ),
        ev.input_audio_transcription_failed("e", "item_1", message="no speech"),
        ev.speech_started("e", "item_2", 100),
        ev.speech_stopped("e", "item_2", 900),
        ev.input_audio_buffer_committed("e", "item_2", "item_1"),
        ev.input_audio_buffer_cleared("e"),
        ev.input_audio_buffer_timeout_triggered("e", "item_2", 0, 5000),
        ev.response_created("e", {**response, "status": "in_progress", "status_details": None}),
        ev.response_done("e", response),
        ev.response_output_item_added("e", "resp_1", 0, audio_item),
        ev.response_output_item_done("e", "resp_1", 0, audio_item),
        ev.response_content_part_added("e", part={"type": "audio", "transcript": ""}, **LOC),
        ev.response_content_part_done("e", part={"type": "text", "text": "hi"}, **LOC),
        ev.response_output_audio_delta("e", delta="AAAA", **LOC),
        ev.response_output_audio_done("e", **LOC),
        ev.response_output_audio_transcript_delta("e", delta="h", **LOC),
        ev.response_output_audio_transcript_done("e", transcript="hi", **LOC),
        ev.response_output_text_delta("e", delta="h", **LOC),
        ev.response_output_text_done("e", text="hi", **LOC),
        ev.response_function_call_arguments_delta("e", "resp_1", "item_1", 0, "call_1", "{"),
        ev.response_function_call_arguments_done("e", "resp_1", "item_1", 0, "call_1", "f", "{}"),
        ev.rate_limits_updated(
            "e", [{"name": "tokens", "limit": 1000, "remaining": 990, "reset_seconds": 1.0}]
        ),
    ]


@pytest.mark.parametrize("event", _server_events(), ids=lambda e: e["type"])
def test_server_builders_match_the_sdk(event: dict) -> None:
    check_server_event(event)


def test_every_server_builder_is_covered() -> None:
    covered = {e["type"] for e in _server_events()}
    # Events the local server has no reason to send (legacy names, SIP, WebRTC, diarisation).
    not_ours = {
        "conversation.created",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.dtmf_event_received",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
    }
    assert covered == ev.SERVER_EVENT_TYPES - not_ours


def test_parse_event_maps_beta_names() -> None:
    assert parse_event('{"type":"response.audio.delta","delta":"AA"}')["type"] == (
        "response.output_audio.delta"
    )
    assert parse_event(b'{"type":"response.text.done"}')["type"] == "response.output_text.done"
    assert parse_event('{"type":"session.updated"}')["type"] == "session.updated"


@pytest.mark.parametrize("raw", ["[]", '"x"', "{}", '{"type": 3}', "{not json"])
def test_parse_event_refuses_what_is_not_an_event(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_event(raw)

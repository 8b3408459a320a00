"""Valid Realtime events to mutate, and the hypothesis strategies that mutate them.

Fuzzing from valid events finds more than fuzzing from noise: a mutated event still gets past
the JSON decoder and the ``type`` switch, and so reaches the code that reads its fields.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

from realtalk.protocol import CLIENT_EVENT_TYPES, SERVER_EVENT_TYPES
from realtalk.protocol import events as ev
from realtalk.protocol.session import default_session

__all__ = [
    "CLIENT_EVENTS",
    "JSON_VALUES",
    "SERVER_EVENTS",
    "byte_mutations",
    "mutated_events",
]

_LOC: dict[str, Any] = {
    "response_id": "resp_1",
    "item_id": "item_1",
    "output_index": 0,
    "content_index": 0,
}

CLIENT_EVENTS: list[dict[str, Any]] = [
    ev.session_update(
        {
            "instructions": "be brief",
            "output_modalities": ["audio"],
            "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {}}],
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}},
        },
        event_id="e1",
    ),
    ev.input_audio_buffer_append("AAAA"),
    ev.input_audio_buffer_commit(event_id="c"),
    ev.input_audio_buffer_clear(),
    ev.conversation_item_create(ev.user_text_item("hello"), previous_item_id="root"),
    ev.conversation_item_create(
        ev.message_item("user", [ev.input_image("data:image/jpeg;base64,AAAA", "low")])
    ),
    ev.conversation_item_create(ev.function_call_output_item("call_1", '{"ok": true}')),
    ev.conversation_item_retrieve("item_1"),
    ev.conversation_item_truncate("item_1", 1234),
    ev.conversation_item_delete("item_1"),
    ev.response_create(
        {
            "instructions": "say hi",
            "metadata": {"client_request_id": "r1"},
            "input": [{"type": "item_reference", "id": "item_1"}],
        }
    ),
    ev.response_create(),
    ev.response_cancel(response_id="resp_1"),
    ev.output_audio_buffer_clear(),
]


def _server_events() -> list[dict[str, Any]]:
    session = {**default_session("gpt-realtime"), "id": "sess_1", "expires_at": 1}
    audio_item = ev.message_item(
        "assistant",
        [{"type": "output_audio", "transcript": "hi"}],
        item_id="item_1",
        status="completed",
        with_object=True,
    )
    call_item = ev.function_call_item(
        call_id="call_1", name="get_weather", arguments='{"city": "Paris"}', item_id="item_2"
    )
    response = {
        "id": "resp_1",
        "object": "realtime.response",
        "status": "completed",
        "output": [audio_item, call_item],
        "usage": {"total_tokens": 3, "input_tokens": 2, "output_tokens": 1},
    }
    return [
        ev.error("e", message="bad", code="invalid_value", param="x", client_event_id="c1"),
        ev.session_created("e", session),
        ev.session_updated("e", session),
        ev.conversation_item_added("e", audio_item, None),
        ev.conversation_item_done("e", call_item, "item_1"),
        ev.conversation_item_deleted("e", "item_1"),
        ev.conversation_item_truncated("e", "item_1", 0, 500),
        ev.input_audio_transcription_delta("e", "item_1", "hel"),
        ev.input_audio_transcription_completed(
            "e", "item_1", "hello", usage={"type": "duration", "seconds": 1.5}
        ),
        ev.speech_started("e", "item_2", 100),
        ev.speech_stopped("e", "item_2", 900),
        ev.input_audio_buffer_committed("e", "item_2", "item_1"),
        ev.response_created("e", {**response, "status": "in_progress", "output": []}),
        ev.response_output_item_added("e", "resp_1", 0, audio_item),
        ev.response_output_audio_delta("e", delta="AAAA", **_LOC),
        ev.response_output_audio_transcript_delta("e", delta="h", **_LOC),
        ev.response_output_audio_transcript_done("e", transcript="hi", **_LOC),
        ev.response_output_audio_done("e", **_LOC),
        ev.response_output_text_delta("e", delta="h", **_LOC),
        ev.response_function_call_arguments_done(
            "e", "resp_1", "item_2", 1, "call_1", "get_weather", '{"city": "Paris"}'
        ),
        ev.response_output_item_done("e", "resp_1", 1, call_item),
        ev.response_done("e", response),
        ev.rate_limits_updated(
            "e", [{"name": "tokens", "limit": 1000, "remaining": 990, "reset_seconds": 1.0}]
        ),
    ]


SERVER_EVENTS = _server_events()

#: Any JSON value, small: what a field could hold instead of what it should.
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "AAAA", "%%%", "inf", "audio/pcm", "item_1", "resp_1", "call_1"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def _slots(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) pair inside a JSON value, so a mutation can aim anywhere."""
    if isinstance(value, dict):
        for key, sub in value.items():
            out.append((value, key))
            _slots(sub, out)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out.append((value, i))
            _slots(sub, out)
    return out


@st.composite
def mutated_events(draw: st.DrawFn, corpus: list[dict[str, Any]]) -> dict[str, Any]:
    """A valid event with one to three fields replaced, deleted, added or re-typed."""
    event = copy.deepcopy(draw(st.sampled_from(corpus)))
    all_types = sorted(CLIENT_EVENT_TYPES | SERVER_EVENT_TYPES)
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(event, [])
        container, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["replace", "delete", "add", "retype"]))
        if op == "replace":
            container[key] = draw(JSON_VALUES)
        elif op == "delete":
            del container[key]
        elif op == "add" and isinstance(container, dict):
            container[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        elif op == "retype":
            event["type"] = draw(st.sampled_from(all_types))
        if not event:
            break
    return event


@st.composite
def byte_mutations(draw: st.DrawFn, corpus: list[dict[str, Any]]) -> bytes:
    """A valid event's JSON text, truncated, with bytes flipped, or with junk spliced in."""
    raw = bytearray(json.dumps(draw(st.sampled_from(corpus))).encode())
    op = draw(st.sampled_from(["truncate", "flip", "splice"]))
    at = draw(st.integers(0, len(raw) - 1))
    if op == "truncate":
        return bytes(raw[:at])
    if op == "flip":
        raw[at] ^= draw(st.integers(1, 255))
        return bytes(raw)
    return bytes(raw[:at]) + draw(st.binary(max_size=16)) + bytes(raw[at:])

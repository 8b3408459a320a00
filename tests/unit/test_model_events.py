"""Typed model and session events: every seed name has a class, seed payloads convert, and a
typed handler gets the class from a real model run (the core harness emits the seed dicts)."""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

from realtalk.realtime.events import (
    MODEL_EVENTS,
    SESSION_EVENTS,
    FunctionCalled,
    ModelEventName,
    ResponseDone,
    SessionEventName,
    Transcription,
    from_payload,
)
from tests.unit.plugins.harness import Harness


def test_every_dict_event_name_has_a_class() -> None:
    dict_model_events = set(get_args(ModelEventName)) - {"error", "turn_metrics"}
    assert set(MODEL_EVENTS) == dict_model_events
    assert set(SESSION_EVENTS) <= set(get_args(SessionEventName))
    for cls in MODEL_EVENTS.values():
        assert dataclasses.is_dataclass(cls)


def test_seed_payloads_convert() -> None:
    done = from_payload(
        ResponseDone, {"response_id": "r", "kind": "reply", "status": "completed", "usage": None}
    )
    assert done == ResponseDone("r", "reply", "completed")
    call = from_payload(
        FunctionCalled,
        {"name": "lookup", "call_id": "c", "arguments": "{}", "output": "ok", "is_error": False},
    )
    assert call.tool == "lookup" and call.output == "ok"


async def test_typed_handlers_get_classes_while_dict_handlers_keep_dicts() -> None:
    h = Harness()
    typed: list[Any] = []
    h.model.on_event(ResponseDone)(typed.append)
    h.model.on_event(Transcription)(typed.append)
    h.feed(*h.audio_response("resp_1", "item_a", 200, transcript="hello there"))
    h.play(240)  # the transcript is released as its audio plays
    await h.model.wait_idle()
    done = [e for e in typed if isinstance(e, ResponseDone)]
    assert [d.response_id for d in done] == ["resp_1"] and done[0].status == "completed"
    assert any(isinstance(e, Transcription) and e.text == "hello there" for e in typed)
    assert isinstance(h.of("response_done")[0], dict)  # the seed's payload is unchanged

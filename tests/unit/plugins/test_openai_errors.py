"""Errors, beta event names, unknown events, and a receive loop that survives bad frames."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest

from realtalk.errors import ConnectionLostError, FatalServerError, ServerError
from realtalk.plugins.openai import (
    LinkState,
    OpenAIRealtimeClient,
    OpenAIRealtimeConfig,
    ReconnectPolicy,
)
from realtalk.plugins.openai.link import ArmTimer, HandshakeFailed, Ready
from realtalk.protocol import BENIGN_CODES, events, parse_event
from tests.unit.plugins.harness import Harness, settle, tone


@pytest.mark.parametrize("code", sorted(BENIGN_CODES))
async def test_benign_errors_are_reported_and_never_end_the_session(code: str) -> None:
    h = Harness()
    h.feed(h.error(code, "harmless race"))
    (error,) = h.of("error")
    assert error.code == code and error.fatal is False
    await settle(h.model)
    assert h.model.connected
    assert h.of("closed") == []


async def test_other_recoverable_errors_keep_the_session() -> None:
    h = Harness()
    h.feed(h.error("unknown_parameter", "Unknown parameter: 'session.foo'.", client_event_id="e1"))
    (error,) = h.of("error")
    assert error.event_id == "e1" and not error.fatal
    assert h.model.connected


@pytest.mark.parametrize(
    ("code", "error_type"),
    [("invalid_api_key", "invalid_request_error"), ("quota_exceeded", "insufficient_quota")],
)
async def test_auth_and_quota_errors_are_fatal_and_close(code: str, error_type: str) -> None:
    h = Harness()
    h.feed(h.error(code, "go away", type=error_type))
    (error,) = h.of("error")
    assert error.fatal is True
    await settle(h.model)
    assert not h.model.connected
    assert h.of("closed") == [{"reason": "go away"}]


def _handshake() -> tuple[OpenAIRealtimeClient, dict]:
    core = OpenAIRealtimeClient(OpenAIRealtimeConfig(), model="gpt-realtime")
    core.connect()
    core.connection_opened()
    (update,) = core.events_to_send()
    assert update["type"] == "session.update" and core.state is LinkState.HANDSHAKE
    return core, update


def test_a_rejected_first_session_update_fails_connect_with_the_reason() -> None:
    core, update = _handshake()
    core.receive_event(
        events.error(
            "e1",
            message="Invalid value: 'x'.",
            code="invalid_value",
            type="invalid_request_error",
            client_event_id=update["event_id"],
        )
    )
    (failed,) = [a for a in core.actions() if isinstance(a, HandshakeFailed)]
    assert isinstance(failed.error, ServerError)
    assert not isinstance(failed.error, FatalServerError)
    assert "rejected the session settings" in str(failed.error)
    assert core.state is LinkState.IDLE  # the first connect is not retried: connect() raises


def test_session_updated_confirms_the_connection() -> None:
    core, _ = _handshake()
    session = {"type": "realtime", "model": "gpt-realtime", "output_modalities": ["audio"]}
    core.receive_event(events.session_updated("e1", session))
    (ready,) = [a for a in core.actions() if isinstance(a, Ready)]
    assert ready.session["model"] == "gpt-realtime"
    assert core.effective_session == session and core.state is LinkState.OPEN


def test_no_session_updated_in_time_fails_the_first_connect() -> None:
    core, _ = _handshake()
    assert any(isinstance(a, ArmTimer) and a.name == "handshake" for a in core.actions())
    core.timer_fired("handshake")
    (failed,) = [a for a in core.actions() if isinstance(a, HandshakeFailed)]
    assert isinstance(failed.error, ConnectionLostError) and "session.updated" in str(failed.error)


async def test_failed_response_and_failed_transcription_become_errors() -> None:
    h = Harness()
    h.feed(h.created("resp_1"))
    done = h.done("resp_1", status="failed")
    done["response"]["status_details"] = {
        "type": "failed",
        "error": {"type": "server_error", "code": "server_error", "message": "boom"},
    }
    h.feed(done)
    h.feed(
        {
            "type": "conversation.item.input_audio_transcription.failed",
            "event_id": h.eid(),
            "item_id": "item_u",
            "content_index": 0,
            "error": {"type": "server_error", "code": "asr_down", "message": "no ASR"},
        }
    )
    errors = h.of("error")
    assert [e.code for e in errors] == ["server_error", "asr_down"]
    assert "boom" in errors[0].message and not errors[0].fatal


async def test_beta_event_names_are_understood() -> None:
    h = Harness()
    pcm = tone(200)
    frames = [
        {
            "type": "response.created",
            "event_id": "e1",
            "response": {"id": "r1", "status": "in_progress", "output": []},
        },
        {
            "type": "conversation.item.created",
            "event_id": "e2",
            "item": {"id": "item_a", "type": "message", "role": "assistant", "content": []},
        },
        {
            "type": "response.audio.delta",
            "event_id": "e3",
            "response_id": "r1",
            "item_id": "item_a",
            "output_index": 0,
            "content_index": 0,
            "delta": base64.b64encode(pcm).decode(),
        },
        {
            "type": "response.audio_transcript.delta",
            "event_id": "e4",
            "response_id": "r1",
            "item_id": "item_a",
            "output_index": 0,
            "content_index": 0,
            "delta": "hi",
        },
        {
            "type": "response.audio.done",
            "event_id": "e5",
            "response_id": "r1",
            "item_id": "item_a",
            "output_index": 0,
            "content_index": 0,
        },
        {
            "type": "response.audio_transcript.done",
            "event_id": "e6",
            "response_id": "r1",
            "item_id": "item_a",
            "output_index": 0,
            "content_index": 0,
            "transcript": "hi",
        },
        {
            "type": "response.text.delta",
            "event_id": "e7",
            "response_id": "r1",
            "item_id": "item_b",
            "output_index": 1,
            "content_index": 0,
            "delta": "typed",
        },
        {
            "type": "response.done",
            "event_id": "e8",
            "response": {"id": "r1", "status": "completed", "output": []},
        },
    ]
    for frame in frames:
        h.model.feed(parse_event(json.dumps(frame)))
    assert "item_a" in h.model.conversation
    assert h.output.buffered_ms == 200
    texts = [(t["text"], t["is_final"]) for t in h.of("realtime_model_transcription")]
    assert texts == [("typed", False)]  # the spoken transcript waits for its audio to play
    for _ in range(10):
        h.output.read_frame()
    h.model._timer_fired("pace")  # the pacing timer fires
    texts = [(t["text"], t["is_final"]) for t in h.of("realtime_model_transcription")]
    assert texts == [("typed", False), ("hi", False), ("hi", True)]
    assert h.of("error") == []


async def test_unknown_events_are_ignored() -> None:
    h = Harness()
    h.model.feed({"type": "conversation.item.retrieved.extra_new_thing", "event_id": "e"})
    h.model.feed({"type": "rate_limits.updated", "event_id": "e", "rate_limits": []})
    assert h.of("error") == []
    assert h.sent() == []


class FramesSocket:
    """A socket that yields the given frames, then ends as if closed by the server."""

    close_code = 1000
    close_reason = "bye"

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames

    async def __aiter__(self) -> AsyncIterator[str]:
        for frame in self.frames:
            yield frame

    async def close(self) -> None:
        return None

    async def send(self, data: str) -> None:
        return None


async def test_receive_loop_survives_garbage_and_handler_failures() -> None:
    config = OpenAIRealtimeConfig(reconnect=ReconnectPolicy(max_attempts=0))
    h = Harness(config)
    good = events.input_audio_transcription_completed(
        "e3", "item_u", "still alive", usage={"type": "duration", "seconds": 1.5}
    )
    frames = [
        "not json at all",
        '{"type": "error", "x": ' + "[" * 100_000 + "}",  # RecursionError in the parser
        json.dumps({"no_type": True}),
        json.dumps(
            {
                "type": "response.output_audio.delta",
                "response_id": "r",
                "item_id": "i",
                "delta": "%%%",
            }
        ),
        json.dumps(good),
    ]
    h.session.ws = FramesSocket(frames)  # type: ignore[assignment]
    await h.model._receive_loop(h.session)
    codes = [e.code for e in h.of("error")]
    assert codes[:4] == ["invalid_event", "invalid_event", "invalid_event", "client_error"]
    assert [t["text"] for t in h.of("realtime_model_transcription")] == ["still alive"]
    await settle(h.model)
    # The server closed the socket and reconnection is off: the session ends, saying why.
    assert h.of("error")[-1].fatal is True
    assert h.of("closed")

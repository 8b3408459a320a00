"""The sans-I/O core against servers that misbehave: one regression test per defect of issue 10,
plus the link's transition table. No event loop, no socket: events in, events and actions out."""

from __future__ import annotations

import base64
import logging

import pytest

from realtalk.plugins.openai import LinkState, OpenAIRealtimeConfig
from realtalk.plugins.openai.handlers import MAX_ITEM_TEXT_CHARS
from realtalk.plugins.openai.link import TRANSITIONS, InvalidTransition, Link, RunTool
from realtalk.plugins.openai.redact import install_redaction, redact
from realtalk.protocol import events
from tests.unit.plugins.harness import CoreHarness
from tests.unit.plugins.test_openai_tools import TOOLS


def creates(sent: list[dict]) -> list[dict]:
    return [e for e in sent if e["type"] == "response.create"]


# -- the link -----------------------------------------------------------------------------------


def test_every_state_is_in_the_table_and_bad_triggers_raise() -> None:
    assert set(TRANSITIONS) == set(LinkState)
    link = Link()
    with pytest.raises(InvalidTransition):
        link.fire("confirmed")  # not before a socket is open
    assert link.fire("connect") is LinkState.CONNECTING
    assert link.fire("opened") is LinkState.HANDSHAKE
    assert link.fire("confirmed") is LinkState.OPEN and link.was_open
    assert link.fire("lost") is LinkState.BACKOFF and link.reconnecting
    assert link.fire("close") is LinkState.CLOSED and not link.reconnecting


def test_user_calls_before_connect_send_nothing() -> None:
    h = CoreHarness()
    h.core.close()
    h.core.send_text_message("hello")
    assert h.sent() == []


# -- responses matched without echoed metadata --------------------------------------------------


def test_a_server_that_does_not_echo_metadata_still_gets_the_tool_follow_up() -> None:
    """Regression: without ``response.metadata`` in ``response.created`` the client waited
    forever: no follow-up after the first tool call, and no later reply either."""
    h = CoreHarness(tools=TOOLS)
    h.core.send_text_message("look it up")
    user, reply = h.sent()
    assert reply["type"] == "response.create"
    h.feed(*h.ack(user))
    h.feed(h.created("resp_1"))  # no metadata: matched to the request in flight by order
    h.feed(*h.function_call("resp_1", "call_1", "lookup", '{"query": "q"}'), h.done("resp_1"))
    h.run_tools()
    output, follow_up = h.sent()
    assert output["item"]["type"] == "function_call_output"
    assert follow_up["response"]["metadata"]["kind"] == "tool_followup"
    h.feed(*h.ack(output), h.created("resp_2"), h.done("resp_2"))
    h.core.send_text_message("and now?")
    assert len(creates(h.sent())) == 1  # later replies are not wedged either
    assert h.of("response_created")[0]["kind"] == "reply"


def test_an_unmarked_response_is_the_servers_own_once_metadata_was_echoed() -> None:
    h = CoreHarness()
    h.core.send_text_message("one")
    _, reply = h.sent()
    h.feed(h.created_for(reply, "resp_1"), h.done("resp_1"))
    h.core.send_text_message("two")
    (second,) = creates(h.sent())
    h.feed(h.created("resp_vad"))  # the server's own (VAD) response, while ours is in flight
    assert h.of("response_created")[-1]["kind"] == "server"
    h.feed(h.done("resp_vad"), h.created_for(second, "resp_2"))
    assert h.of("response_created")[-1]["kind"] == "reply"


# -- the watchdog -------------------------------------------------------------------------------


@pytest.mark.parametrize("response", [{"id": "resp_1", "status": "in_progress"}, None])
def test_a_response_that_never_finishes_does_not_wedge_later_messages(
    response: dict | None,
) -> None:
    """Regression: ``response.created`` without ``response.done`` (or with ``"response":
    null``) wedged every later send_text_message (waited 30 s, no error)."""
    h = CoreHarness(OpenAIRealtimeConfig(response_timeout_s=20))
    h.core.send_text_message("hello")
    h.sent()
    h.feed({"type": "response.created", "event_id": "e1", "response": response}, validate=False)
    h.core.send_text_message("are you there?")
    assert creates(h.sent()) == []  # one response at a time
    h.now = 10.0
    h.fire("watchdog")  # not yet: re-armed for the rest
    assert h.timers["watchdog"] == pytest.approx(10.0) and h.of("error") == []
    h.now = 20.0
    h.fire("watchdog")
    (error,) = h.of("error")
    assert error.code == "response_timeout" and not error.fatal
    assert h.of("response_done")[-1]["reason"] == "timeout"
    (create,) = creates(h.sent())  # the queue moved on
    assert create["response"]["metadata"]["kind"] == "reply"


def test_progress_keeps_the_watchdog_quiet() -> None:
    h = CoreHarness(OpenAIRealtimeConfig(response_timeout_s=20))
    h.feed(h.created("resp_1"), *h.audio_item("resp_1", "item_a"))
    for t in (15.0, 30.0, 45.0):
        h.now = t
        h.feed(*h.audio_deltas("resp_1", "item_a", 100))
        h.fire("watchdog")
    assert h.of("error") == []


def test_an_unanswered_request_times_out_and_the_next_goes() -> None:
    h = CoreHarness(OpenAIRealtimeConfig(response_timeout_s=5))
    h.core.send_text_message("one")
    h.core.send_text_message("two")
    assert len(creates(h.sent())) == 1
    h.now = 5.0
    h.fire("watchdog")
    assert h.of("error")[0].code == "response_timeout"
    assert len(creates(h.sent())) == 1


# -- caps ---------------------------------------------------------------------------------------


def test_output_audio_queued_ahead_of_playout_is_capped() -> None:
    """Regression: 12 deltas of 29 MB for unknown items queued +323 MB, ~96 min of playout."""
    h = CoreHarness(OpenAIRealtimeConfig(max_output_buffer_s=60))
    ten_s = base64.b64encode(bytes(2 * 24000 * 10)).decode()
    for i in range(12):
        h.feed(
            events.response_output_audio_delta(h.eid(), "resp_x", f"item_{i}", 0, 0, ten_s),
        )
    assert h.output.buffered_ms <= 60_000
    overflow = [e for e in h.of("error") if e.code == "audio_overflow"]
    assert overflow and not overflow[0].fatal


def test_text_per_item_is_capped() -> None:
    h = CoreHarness()
    h.feed(h.created("resp_1"))
    chunk = "x" * 10_000
    for _ in range(MAX_ITEM_TEXT_CHARS // len(chunk) + 5):
        h.feed(events.response_output_text_delta(h.eid(), "resp_1", "item_t", 0, 0, chunk))
    interim = h.of("realtime_model_transcription")
    assert len(interim[-1]["text"]) <= MAX_ITEM_TEXT_CHARS
    assert [e.code for e in h.of("error")] == ["text_overflow"]


def test_a_missing_item_id_never_becomes_the_string_none() -> None:
    h = CoreHarness()
    h.feed(
        {"type": "conversation.item.input_audio_transcription.delta", "delta": "hi"},
        {"type": "response.output_audio_transcript.delta", "delta": "yo", "response_id": "r"},
        {"type": "conversation.item.deleted", "event_id": "e"},
        validate=False,
    )
    assert h.of("realtime_model_transcription") == []
    assert "None" not in h.core.text and "u:None" not in h.core.text


# -- tools on actions ---------------------------------------------------------------------------


def test_parallel_calls_run_as_actions_and_share_one_follow_up() -> None:
    h = CoreHarness(tools=TOOLS)
    h.feed(h.created("resp_1"))
    h.feed(*h.function_call("resp_1", "call_a", "lookup", '{"query": "a"}', index=0))
    h.feed(*h.function_call("resp_1", "call_b", "lookup", '{"query": "b"}', index=1))
    h.feed(h.done("resp_1"))
    assert [a.call.call_id for a in h.of_type(RunTool)] == ["call_a", "call_b"]
    h.run_tools()
    sent = h.sent()
    assert [e["type"] for e in sent].count("response.create") == 1
    assert [e["type"] for e in sent][-1] == "response.create"


# -- redaction ----------------------------------------------------------------------------------


def test_credentials_are_redacted_from_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    """Regression: with DEBUG logging the handshake lines showed ``Authorization: Bearer sk-…``."""
    secret = "sk-proj-abcdef0123456789"
    assert secret not in redact(f"> Authorization: Bearer {secret}")
    assert "abc123" not in redact("wss://x.openai.azure.com/openai/realtime?api-key=abc123&x=1")
    assert "topsecret" not in redact("> api-key: topsecret")
    log = logging.getLogger("tests.redaction")
    install_redaction(log)
    with caplog.at_level(logging.DEBUG, logger="tests.redaction"):
        log.debug("> %s: %s", "Authorization", f"Bearer {secret}")
    assert secret not in caplog.text and "Authorization" in caplog.text


def test_the_documented_state_diagram_is_the_transition_table() -> None:
    from pathlib import Path

    from realtalk.plugins.openai.link import diagram

    doc = (Path(__file__).parents[3] / "docs" / "architecture.md").read_text()
    assert diagram() in doc


def test_a_handoff_sends_instructions_and_tools_in_one_update() -> None:
    """``update_agent(agent)`` (agent handoffs) = ``configure``: one ``session.update`` carries
    the new instructions and tools together, never a state with one swapped and not the other."""
    h = CoreHarness(tools=TOOLS)
    new_tools = [{"type": "function", "name": "book", "description": "Book it.", "parameters": {}}]
    h.core.configure("You are the booking agent.", new_tools)
    (update,) = h.sent()
    assert update["type"] == "session.update"
    assert update["session"]["instructions"] == "You are the booking agent."
    assert [t["name"] for t in update["session"]["tools"]] == ["book"]

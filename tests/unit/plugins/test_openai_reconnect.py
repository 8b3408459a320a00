"""Reconnection and recycling on the sans-I/O core: no loop, no socket; events in, actions out."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from realtalk.errors import ConnectionLostError, FatalServerError
from realtalk.media.frame import AudioFrame
from realtalk.plugins.openai import LinkState, OpenAIRealtimeConfig, ReconnectPolicy
from realtalk.plugins.openai.link import Close, DropLink, Reconnect
from realtalk.plugins.openai.recovery import EARLIER_HEADER, MAX_HELD_AUDIO_MS, MAX_REPLAYED_ITEMS
from realtalk.protocol import events
from tests.unit.plugins.harness import CoreHarness


def fast(**kwargs: object) -> OpenAIRealtimeConfig:
    policy = ReconnectPolicy(max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0)
    return OpenAIRealtimeConfig(reconnect=policy, **kwargs)  # type: ignore[arg-type]


def reconnect(h: CoreHarness) -> None:
    """The backoff timer fires, the driver opens a socket, the server confirms."""
    h.fire("reconnect")
    assert h.of_type(Reconnect)
    h.open_link()


def drop_mid_reply(h: CoreHarness, *, say_more: bool) -> list[dict]:
    h.core.send_text_message("tell me a story")
    user_create, reply = h.sent()
    h.feed(*h.ack(user_create))
    seq = h.audio_response(
        "resp_1", "item_a", 600, metadata=reply["response"]["metadata"], done=False
    )
    h.feed(*seq[:-4])  # audio arrived, the reply is not finished
    h.feed(
        events.response_output_audio_transcript_delta(
            h.eid(), "resp_1", "item_a", 0, 0, "Once upon"
        )
    )
    h.core.connection_lost("connection lost (test)")
    h.collect()
    assert h.core.state is LinkState.BACKOFF and h.of_type(DropLink)
    if say_more:
        h.core.send_text_message("are you there?")  # while reconnecting: kept
    reconnect(h)
    assert [e["attempt"] for e in h.of("reconnecting")] == [1]
    assert [e["attempt"] for e in h.of("reconnected")] == [1]
    return h.sent()


def texts(sent: list[dict]) -> list[tuple[str, str]]:
    return [
        (e["item"]["role"], e["item"]["content"][0]["text"])
        for e in sent
        if e["type"] == "conversation.item.create"
    ]


def test_drop_mid_reply_replays_the_conversation_and_resumes() -> None:
    h = CoreHarness(fast())
    sent = drop_mid_reply(h, say_more=False)
    assert texts(sent) == [("user", "tell me a story"), ("assistant", "Once upon")]
    creates = [e for e in sent if e["type"] == "conversation.item.create"]
    assert creates[1]["previous_item_id"] == creates[0]["item"]["id"]
    assert [e["type"] for e in sent][-1] == "response.create"
    assert sent[-1]["response"]["metadata"]["kind"] == "resume"  # the cut reply is asked again
    # The audio that had arrived plays out; nothing waits forever for the lost rest of it.
    h.play(600)
    assert h.of("agent_speech_ended")[-1]["played_ms"] == 600


def test_a_message_sent_while_reconnecting_is_delivered_after_the_replay() -> None:
    h = CoreHarness(fast())
    sent = drop_mid_reply(h, say_more=True)
    assert texts(sent) == [
        ("user", "tell me a story"),
        ("assistant", "Once upon"),
        ("user", "are you there?"),
    ]
    (create,) = [e for e in sent if e["type"] == "response.create"]
    assert create["response"]["metadata"]["kind"] == "reply"  # no extra "resume" reply
    h.feed(h.created_for(create, "resp_2"), h.done("resp_2"))
    assert h.sent() == []


def test_transient_failures_back_off_then_fatal_stops() -> None:
    h = CoreHarness(fast())
    h.core.connection_lost("gone")
    h.fire("reconnect")
    h.core.connect_failed(ConnectionLostError("refused"))
    h.fire("reconnect")
    h.core.connect_failed(FatalServerError("bad key", code="invalid_api_key"))
    h.collect()
    assert [e["attempt"] for e in h.of("reconnecting")] == [1, 2]
    assert h.of("reconnected") == []
    assert h.of("error")[-1].fatal is True and h.of("error")[-1].code == "invalid_api_key"
    assert h.of_type(Close) and h.core.state is LinkState.CLOSED


def test_giving_up_after_max_attempts_is_fatal() -> None:
    h = CoreHarness(fast())
    h.core.connection_lost("gone")
    for _ in range(3):
        h.fire("reconnect")
        h.core.connect_failed(ConnectionLostError("no"))
    h.collect()
    assert len(h.of("reconnecting")) == 3
    error = h.of("error")[-1]
    assert error.fatal and error.code == "connection_lost" and "3 attempts" in error.message
    assert "reconnect" not in h.timers and h.of_type(Close)


def test_a_flapping_server_cannot_reset_the_attempt_count() -> None:
    """Regression: a server that confirms the session and closes at once got 466 reconnects in
    20 s with max_attempts=4 (the count reset on every successful connect)."""
    policy = ReconnectPolicy(max_attempts=4, backoff_base_s=0.0, backoff_max_s=0.0)
    h = CoreHarness(OpenAIRealtimeConfig(reconnect=policy))
    for _ in range(20):
        if h.core.state is LinkState.CLOSED:
            break
        h.core.connection_lost("closed by the server (code 1000)")
        h.collect()
        if "reconnect" in h.timers:
            reconnect(h)
    assert h.core.state is LinkState.CLOSED
    assert len(h.of_type(Reconnect)) == 4
    assert h.of("error")[-1].fatal and h.of("error")[-1].code == "connection_lost"


def test_a_link_that_stayed_up_starts_the_count_again() -> None:
    policy = ReconnectPolicy(max_attempts=2, backoff_base_s=0.0, backoff_max_s=0.0, stable_s=30)
    h = CoreHarness(OpenAIRealtimeConfig(reconnect=policy))
    for _ in range(5):
        assert h.timers["stable"] == 30
        h.fire("stable")  # 30 s of a working link
        h.core.connection_lost("network blip")
        reconnect(h)
    assert h.core.state is LinkState.OPEN
    assert [e["attempt"] for e in h.of("reconnecting")] == [1] * 5


def test_tool_output_of_a_dropped_session_is_replayed() -> None:
    from tests.unit.plugins.test_openai_tools import TOOLS

    h = CoreHarness(fast(), tools=TOOLS)
    h.feed(h.created("resp_fc"), *h.function_call("resp_fc", "call_1", "lookup", '{"query": "q"}'))
    h.feed(h.done("resp_fc"))
    h.run_tools()
    first = h.sent()
    assert [e["type"] for e in first] == ["conversation.item.create", "response.create"]
    h.core.connection_lost("gone")  # before the output was acknowledged
    reconnect(h)
    sent = h.sent()
    types = [(e["type"], e.get("item", {}).get("type")) for e in sent]
    assert ("conversation.item.create", "function_call") in types
    assert ("conversation.item.create", "function_call_output") in types
    assert [t for t, _ in types].count("response.create") == 1  # the unanswered request, once


def test_session_expired_then_close_reconnects() -> None:
    h = CoreHarness(fast())
    h.feed(h.error("session_expired", "Your session hit the maximum duration of 60 minutes."))
    assert h.of("error")[0].fatal is False
    h.core.connection_lost("closed by the server (code 1001)")
    reconnect(h)
    assert [e["attempt"] for e in h.of("reconnected")] == [1]


def test_recycle_waits_for_the_reply_to_finish() -> None:
    h = CoreHarness(fast())
    h.feed(*h.audio_response("resp_1", "item_a", 200, done=False))
    h.fire("recycle")
    assert h.of_type(Reconnect) == []  # a reply is active
    h.feed(h.done("resp_1"))
    assert h.of_type(Reconnect) == []  # its audio still plays
    h.play(200)
    assert len(h.of_type(Reconnect)) == 1 and h.of_type(DropLink)
    assert h.of("reconnecting")[0]["reason"].startswith("session recycle")
    h.open_link()
    assert [e["attempt"] for e in h.of("reconnected")] == [1]


def test_user_audio_of_an_outage_reaches_the_new_session() -> None:
    h = CoreHarness(fast())
    frame = AudioFrame.from_array(np.full(960, 3000, dtype=np.int16), 48000)
    h.core.connection_lost("gone")
    for _ in range(50):  # one second of speech while the link is down
        assert h.core.append_audio(frame) is None
    reconnect(h)
    appended = [e for e in h.sent() if e["type"] == "input_audio_buffer.append"]
    appended_ms = sum(len(base64.b64decode(e["audio"])) for e in appended) / 48
    (reconnected,) = h.of("reconnected")
    # (whole milliseconds per append, rounded down)
    assert reconnected["replayed_audio_ms"] == pytest.approx(appended_ms, abs=len(appended))
    assert 900 <= appended_ms <= 1000  # all of it but the resampler's and batch's tail
    assert reconnected["dropped_audio_ms"] == 0


def test_audio_beyond_the_outage_limit_is_reported() -> None:
    h = CoreHarness(fast())
    h.core.connection_lost("gone")
    frame = AudioFrame(bytes(4800), 24000)  # 100 ms at the wire rate: passes through as is
    for _ in range(MAX_HELD_AUDIO_MS // 100 + 20):
        h.core.append_audio(frame)
    reconnect(h)
    (reconnected,) = h.of("reconnected")
    assert reconnected["replayed_audio_ms"] <= MAX_HELD_AUDIO_MS
    assert reconnected["dropped_audio_ms"] >= 1900
    (error,) = [e for e in h.of("error") if e.code == "audio_dropped"]
    assert not error.fatal and "audio" in error.message


def test_a_reply_cut_by_the_network_is_reported_done() -> None:
    h = CoreHarness(fast())
    h.feed(*h.audio_response("resp_1", "item_a", 200, done=False))
    h.core.connection_lost("gone")
    reconnect(h)
    (done,) = h.of("response_done")
    assert done["response_id"] == "resp_1" and done["reason"] == "connection_lost"
    (resume,) = [e for e in h.sent() if e["type"] == "response.create"]
    h.play(200)
    h.feed(h.created_for(resume, "resp_2"), h.done("resp_2"))
    assert len(h.of("turn_metrics")) == 1  # the cut response does not block the turn forever


def test_a_long_conversation_is_replayed_as_its_last_items_and_a_transcript() -> None:
    h = CoreHarness(fast())
    for i in range(60):  # 60 acknowledged user messages (no replies asked for)
        h.core.create_item(events.user_text_item(f"note {i}"))
        (create,) = h.sent()
        h.feed(*h.ack(create))
    h.core.connection_lost("connection lost (test)")
    reconnect(h)
    creates = [e for e in h.sent() if e["type"] == "conversation.item.create"]
    assert len(creates) == MAX_REPLAYED_ITEMS + 1
    first = creates[0]["item"]
    assert first["role"] == "system"
    transcript = first["content"][0]["text"]
    assert transcript.startswith(EARLIER_HEADER)
    assert transcript.splitlines()[1:] == [f"User: note {i}" for i in range(20)]
    assert texts(creates[1:]) == [("user", f"note {i}") for i in range(20, 60)]
    # A second reconnect folds the transcript once, not a transcript of a transcript.
    h.core.connection_lost("connection lost again (test)")
    h.collect()
    for create in creates:
        h.feed(*h.ack(create))
    reconnect(h)
    again = [e for e in h.sent() if e["type"] == "conversation.item.create"]
    assert again[0]["item"]["content"][0]["text"].count(EARLIER_HEADER) == 1

"""Text and audio turns through OpenAIRealtime.feed: transcripts, playback events, metrics."""

from __future__ import annotations

from realtalk.metrics import PriceTable
from realtalk.plugins.openai import OpenAIRealtimeConfig
from realtalk.protocol import events
from tests.unit.plugins.harness import Harness, settle

USAGE = {
    "total_tokens": 150,
    "input_tokens": 100,
    "output_tokens": 50,
    "input_token_details": {
        "text_tokens": 20,
        "audio_tokens": 80,
        "image_tokens": 0,
        "cached_tokens": 60,
        "cached_tokens_details": {"text_tokens": 10, "audio_tokens": 50, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 10, "audio_tokens": 40},
}


async def test_text_turn_sends_item_and_one_reply_and_reports_the_text() -> None:
    # the harness's server is on loopback (unpriced): give it OpenAI's prices to check the cost
    prices = PriceTable.for_model("gpt-realtime")
    h = Harness(OpenAIRealtimeConfig(modalities=["text"], prices=prices))
    await h.model.send_text_message("hello there")
    item_create, reply = h.sent()
    assert item_create["type"] == "conversation.item.create"
    assert item_create["item"]["content"] == [{"type": "input_text", "text": "hello there"}]
    assert item_create["item"]["id"].startswith("item_")
    assert reply["type"] == "response.create"
    assert reply["response"]["metadata"]["kind"] == "reply"

    h.feed(*h.ack(item_create))
    assert item_create["item"]["id"] in h.model.conversation
    item = events.message_item(
        "assistant", [], item_id="item_a", status="in_progress", with_object=True
    )
    done_item = events.message_item(
        "assistant",
        [{"type": "output_text", "text": "You said: hello there."}],
        item_id="item_a",
        status="completed",
        with_object=True,
    )
    h.feed(
        h.created_for(reply, "resp_1"),
        events.response_output_item_added(h.eid(), "resp_1", 0, item),
        events.conversation_item_added(h.eid(), item, item_create["item"]["id"]),
        events.response_output_text_delta(h.eid(), "resp_1", "item_a", 0, 0, "You said:"),
        events.response_output_text_delta(h.eid(), "resp_1", "item_a", 0, 0, " hello there."),
        events.response_output_text_done(
            h.eid(), "resp_1", "item_a", 0, 0, "You said: hello there."
        ),
        events.response_output_item_done(h.eid(), "resp_1", 0, done_item),
        events.conversation_item_done(h.eid(), done_item, item_create["item"]["id"]),
        h.done("resp_1", output=[done_item], usage=USAGE),
    )
    texts = h.of("realtime_model_transcription")
    assert [(t["text"], t["is_final"]) for t in texts] == [
        ("You said:", False),
        ("You said: hello there.", False),
        ("You said: hello there.", True),
    ]
    assert all(t["role"] == "agent" and t["item_id"] == "item_a" for t in texts)
    assert h.of("text_response") == [{"text": "You said: hello there.", "type": "done"}]
    assert h.of("response_created")[0]["kind"] == "reply"
    assert h.of("response_done")[0]["status"] == "completed"
    (turn,) = h.of("turn_metrics")
    assert turn.usage.input_tokens == 100
    assert turn.usage.cached_audio_tokens == 50
    assert turn.cost_usd > 0
    assert h.sent() == []  # nothing more: no second reply


async def test_audio_turn_plays_reports_speech_and_latency() -> None:
    h = Harness()
    user = events.message_item(
        "user", [{"type": "input_audio", "transcript": None}], item_id="item_u", with_object=True
    )
    h.feed(
        h.speech_started("item_u"),
        h.speech_stopped("item_u"),
        events.input_audio_buffer_committed(h.eid(), "item_u", None),
        events.conversation_item_added(h.eid(), user, None),
        events.input_audio_transcription_delta(h.eid(), "item_u", "what is"),
        events.input_audio_transcription_completed(
            h.eid(),
            "item_u",
            "what is the time",
            usage={"type": "tokens", "input_tokens": 12, "output_tokens": 4, "total_tokens": 16},
        ),
    )
    assert h.of("user_speech_started") == [{}]
    assert h.of("user_speech_ended") == [{}]
    user_texts = h.of("realtime_model_transcription")
    assert [(t["role"], t["text"], t["is_final"]) for t in user_texts] == [
        ("user", "what is", False),
        ("user", "what is the time", True),
    ]
    assert h.model.conversation.transcript("item_u") == "what is the time"

    h.feed(*h.audio_response("resp_1", "item_a", 400, "it is noon"))
    assert h.of("agent_speech_started") == []  # received is not played
    frames = h.play(400)
    assert all(any(f) for f in frames)
    assert h.of("agent_speech_started") == [{"item_id": "item_a"}]
    assert h.of("agent_speech_ended") == [
        {"item_id": "item_a", "played_ms": 400, "interrupted": False}
    ]
    (turn,) = h.of("turn_metrics")
    assert turn.latency_ms is not None and turn.latency_ms >= 0
    assert turn.model_latency_ms is not None
    assert turn.input_transcription_usage.input_tokens == 12
    assert turn.interrupted is False
    assert h.sent() == []


async def test_turn_completes_only_after_playback() -> None:
    h = Harness()
    h.feed(*h.audio_response("resp_1", "item_a", 200))
    assert h.of("turn_metrics") == []
    h.play(100)
    assert h.of("turn_metrics") == []
    h.play(100)
    assert len(h.of("turn_metrics")) == 1


async def test_audio_from_a_new_item_plays_after_the_first() -> None:
    h = Harness()
    h.feed(*h.audio_response("resp_1", "item_a", 100))
    h.feed(*h.audio_response("resp_2", "item_b", 100))
    h.play(200)
    assert [e["item_id"] for e in h.of("agent_speech_ended")] == ["item_a", "item_b"]


async def test_update_agent_resends_the_session_with_tools() -> None:
    from realtalk.agent import Agent
    from realtalk.tools import function_tool

    @function_tool
    def lookup(query: str) -> str:
        """Look something up.

        Args:
            query: what to look for.
        """
        return query

    h = Harness()
    await h.model.update_agent(Agent(instructions="New persona.", tools=[lookup]))
    (update,) = h.sent()
    assert update["session"]["instructions"] == "New persona."
    assert update["session"]["tools"][0]["name"] == "lookup"
    await settle(h.model)


def test_a_local_server_has_no_prices_and_openai_has() -> None:
    from realtalk.plugins.openai import OpenAIRealtime

    local = OpenAIRealtime(model="gpt-realtime", base_url="http://127.0.0.1:8765/v1")
    assert local.core.metrics.prices.known is False
    assert local.core.metrics.current_turn is None
    local.core.metrics.user_speech_started()
    assert local.core.metrics.current_turn is not None
    assert local.core.metrics.current_turn.to_dict()["priced"] is False
    remote = OpenAIRealtime(model="gpt-realtime", api_key="sk-test")
    assert remote.core.metrics.prices.known is True

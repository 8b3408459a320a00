"""Tests for realtalk.metrics: usage parsing, cost, and per-turn metrics."""

import dataclasses
import json
from typing import Any

import pytest

from realtalk.metrics import (
    DEFAULT_PRICES,
    PriceTable,
    SessionMetrics,
    TranscriptionPrices,
    TranscriptionUsage,
    Usage,
    cost,
    transcription_cost,
)

# A GA response.done usage object: 1000 input tokens of which 600 cached.
GA_USAGE: dict[str, Any] = {
    "total_tokens": 1300,
    "input_tokens": 1000,
    "output_tokens": 300,
    "input_token_details": {
        "text_tokens": 400,
        "audio_tokens": 550,
        "image_tokens": 50,
        "cached_tokens": 600,
        "cached_tokens_details": {"text_tokens": 300, "audio_tokens": 280, "image_tokens": 20},
    },
    "output_token_details": {"text_tokens": 100, "audio_tokens": 200},
}

# Round numbers so expected costs are easy to check by hand.
PRICES = PriceTable(
    text_input=10,
    text_cached_input=1,
    text_output=20,
    audio_input=100,
    audio_cached_input=2,
    audio_output=200,
    image_input=50,
    image_cached_input=5,
)


def response(
    response_id: str, usage: dict[str, Any] | None, status: str = "completed"
) -> dict[str, Any]:
    return {"id": response_id, "object": "realtime.response", "status": status, "usage": usage}


def small_usage(text_in: int, audio_out: int) -> dict[str, Any]:
    return {
        "total_tokens": text_in + audio_out,
        "input_tokens": text_in,
        "output_tokens": audio_out,
        "input_token_details": {"text_tokens": text_in, "audio_tokens": 0, "cached_tokens": 0},
        "output_token_details": {"text_tokens": 0, "audio_tokens": audio_out},
    }


# -- usage ------------------------------------------------------------------------------------


def test_usage_parses_the_ga_usage_object() -> None:
    usage = Usage.from_response_usage(GA_USAGE)
    assert usage == Usage(
        input_tokens=1000,
        output_tokens=300,
        total_tokens=1300,
        input_text_tokens=400,
        input_audio_tokens=550,
        input_image_tokens=50,
        cached_tokens=600,
        cached_text_tokens=300,
        cached_audio_tokens=280,
        cached_image_tokens=20,
        output_text_tokens=100,
        output_audio_tokens=200,
    )


def test_usage_of_missing_or_null_fields_is_zero() -> None:
    assert Usage.from_response_usage(None) == Usage()
    assert Usage.from_response_usage({}) == Usage()
    usage = Usage.from_response_usage({"input_tokens": 5, "output_tokens": None})
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (5, 0, 5)


def test_usage_without_details_counts_as_text() -> None:
    usage = Usage.from_response_usage({"input_tokens": 40, "output_tokens": 7})
    assert (usage.input_text_tokens, usage.output_text_tokens) == (40, 7)


def test_cached_without_details_is_split_within_the_input() -> None:
    usage = Usage.from_response_usage(
        {
            "input_tokens": 100,
            "input_token_details": {"text_tokens": 30, "audio_tokens": 70, "cached_tokens": 50},
        }
    )
    assert (usage.cached_text_tokens, usage.cached_audio_tokens) == (30, 20)
    assert usage.cached_text_tokens + usage.cached_audio_tokens == usage.cached_tokens


def test_usage_addition_is_field_wise() -> None:
    one = Usage.from_response_usage(GA_USAGE)
    two = one + one
    for f in dataclasses.fields(Usage):
        assert getattr(two, f.name) == 2 * getattr(one, f.name), f.name
    assert one + Usage() == one


# -- cost -------------------------------------------------------------------------------------


def test_cost_bills_cached_tokens_once_at_the_cached_price() -> None:
    usage = Usage.from_response_usage(GA_USAGE)
    expected = (
        (400 - 300) * 10  # uncached text
        + 300 * 1  # cached text
        + (550 - 280) * 100  # uncached audio
        + 280 * 2  # cached audio
        + (50 - 20) * 50  # uncached image
        + 20 * 5  # cached image
        + 100 * 20  # text out
        + 200 * 200  # audio out
    ) / 1_000_000
    assert cost(usage, PRICES) == pytest.approx(expected)


def test_fully_cached_input_costs_only_the_cached_price() -> None:
    usage = Usage(
        input_tokens=1000, input_text_tokens=1000, cached_tokens=1000, cached_text_tokens=1000
    )
    assert cost(usage, PRICES) == pytest.approx(1000 * 1 / 1_000_000)


def test_cost_of_zero_usage_and_unknown_prices_is_zero() -> None:
    assert cost(Usage(), PRICES) == 0
    assert cost(Usage.from_response_usage(GA_USAGE), PriceTable(known=False)) == 0


def test_transcription_cost_per_token_and_per_minute() -> None:
    tokens = TranscriptionUsage.from_dict(
        {
            "type": "tokens",
            "input_tokens": 120,
            "output_tokens": 30,
            "total_tokens": 150,
            "input_token_details": {"audio_tokens": 100, "text_tokens": 20},
        }
    )
    assert tokens == TranscriptionUsage(
        input_tokens=120, input_audio_tokens=100, input_text_tokens=20, output_tokens=30
    )
    prices = TranscriptionPrices(audio_input=6, text_input=2, output=10, per_minute=0.5)
    assert transcription_cost(tokens, prices) == pytest.approx((100 * 6 + 20 * 2 + 30 * 10) / 1e6)

    duration = TranscriptionUsage.from_dict({"type": "duration", "seconds": 90})
    assert duration == TranscriptionUsage(seconds=90.0)
    assert transcription_cost(duration, prices) == pytest.approx(0.75)


# -- prices -----------------------------------------------------------------------------------


def test_price_lookup_by_longest_prefix() -> None:
    assert PriceTable.for_model("gpt-realtime") is DEFAULT_PRICES["gpt-realtime"]
    assert PriceTable.for_model("gpt-realtime-2025-08-28") is DEFAULT_PRICES["gpt-realtime"]
    assert (
        PriceTable.for_model("gpt-realtime-mini-2025-12-15") is DEFAULT_PRICES["gpt-realtime-mini"]
    )
    mini, full = DEFAULT_PRICES["gpt-realtime-mini"], DEFAULT_PRICES["gpt-realtime"]
    assert mini.audio_output < full.audio_output
    assert full.known and mini.known


def test_default_prices_charge_less_for_cached_input() -> None:
    for table in DEFAULT_PRICES.values():
        assert 0 < table.text_cached_input < table.text_input
        assert 0 < table.audio_cached_input < table.audio_input


def test_unknown_model_has_zero_prices_and_a_flag() -> None:
    prices = PriceTable.for_model("local-llm")
    assert not prices.known
    assert cost(Usage.from_response_usage(GA_USAGE), prices) == 0


def test_transcription_prices_are_looked_up_too() -> None:
    prices = PriceTable.for_model("gpt-realtime", transcription_model="whisper-1")
    assert prices.transcription.per_minute > 0 and prices.transcription.known
    assert prices.text_input == DEFAULT_PRICES["gpt-realtime"].text_input
    assert not PriceTable.for_model("gpt-realtime").transcription.known
    assert not PriceTable.for_model("gpt-realtime", transcription_model="nope").transcription.known


def test_prices_are_user_overridable() -> None:
    custom = {**DEFAULT_PRICES, "my-model": PRICES}
    assert PriceTable.for_model("my-model-v2", prices=custom) is PRICES
    cheaper = dataclasses.replace(DEFAULT_PRICES["gpt-realtime"], audio_output=1.0)
    assert cheaper.audio_output == 1.0
    with pytest.raises(TypeError):
        DEFAULT_PRICES["x"] = PRICES  # type: ignore[index]


# -- turns and sessions -----------------------------------------------------------------------


def test_turn_latencies_from_end_of_user_speech() -> None:
    metrics = SessionMetrics(PRICES)
    metrics.user_speech_started(t=10.0)
    metrics.user_speech_ended(t=12.0)
    metrics.response_created("resp_1", t=12.1)
    metrics.first_audio_received(t=12.4)
    metrics.first_audio_received(t=12.6)  # later chunks do not move the first one
    metrics.first_audio_played(t=12.5)
    metrics.first_audio_played(t=13.0)
    turn = metrics.turn_completed()

    assert turn.index == 0
    assert turn.model_latency_ms == pytest.approx(400)
    assert turn.latency_ms == pytest.approx(500)


def test_latencies_are_none_without_user_speech() -> None:
    metrics = SessionMetrics()
    metrics.response_created("greeting", t=1.0)
    metrics.first_audio_played(t=1.5)
    turn = metrics.turn_completed()
    assert turn.latency_ms is None and turn.model_latency_ms is None


def test_timestamps_come_from_the_injected_clock() -> None:
    now = iter([5.0, 5.25])
    metrics = SessionMetrics(clock=lambda: next(now))
    metrics.user_speech_ended()
    metrics.first_audio_received()
    assert metrics.turn_completed().model_latency_ms == pytest.approx(250)


def test_turn_with_tool_call_keeps_usage_of_both_responses() -> None:
    metrics = SessionMetrics(PRICES)
    metrics.user_speech_ended(t=0.0)
    metrics.response_created("resp_call", t=0.1)
    metrics.tool_called("get_weather")
    metrics.response_done(response("resp_call", small_usage(100, 0)), t=0.3)
    metrics.response_created("resp_answer", t=0.5)
    metrics.response_done(response("resp_answer", small_usage(150, 40)), t=1.0)
    turn = metrics.turn_completed()

    assert [r.response_id for r in turn.responses] == ["resp_call", "resp_answer"]
    assert turn.usage.input_tokens == 250
    assert turn.usage.output_audio_tokens == 40
    assert turn.tool_calls == ["get_weather"]
    expected = cost(Usage.from_response_usage(small_usage(250, 40)), PRICES)
    assert turn.cost_usd == pytest.approx(expected)
    assert turn.responses[0].status == "completed"
    assert (turn.responses[1].created_at, turn.responses[1].done_at) == (0.5, 1.0)


def test_response_done_without_created_is_still_counted() -> None:
    metrics = SessionMetrics(PRICES)
    done = metrics.response_done(response("resp_x", small_usage(10, 0)), t=2.0)
    assert done.created_at is None and done.done_at == 2.0
    assert metrics.turn_completed().usage.input_tokens == 10


def test_late_response_done_updates_its_own_turn() -> None:
    metrics = SessionMetrics(PRICES)
    metrics.response_created("resp_1", t=0.0)
    metrics.interrupted()
    first = metrics.turn_completed()
    metrics.user_speech_started(t=1.0)
    metrics.response_done(response("resp_1", small_usage(30, 5), status="cancelled"), t=1.1)
    second = metrics.turn_completed()

    assert first.interrupted and not second.interrupted
    assert first.responses[0].status == "cancelled"
    assert first.usage.input_tokens == 30
    assert second.responses == []
    assert metrics.usage.input_tokens == 30  # counted once in the totals


def test_transcription_usage_is_billed_in_the_turn() -> None:
    prices = dataclasses.replace(PRICES, transcription=TranscriptionPrices(per_minute=0.6))
    metrics = SessionMetrics(prices)
    metrics.transcription_usage({"type": "duration", "seconds": 30})
    metrics.transcription_usage({"type": "duration", "seconds": 30})
    turn = metrics.turn_completed()
    assert turn.input_transcription_usage.seconds == 60
    assert turn.cost_usd == pytest.approx(0.6)


def test_session_totals_over_turns() -> None:
    metrics = SessionMetrics(PRICES)
    for index in range(3):
        metrics.response_created(f"r{index}")
        metrics.response_done(response(f"r{index}", small_usage(10, 2)))
        metrics.turn_completed()
    metrics.response_created("open")
    metrics.response_done(response("open", small_usage(1, 0)))  # current turn counts too

    assert [turn.index for turn in metrics.turns] == [0, 1, 2]
    assert metrics.usage.input_tokens == 31
    assert metrics.cost_usd == pytest.approx(sum(t.cost_usd for t in metrics.turns) + 1 * 10 / 1e6)


def test_sessions_do_not_share_state() -> None:
    first, second = SessionMetrics(), SessionMetrics()
    first.tool_called("x")
    first.turn_completed()
    assert second.turns == [] and second.current_turn is None


def test_to_dict_is_json_friendly() -> None:
    metrics = SessionMetrics(PRICES)
    metrics.user_speech_ended(t=1.0)
    metrics.response_created("r", t=1.1)
    metrics.first_audio_played(t=1.3)
    metrics.response_done(response("r", GA_USAGE), t=2.0)
    metrics.tool_called("lookup")
    turn = metrics.turn_completed()

    data = json.loads(json.dumps(turn.to_dict()))
    assert data["latency_ms"] == pytest.approx(300)
    assert data["usage"]["cached_tokens"] == 600
    assert data["responses"][0]["response_id"] == "r"
    assert data["tool_calls"] == ["lookup"]
    assert data["cost_usd"] == pytest.approx(turn.cost_usd)
    session = json.loads(json.dumps(metrics.to_dict()))
    assert session["usage"]["input_tokens"] == 1000 and session["prices_known"]

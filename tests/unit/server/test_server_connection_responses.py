"""Responses through the connection: event order, cancellation, out-of-band, tools, usage."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import numpy as np
import pytest

from realtalk.protocol import events as ev
from realtalk.server.engines.base import LLM, ChatMessage, LLMChunk, TextDelta
from realtalk.server.engines.scripted import ScriptedLLM, ToneVoice
from tests.conftest import make_engines
from tests.unit.server.conftest import Harness, silence, tone_speech

AUDIO_TURN = [
    "response.created",
    "rate_limits.updated",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]
AUDIO_END = [
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
]
WORD_MS = 250  # ToneVoice: 200 ms tone + 50 ms gap a word
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


class RecordingLLM(LLM):
    """ScriptedLLM that remembers what it was shown."""

    def __init__(self, word_delay_s: float = 0.0) -> None:
        self.inner = ScriptedLLM(word_delay_s)
        self.seen: list[list[ChatMessage]] = []

    async def stream(self, messages: list[ChatMessage], **kw: Any) -> AsyncIterator[LLMChunk]:
        self.seen.append(list(messages))
        async for chunk in self.inner.stream(messages, **kw):
            yield chunk


async def say(h: Harness, text: str) -> None:
    await h.send(ev.conversation_item_create(ev.user_text_item(text)))


async def test_audio_response_events_in_order_with_audio_matching_the_transcript(
    harness: Harness,
) -> None:
    await say(harness, "Hello there. How are you?")
    start = len(harness.events)
    await harness.send(ev.response_create())
    done = await harness.wait_for("response.done")
    types = harness.types(start)
    assert types[:5] == AUDIO_TURN
    assert types[-6:] == AUDIO_END
    middle = set(types[5:-6])
    assert middle == {"response.output_audio.delta", "response.output_audio_transcript.delta"}
    transcript = "You said: Hello there. How are you."
    deltas = harness.of("response.output_audio_transcript.delta")
    assert [d["delta"] for d in deltas] == ["You said: Hello there.", " How are you."]
    audio = b"".join(
        base64.b64decode(d["delta"]) for d in harness.of("response.output_audio.delta")
    )
    assert len(audio) / 48 == 7 * WORD_MS  # seven words of ToneVoice at 24 kHz
    assert all(
        len(base64.b64decode(d["delta"])) <= 48 * 200
        for d in harness.of("response.output_audio.delta")
    )
    # each sentence's transcript goes out with (just before) its first audio
    first_audio = types.index("response.output_audio.delta")
    assert types[first_audio - 1] == "response.output_audio_transcript.delta"
    part_added = harness.of("response.content_part.added")[0]["part"]
    part_done = harness.of("response.content_part.done")[0]["part"]
    assert part_added == {"type": "audio", "transcript": ""}
    assert part_done == {"type": "audio", "transcript": transcript}
    response = done["response"]
    assert response["status"] == "completed" and response["status_details"] is None
    assert response["conversation_id"].startswith("conv_")
    item = response["output"][0]
    assert item["content"] == [{"type": "output_audio", "transcript": transcript}]
    assert item["status"] == "completed"
    usage = response["usage"]
    assert usage["output_token_details"]["audio_tokens"] == 7 * WORD_MS // 50
    assert usage["output_token_details"]["text_tokens"] == 7  # ScriptedLLM counts words
    assert usage["output_tokens"] == 7 + 35
    assert usage["input_tokens"] == sum(
        usage["input_token_details"][k] for k in ("text_tokens", "audio_tokens")
    )
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


async def test_text_response(harness: Harness) -> None:
    await harness.send(ev.session_update({"output_modalities": ["text"]}))
    await say(harness, "Hi")
    start = len(harness.events)
    await harness.send(ev.response_create())
    done = await harness.wait_for("response.done")
    types = harness.types(start)
    assert types[:5] == AUDIO_TURN
    assert types[-5:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert "".join(d["delta"] for d in harness.of("response.output_text.delta")) == "You said: Hi."
    assert harness.of("response.content_part.added")[0]["part"] == {"type": "text", "text": ""}
    assert done["response"]["output"][0]["content"] == [
        {"type": "output_text", "text": "You said: Hi."}
    ]
    assert done["response"]["usage"]["output_token_details"]["audio_tokens"] == 0


async def test_per_response_settings_override_the_session(harness: Harness) -> None:
    await say(harness, "Hi")
    await harness.send(
        ev.response_create(
            {
                "output_modalities": ["audio"],
                "audio": {"output": {"format": {"type": "audio/pcmu"}}},
                "max_output_tokens": 2,
                "metadata": {"topic": "greeting"},
            }
        )
    )
    done = await harness.wait_for("response.done")
    response = done["response"]
    assert harness.of("response.created")[0]["response"]["metadata"] == {"topic": "greeting"}
    assert response["metadata"] == {"topic": "greeting"}
    assert response["status"] == "incomplete"
    assert response["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert response["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert response["output"][0]["content"][0]["transcript"] == "You said:"
    audio = b"".join(
        base64.b64decode(d["delta"]) for d in harness.of("response.output_audio.delta")
    )
    assert len(audio) == 2 * WORD_MS * 8  # µ-law at 8 kHz: one byte a sample


async def test_a_second_default_response_is_refused_while_one_is_active(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(make_engines(word_delay_s=0.05))
    await say(h, "Tell me a long story about a cat and a dog")
    await h.send(ev.response_create())
    active = h.of("response.created")[0]["response"]["id"]
    await h.send(ev.response_create(event_id="second"))
    error = h.last_error()
    assert error["code"] == "conversation_already_has_active_response"
    assert error["event_id"] == "second"
    assert error["message"] == (
        f"Conversation already has an active response in progress: {active}. "
        "Wait until the response is finished before creating a new one."
    )
    # out of band may run beside it, outside the conversation
    await h.send(
        ev.response_create(
            {
                "conversation": "none",
                "output_modalities": ["text"],
                "metadata": {"purpose": "classify"},
                "input": [ev.user_text_item("classify this")],
                "instructions": "Classify.",
            }
        )
    )
    created = h.of("response.created")
    assert len(created) == 2
    oob_id = created[1]["response"]["id"]
    assert created[1]["response"]["conversation_id"] is None
    oob_done = await h.wait_for("response.done")
    assert oob_done["response"]["id"] == oob_id  # the short one ends first
    assert oob_done["response"]["output"][0]["content"][0]["text"] == "You said: classify this."
    oob_item = oob_done["response"]["output"][0]["id"]
    assert oob_item not in h.connection.conversation
    assert all(e["item"]["id"] != oob_item for e in h.of("conversation.item.added"))
    default_done = await h.wait_for("response.done", 2)
    assert default_done["response"]["id"] == active
    assert default_done["response"]["status"] == "completed"


async def test_out_of_band_input_may_reference_conversation_items(
    make_harness: Callable[..., Harness],
) -> None:
    engines = make_engines()
    llm = RecordingLLM()
    engines.llm = llm
    h = make_harness(engines)
    await h.send(ev.conversation_item_create(ev.user_text_item("first", item_id="i1")))
    await h.send(ev.conversation_item_create(ev.user_text_item("second", item_id="i2")))
    # the SDK types item references apart from its client-event union: skip that check
    await h.send(
        ev.response_create(
            {"conversation": "none", "input": [{"type": "item_reference", "id": "i1"}]}
        ),
        valid=False,
    )
    await h.wait_for("response.done")
    assert [m.content for m in llm.seen[0] if m.role == "user"] == ["first"]
    await h.send(
        ev.response_create(
            {"conversation": "none", "input": [{"type": "item_reference", "id": "nope"}]},
            event_id="r",
        ),
        valid=False,
    )
    error = h.last_error()
    assert (error["param"], error["event_id"]) == ("response.input[0].id", "r")


async def test_cancel_emits_every_done_event_with_client_cancelled(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(make_engines(word_delay_s=0.05))
    await say(h, "One. Two. Three. Four. Five. Six. Seven. Eight. Nine. Ten")
    await h.send(ev.response_create())
    await h.wait_for("response.output_audio.delta")
    start = len(h.events)
    await h.send(ev.response_cancel())
    assert h.types(start) == AUDIO_END  # synchronous: all of it before cancel returns
    done = h.events[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    heard = done["output"][0]["content"][0]["transcript"]
    assert heard.startswith("You said: One.") and "Ten" not in heard
    await h.send(ev.response_cancel(event_id="again"))
    error = h.last_error()
    assert (error["code"], error["event_id"]) == ("response_cancel_not_active", "again")
    await h.send(ev.response_cancel(response_id="resp_unknown"))
    assert h.last_error()["code"] == "response_cancel_not_active"
    before = len(h.events)
    await h.send(ev.response_create())  # the conversation is free again
    assert h.types(before)[0] == "response.created"


async def test_speech_interrupts_the_response_and_truncation_trims_what_was_not_heard(
    make_harness: Callable[..., Harness],
) -> None:
    engines = make_engines(word_delay_s=0.05)
    llm = RecordingLLM(word_delay_s=0.05)
    engines.llm = llm
    h = make_harness(engines)
    await say(h, "alpha bravo charlie delta. echo foxtrot golf hotel. india juliet kilo lima")
    await h.send(ev.response_create())
    await h.wait_for("response.output_audio.delta", 3)
    start = len(h.events)
    await h.append(tone_speech("stop please"))
    types = h.types(start)
    assert types[0] == "input_audio_buffer.speech_started"
    assert types[1:7] == AUDIO_END
    done = h.events[start + 6]["response"]
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    item = done["output"][0]
    sent = b"".join(base64.b64decode(d["delta"]) for d in h.of("response.output_audio.delta"))
    sent_ms = len(sent) // 48
    # the client heard 600 ms: truncate there
    await h.send(ev.conversation_item_truncate(item["id"], sent_ms + 1000, event_id="too_far"))
    error = h.last_error()
    assert (error["code"], error["param"], error["event_id"]) == (
        "invalid_value",
        "audio_end_ms",
        "too_far",
    )
    assert (
        error["message"]
        == f"Audio content of {sent_ms}ms is already shorter than {sent_ms + 1000}ms"
    )
    await h.send(ev.conversation_item_truncate(item["id"], 600))
    assert h.events[-1]["type"] == "conversation.item.truncated"
    assert h.events[-1]["audio_end_ms"] == 600
    await h.send(ev.conversation_item_retrieve(item["id"]))
    retrieved = h.events[-1]["item"]["content"][0]
    assert len(base64.b64decode(retrieved["audio"])) == 600 * 48
    assert retrieved["transcript"] == "You said:"  # 2 of the first sentence's words fit 600 ms
    # the user stops talking; the next reply's context holds only what was heard
    await h.append(silence(600))
    await h.wait_for("response.done", 2)
    assistant = [m.content for m in llm.seen[-1] if m.role == "assistant"]
    assert assistant == ["You said:"]


async def test_interrupt_response_false_lets_the_response_finish(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(make_engines(word_delay_s=0.02))
    td = {"type": "server_vad", "interrupt_response": False, "create_response": False}
    await h.send(ev.session_update({"audio": {"input": {"turn_detection": td}}}))
    await say(h, "one two three four five six")
    await h.send(ev.response_create())
    await h.wait_for("response.output_audio.delta")
    await h.append(tone_speech("hey") + silence(600))
    assert h.of("input_audio_buffer.speech_started")
    done = await h.wait_for("response.done")
    assert done["response"]["status"] == "completed"


async def test_function_call_then_output_then_follow_up(
    make_harness: Callable[..., Harness],
) -> None:
    engines = make_engines()
    llm = RecordingLLM()
    engines.llm = llm
    h = make_harness(engines)
    await h.send(ev.session_update({"tools": [WEATHER_TOOL], "instructions": "Use tools."}))
    await say(h, 'call get_weather {"city": "Paris"}')
    start = len(h.events)
    await h.send(ev.response_create())
    done = await h.wait_for("response.done")
    assert h.types(start) == [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    call = done["response"]["output"][0]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert call["arguments"] == '{"city": "Paris"}' and call["status"] == "completed"
    assert call["call_id"].startswith("call_")
    added = h.of("response.output_item.added")[0]["item"]
    assert (added["arguments"], added["status"]) == ("", "in_progress")
    args_done = h.of("response.function_call_arguments.done")[0]
    assert args_done["call_id"] == call["call_id"] and args_done["item_id"] == call["id"]
    n = len(h.events)
    await h.send(
        ev.conversation_item_create(ev.function_call_output_item(call["call_id"], '{"temp_c": 18}'))
    )
    assert h.types(n) == ["conversation.item.added", "conversation.item.done"]  # no response
    await h.send(ev.response_create())
    follow_up = await h.wait_for("response.done", 2)
    transcript = follow_up["response"]["output"][0]["content"][0]["transcript"]
    assert transcript == 'Tool get_weather returned {"temp_c": 18}.'
    context = llm.seen[-1]
    assert context[0] == ChatMessage("system", "Use tools.")
    assert context[-2].tool_calls[0].name == "get_weather"
    assert context[-2].tool_calls[0].call_id == call["call_id"]
    assert (context[-1].role, context[-1].tool_call_id) == ("tool", call["call_id"])


async def test_voice_cannot_change_once_audio_was_produced(harness: Harness) -> None:
    await harness.send(ev.session_update({"audio": {"output": {"voice": "cedar"}}}))
    assert harness.events[-1]["session"]["audio"]["output"]["voice"] == "cedar"
    await say(harness, "Hi")
    await harness.send(ev.response_create())
    await harness.wait_for("response.done")
    await harness.send(ev.session_update({"audio": {"output": {"voice": "marin"}}}))
    assert harness.last_error()["param"] == "session.audio.output.voice"


class BrokenLLM(LLM):
    async def stream(self, messages: list[ChatMessage], **kw: Any) -> AsyncIterator[LLMChunk]:
        if messages:
            raise RuntimeError("the model fell over")
        yield TextDelta("")  # pragma: no cover (makes this an async generator)


async def test_an_engine_failure_fails_the_response_not_the_session(
    make_harness: Callable[..., Harness],
) -> None:
    engines = make_engines()
    engines.llm = BrokenLLM()
    h = make_harness(engines)
    await say(h, "Hi")
    await h.send(ev.response_create())
    done = await h.wait_for("response.done")
    assert done["response"]["status"] == "failed"
    assert done["response"]["status_details"]["error"]["message"] == "the model fell over"
    await say(h, "still there?")
    assert h.events[-1]["type"] == "conversation.item.done"


async def test_usage_counts_user_audio_at_one_token_per_100ms(harness: Harness) -> None:
    await harness.send(ev.session_update({"audio": {"input": {"turn_detection": None}}}))
    await harness.append(silence(1500))
    await harness.send(ev.input_audio_buffer_commit())
    await harness.send(ev.response_create({"output_modalities": ["text"]}))
    done = await harness.wait_for("response.done")
    details = done["response"]["usage"]["input_token_details"]
    assert details["audio_tokens"] == 15
    assert details["cached_tokens"] == 0


def test_tone_voice_timing_assumed_here() -> None:
    assert ToneVoice().duration_s("a b") * 1000 == 2 * WORD_MS


async def test_the_first_clause_is_voiced_without_waiting_for_the_sentence(
    harness: Harness,
) -> None:
    await say(harness, "alpha bravo, charlie delta echo foxtrot golf hotel")
    await harness.send(ev.response_create())
    await harness.wait_for("response.done")
    deltas = [d["delta"] for d in harness.of("response.output_audio_transcript.delta")]
    assert deltas == ["You said: alpha bravo,", " charlie delta echo foxtrot golf hotel."]


async def test_without_a_clause_mark_the_first_four_words_go_first(harness: Harness) -> None:
    await say(harness, "alpha bravo charlie delta echo, foxtrot golf hotel")
    await harness.send(ev.response_create())
    await harness.wait_for("response.done")
    deltas = [d["delta"] for d in harness.of("response.output_audio_transcript.delta")]
    assert deltas == ["You said: alpha bravo", " charlie delta echo, foxtrot golf hotel."]


async def test_a_first_clause_of_three_words_is_enough_and_two_are_not(harness: Harness) -> None:
    await say(harness, "Paris, of course, is lovely")
    await harness.send(ev.response_create())
    await harness.wait_for("response.done")
    deltas = [d["delta"] for d in harness.of("response.output_audio_transcript.delta")]
    # "You said:" has two words: not cut there; "You said: Paris," has three
    assert deltas == ["You said: Paris,", " of course, is lovely."]


async def test_per_response_tools_and_instructions(make_harness: Callable[..., Harness]) -> None:
    engines = make_engines()
    llm = RecordingLLM()
    engines.llm = llm
    h = make_harness(engines)
    await say(h, "What's the weather?")
    await h.send(
        ev.response_create(
            {
                "instructions": "Only for this one.",
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "name": "get_weather"},
            }
        )
    )
    done = await h.wait_for("response.done")
    assert done["response"]["output"][0]["name"] == "get_weather"
    assert llm.seen[0][0] == ChatMessage("system", "Only for this one.")
    assert h.connection.session["tools"] == []  # the session itself is unchanged


async def test_idle_timeout_after_the_reply_has_played(harness: Harness) -> None:
    td = {"type": "server_vad", "idle_timeout_ms": 5000}
    await harness.send(ev.session_update({"audio": {"input": {"turn_detection": td}}}))
    await say(harness, "Hi there")
    await harness.send(ev.response_create())
    response = harness.connection.active
    assert response is not None
    await harness.wait_for("response.done")
    finished_at = asyncio.get_running_loop().time()
    connection = harness.connection
    idle = connection._idle
    assert idle is not None and response.first_audio_at is not None
    played_s = 4 * WORD_MS / 1000  # "You said: Hi there."
    # counted from the end of playback (or from now, had generation been slower than playback)
    playback_end = max(response.first_audio_at + played_s, finished_at)
    assert idle.when() == pytest.approx(playback_end + 5, abs=0.1)
    await harness.append(silence(300))
    start = len(harness.events)
    connection._idle_timeout()  # what the timer does when it fires
    assert harness.types(start)[:6] == [
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "rate_limits.updated",
    ]
    triggered = harness.events[start]
    assert triggered["item_id"] == harness.events[start + 1]["item_id"]
    assert triggered["audio_end_ms"] >= triggered["audio_start_ms"]
    await harness.wait_for("response.done", 2)


async def test_speech_disarms_the_idle_timeout(harness: Harness) -> None:
    td = {"type": "server_vad", "idle_timeout_ms": 5000, "create_response": False}
    await harness.send(ev.session_update({"audio": {"input": {"turn_detection": td}}}))
    await say(harness, "Hi")
    await harness.send(ev.response_create())
    await harness.wait_for("response.done")
    assert harness.connection._idle is not None
    await harness.append(tone_speech("hello"))
    assert harness.of("input_audio_buffer.speech_started")
    assert harness.connection._idle is None


class BrokenVoice(ToneVoice):
    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        raise RuntimeError("the voice is hoarse")


async def test_a_voice_failure_fails_the_response_with_every_done_event(
    make_harness: Callable[..., Harness],
) -> None:
    engines = make_engines()
    engines.voice = BrokenVoice()
    h = make_harness(engines)
    await say(h, "Hi")
    start = len(h.events)
    await h.send(ev.response_create())
    done = await h.wait_for("response.done")
    assert h.types(start)[-6:] == AUDIO_END
    assert done["response"]["status"] == "failed"
    assert done["response"]["output"][0]["status"] == "incomplete"
    assert done["response"]["status_details"]["error"]["message"] == "the voice is hoarse"

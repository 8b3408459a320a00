"""The scripted engines: rules of ScriptedLLM, exact timing of ToneVoice, injected transcripts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import numpy as np
import pytest

from realtalk.server.engines.base import ChatMessage, LLMChunk, LLMUsage, TextDelta, ToolCall
from realtalk.server.engines.scripted import (
    EMPTY_INPUT_REPLY,
    ScriptedLLM,
    ScriptedTranscriber,
    ToneVoice,
)

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


async def collect(
    messages: list[ChatMessage], tools: list[dict[str, Any]] | None = None, **kw: Any
) -> list[LLMChunk]:
    return [c async for c in ScriptedLLM().stream(messages, tools=tools or [], **kw)]


def text_of(chunks: list[LLMChunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


async def test_reply_echoes_the_user_word_by_word_then_usage() -> None:
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hello there, robot!")]
    chunks = await collect(messages)
    assert text_of(chunks) == "You said: Hello there, robot."
    assert [c.text for c in chunks if isinstance(c, TextDelta)][:2] == ["You", " said:"]
    assert chunks[-1] == LLMUsage(input_tokens=5, output_tokens=5)
    assert sum(isinstance(c, LLMUsage) for c in chunks) == 1


async def test_empty_user_text_gets_the_canned_reply() -> None:
    assert text_of(await collect([ChatMessage("user", "  ")])) == EMPTY_INPUT_REPLY
    assert text_of(await collect([])) == EMPTY_INPUT_REPLY


async def test_call_phrase_with_json_makes_a_tool_call() -> None:
    messages = [ChatMessage("user", 'please call get_weather {"city": "Paris"} now')]
    chunks = await collect(messages, [WEATHER])
    calls = [c for c in chunks if isinstance(c, ToolCall)]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    assert calls[0].call_id
    assert text_of(chunks) == ""
    assert isinstance(chunks[-1], LLMUsage)


async def test_call_phrase_without_json_or_with_bad_json() -> None:
    bare = await collect([ChatMessage("user", "call get_time")], [])
    assert bare[0] == ToolCall("get_time", "{}", bare[0].call_id)  # type: ignore[union-attr]
    bad = await collect([ChatMessage("user", "call get_weather {city: Paris")], [WEATHER])
    assert isinstance(bad[0], ToolCall) and bad[0].arguments == "{city: Paris"


async def test_tool_choice_none_disables_calls_and_required_forces_one() -> None:
    said = [ChatMessage("user", "call get_weather")]
    assert text_of(await collect(said, [WEATHER], tool_choice="none")).startswith("You said")
    forced = await collect([ChatMessage("user", "hi")], [WEATHER], tool_choice="required")
    assert isinstance(forced[0], ToolCall) and forced[0].name == "get_weather"
    named = await collect(
        [ChatMessage("user", "hi")], [WEATHER], tool_choice={"type": "function", "name": "x"}
    )
    assert isinstance(named[0], ToolCall) and named[0].name == "x"


async def test_tool_result_is_reported_by_name_found_through_the_call_id() -> None:
    messages = [
        ChatMessage("user", "call get_weather"),
        ChatMessage("assistant", "", tool_calls=[ToolCall("get_weather", "{}", "c1")]),
        ChatMessage("tool", '{"temp": 21}', tool_call_id="c1"),
    ]
    assert text_of(await collect(messages, [WEATHER])) == 'Tool get_weather returned {"temp": 21}.'
    messages[-1].name = "explicit"
    assert text_of(await collect(messages, [WEATHER])).startswith("Tool explicit returned")


async def test_max_output_tokens_cuts_the_reply() -> None:
    chunks = await collect([ChatMessage("user", "one two three four")], max_output_tokens=3)
    assert text_of(chunks) == "You said: one"
    assert chunks[-1] == LLMUsage(input_tokens=4, output_tokens=3)


async def test_closing_the_stream_early_stops_it() -> None:
    llm = ScriptedLLM(word_delay_s=0.01)
    stream = llm.stream([ChatMessage("user", "a b c d e f g h")], tools=[])
    got = []
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            got.append(chunk)
            if len(got) == 2:
                break
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    assert len(got) == 2


async def test_cancelling_the_consuming_task_ends_it() -> None:
    llm = ScriptedLLM(word_delay_s=0.05)
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in llm.stream([ChatMessage("user", "a b c d e f g h")], tools=[]):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_tone_voice_duration_is_exact_and_one_chunk_per_sentence() -> None:
    voice = ToneVoice()
    text = "Hello there. How are you today?"
    chunks = list(voice.synthesize(text))
    assert len(chunks) == 2
    assert all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    assert [c.size for c in chunks] == [2 * 6000, 4 * 6000]  # (200 + 50) ms at 24 kHz per word
    assert sum(c.size for c in chunks) / voice.sample_rate == pytest.approx(voice.duration_s(text))


def test_tone_voice_is_audible_deterministic_and_text_dependent() -> None:
    voice = ToneVoice()
    a = np.concatenate(list(voice.synthesize("alpha")))
    assert np.abs(a[:4800]).max() > 0.2 * 32767  # the burst
    assert not a[4800:].any()  # the gap is silent
    np.testing.assert_array_equal(a, np.concatenate(list(ToneVoice().synthesize("alpha"))))
    assert not np.array_equal(a, np.concatenate(list(voice.synthesize("omega"))))
    assert list(voice.synthesize("")) == []


def test_scripted_transcriber_injected_then_describes_duration() -> None:
    transcriber = ScriptedTranscriber(["first"])
    transcriber.set_next("second")
    audio = np.zeros(24000, np.float32)  # 1.5 s
    texts = [transcriber.transcribe(audio).text for _ in range(3)]
    assert texts == ["first", "second", "(speech 1.5 s)"]
    assert transcriber.transcribe(audio).duration_s == pytest.approx(1.5)
    with pytest.raises(ValueError, match="int16"):
        transcriber.transcribe(np.zeros(10, np.int16))


def test_what_did_i_say_before_is_answered_from_the_conversation() -> None:
    said = [
        ChatMessage("user", "my name is Ada."),
        ChatMessage("assistant", "You said: my name is Ada."),
        ChatMessage("user", "What did I say before?"),
    ]
    assert ScriptedLLM.reply_text(said) == "Before that you said: my name is Ada."
    alone = [ChatMessage("user", "what did I say before")]
    assert ScriptedLLM.reply_text(alone) == "You said nothing before."

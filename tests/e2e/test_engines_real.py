"""The real offline engines, end to end: Piper speaks, Silero hears it, Whisper writes it down,
the local LLM (Qwen2.5 0.5B) answers or calls a tool, espeak-ng speaks too. Slow (model loads,
CPU inference)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import numpy as np
import pytest
import soxr

from realtalk.server.engines import Engines, load_engines
from realtalk.server.engines.base import ChatMessage, LLMChunk, LLMUsage, TextDelta, ToolCall
from realtalk.server.engines.espeak import EspeakVoice

pytestmark = pytest.mark.slow

SENTENCE = "The quick brown fox jumps over the lazy dog. Please call me back tomorrow morning."
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the reference length (case and punctuation ignored)."""

    def words(text: str) -> list[str]:
        return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()

    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hyp)] / max(len(ref), 1)


def test_word_error_rate_counts_substitutions_insertions_and_deletions() -> None:
    assert word_error_rate("a b c d", "A, b c d.") == 0.0
    assert word_error_rate("a b c d", "a x c") == 0.5  # one substitution, one deletion
    assert word_error_rate("a b", "a b c d") == 1.0  # two insertions


@pytest.fixture(scope="module")
def engines() -> Engines:
    return load_engines("local", voice="piper")


@pytest.fixture(scope="module")
def piper_speech(engines: Engines) -> tuple[list[np.ndarray], np.ndarray]:
    """Piper's chunks for SENTENCE, and the whole as float32 at 16 kHz."""
    chunks = list(engines.voice.synthesize(SENTENCE))
    audio = np.concatenate(chunks).astype(np.float32) / 32768
    return chunks, soxr.resample(audio, engines.voice.sample_rate, 16000).astype(np.float32)


def test_models_load_once_per_process(engines: Engines) -> None:
    lines: list[str] = []
    again = load_engines("local", voice="piper", progress=lines.append)
    assert again.vad is engines.vad and again.llm is engines.llm and again.voice is engines.voice
    assert again.transcriber is engines.transcriber
    assert not any(line.startswith("loading") for line in lines)
    assert engines.name == "local:silero+whisper-tiny.en+qwen-0.5b+piper"


def test_piper_speaks_one_chunk_per_sentence_at_a_plausible_length(
    engines: Engines, piper_speech: tuple[list[np.ndarray], np.ndarray]
) -> None:
    chunks, _ = piper_speech
    assert engines.voice.sample_rate == 22050
    assert len(chunks) == 2 and all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    seconds = sum(c.size for c in chunks) / engines.voice.sample_rate
    words = len(SENTENCE.split())
    assert 0.2 * words < seconds < 0.6 * words  # 2-5 words a second
    assert np.abs(np.concatenate(chunks)).max() > 10000  # audible, not silence


def test_espeak_speaks_at_a_plausible_length() -> None:
    voice = EspeakVoice()
    chunks = list(voice.synthesize(SENTENCE))
    assert len(chunks) == 2
    seconds = sum(c.size for c in chunks) / voice.sample_rate
    assert 0.2 * len(SENTENCE.split()) < seconds < 0.6 * len(SENTENCE.split())


def test_silero_hears_speech_and_not_silence_or_hiss(
    engines: Engines, piper_speech: tuple[list[np.ndarray], np.ndarray]
) -> None:
    _, speech = piper_speech
    stream = engines.vad.create_stream()
    silence = stream.feed(np.zeros(16000, np.float32))
    hiss = stream.feed(np.random.default_rng(1).normal(0, 0.003, 16000).astype(np.float32))
    spoken = stream.feed(speech)
    assert silence.max() < 0.2 and hiss.max() < 0.5
    assert (spoken > 0.5).mean() > 0.5  # most windows of speech count as speech
    assert spoken.size == (32000 % 512 + speech.size) // 512  # leftovers carried over


def test_whisper_writes_down_piper_speech(
    engines: Engines, piper_speech: tuple[list[np.ndarray], np.ndarray]
) -> None:
    _, speech = piper_speech
    transcript = engines.transcriber.transcribe(speech)
    assert word_error_rate(SENTENCE, transcript.text) <= 0.2, transcript.text
    assert transcript.duration_s == pytest.approx(speech.size / 16000)
    assert engines.transcriber.transcribe(np.zeros(800, np.float32)).text == ""  # 50 ms


async def reply(engines: Engines, text: str, **kw: Any) -> list[LLMChunk]:
    kw.setdefault("tools", [WEATHER])
    return [c async for c in engines.llm.stream([ChatMessage("user", text)], **kw)]


async def test_llama_answers_in_words_with_usage(engines: Engines) -> None:
    chunks = await reply(engines, "Tell me something nice about cats.")
    text = "".join(c.text for c in chunks if isinstance(c, TextDelta))
    assert text.strip() and not any(isinstance(c, ToolCall) for c in chunks)
    usage = chunks[-1]
    assert isinstance(usage, LLMUsage) and usage.input_tokens > 10 and usage.output_tokens > 0


async def test_llama_calls_the_weather_tool_with_schema_valid_arguments(engines: Engines) -> None:
    chunks = await reply(engines, "What's the weather like in Paris today?")
    calls = [c for c in chunks if isinstance(c, ToolCall)]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].call_id
    arguments = json.loads(calls[0].arguments)
    assert set(arguments) == {"city"} and isinstance(arguments["city"], str)
    assert "paris" in arguments["city"].lower()
    assert not any(isinstance(c, TextDelta) for c in chunks)


async def test_llama_turns_a_tool_result_into_words(engines: Engines) -> None:
    messages = [
        ChatMessage("user", "What's the weather like in Paris today?"),
        ChatMessage(
            "assistant", "", tool_calls=[ToolCall("get_weather", '{"city":"Paris"}', "c1")]
        ),
        ChatMessage("tool", '{"temperature_c": 21, "sky": "sunny"}', tool_call_id="c1"),
    ]
    chunks = [c async for c in engines.llm.stream(messages, tools=[WEATHER])]
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)).strip()
    assert not any(isinstance(c, ToolCall) for c in chunks)


async def test_llama_stops_when_closed_and_queues_concurrent_requests(engines: Engines) -> None:
    long = engines.llm.stream(
        [ChatMessage("user", "Tell me a long story about a dragon.")],
        tools=[],
        max_output_tokens=1_000_000,  # more than the context: clamped, not an error
    )
    async with contextlib.aclosing(long):
        async for chunk in long:
            assert isinstance(chunk, TextDelta)
            break
    # The model lock was released: two more requests, started together, both finish.
    a, b = await asyncio.wait_for(
        asyncio.gather(reply(engines, "Say hello."), reply(engines, "Say goodbye.")), 60
    )
    assert isinstance(a[-1], LLMUsage) and isinstance(b[-1], LLMUsage)


async def test_warming_what_llama_cpp_has_just_evaluated_asks_it_nothing(
    engines: Engines,
) -> None:
    runtime: Any = engines.llm.runtime  # type: ignore[attr-defined]
    server, asked = runtime._server, []

    class Counting:  # llama.cpp's server, counting the requests it gets
        def __getattr__(self, name: str) -> Any:
            return getattr(server, name)

        def handle_completions(self, request: str, callback: Any) -> Any:
            asked.append(json.loads(request)["prompt"])
            return server.handle_completions(request, callback)

    conversation = [ChatMessage("user", "Hi."), ChatMessage("assistant", "Hello! How can I help?")]
    runtime._server = Counting()
    try:
        await engines.llm.warm(conversation, [WEATHER])
        await engines.llm.warm(conversation, [WEATHER])  # as the user starts speaking
        assert len(asked) == 1
        await engines.llm.warm(conversation, [WEATHER], "What's the")  # their words: new
        assert len(asked) == 2 and asked[1].startswith(asked[0])
        await reply(engines, "Say hello.")  # another prompt evaluated since
        before = len(asked)
        await engines.llm.warm(conversation, [WEATHER])
        assert len(asked) == before + 1 and asked[-1] == asked[0]
    finally:
        runtime._server = server


async def test_the_answer_to_a_tool_result_does_not_evaluate_the_call_again(
    engines: Engines,
) -> None:
    runtime: Any = engines.llm.runtime  # type: ignore[attr-defined]
    server, timings = runtime._server, []

    class Timed:  # llama.cpp's server, keeping each request's last timings
        def __getattr__(self, name: str) -> Any:
            return getattr(server, name)

        def handle_completions(self, request: str, callback: Any) -> Any:
            timings.append({})

            def note(raw: str) -> Any:
                timings[-1].update(json.loads(raw).get("timings") or {})
                return callback(raw)

            return server.handle_completions(request, note)

    runtime._server = Timed()
    try:
        asked = [ChatMessage("user", "What's the weather like in Paris today?")]
        (call,) = [c for c in await reply(engines, asked[0].content) if isinstance(c, ToolCall)]
        calling, asked_before = timings[-1], len(timings)
        answered = [
            *asked,
            ChatMessage("assistant", "", tool_calls=[call]),
            ChatMessage("tool", '{"temperature_c": 21}', tool_call_id=call.call_id),
        ]
        [c async for c in engines.llm.stream(answered, tools=[WEATHER])]
        answering = timings[asked_before]  # its first request (a second may go on speaking)
    finally:
        runtime._server = server
    # llama.cpp's cache held the question and the call as the model wrote it: only the result
    # and what follows it were evaluated (the call rendered as text would be ~20 tokens more)
    written = calling["cache_n"] + calling["prompt_n"] + calling["predicted_n"]
    assert answering["cache_n"] >= written - 1

"""OpenAICompatLLM against a fake chat-completions server on loopback (aiohttp, SSE)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from realtalk.server.engines.base import (
    ChatMessage,
    EngineError,
    LLMChunk,
    LLMUsage,
    TextDelta,
    ToolCall,
)
from realtalk.server.engines.openai_compat import OpenAICompatLLM, chat_messages

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}

Chunks = list[dict[str, Any]]


class FakeEndpoint:
    """Answers POST /v1/chat/completions with the SSE chunks a test sets; records requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.chunks: Chunks = []
        self.status = 200
        self.delay_s = 0.0
        self.disconnected = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.status != 200:
            return web.Response(status=self.status, text='{"error": "no such model"}')
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for chunk in self.chunks:
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
                await asyncio.sleep(self.delay_s)
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[FakeEndpoint, str]]:
    fake = FakeEndpoint()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield fake, f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


def delta(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


async def collect(llm: OpenAICompatLLM, **kw: Any) -> list[LLMChunk]:
    kw.setdefault("tools", [])
    return [c async for c in llm.stream([ChatMessage("user", "hi")], **kw)]


async def test_text_streams_as_deltas_and_usage_comes_last(
    endpoint: tuple[FakeEndpoint, str],
) -> None:
    fake, url = endpoint
    fake.chunks = [
        delta(role="assistant"),
        delta(content="Hello"),
        delta(content=" there."),
        {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}},
    ]
    chunks = await collect(OpenAICompatLLM(url, "tiny", "sk-test"), max_output_tokens=40)
    assert chunks == [TextDelta("Hello"), TextDelta(" there."), LLMUsage(12, 3)]
    body = fake.requests[0]
    assert body["model"] == "tiny" and body["stream"] is True and body["max_tokens"] == 40
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert "tools" not in body
    assert fake.headers[0]["Authorization"] == "Bearer sk-test"


async def test_tool_call_pieces_are_assembled_per_index(endpoint: tuple[FakeEndpoint, str]) -> None:
    fake, url = endpoint
    first = {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}}
    fake.chunks = [
        delta(tool_calls=[first]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
        delta(tool_calls=[{"index": 1, "id": "call_2", "function": {"name": "get_time"}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}]),
    ]
    tool_choice = {"type": "function", "name": "get_weather"}
    chunks = await collect(OpenAICompatLLM(url, "m"), tools=[WEATHER], tool_choice=tool_choice)
    assert chunks == [
        ToolCall("get_weather", '{"city": "Paris"}', "call_1"),
        ToolCall("get_time", "{}", "call_2"),
        LLMUsage(0, 0),  # the endpoint sent no usage
    ]
    body = fake.requests[0]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {k: WEATHER[k] for k in ("name", "description", "parameters")},
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert "Authorization" not in fake.headers[0]


async def test_http_errors_become_engine_errors_with_the_body(
    endpoint: tuple[FakeEndpoint, str],
) -> None:
    fake, url = endpoint
    fake.status = 404
    with pytest.raises(EngineError, match=r"404.*no such model"):
        await collect(OpenAICompatLLM(url + "/chat/completions", "m"))


async def test_closing_the_stream_hangs_up_on_the_endpoint(
    endpoint: tuple[FakeEndpoint, str],
) -> None:
    fake, url = endpoint
    fake.chunks = [delta(content=f"w{i} ") for i in range(200)]
    fake.delay_s = 0.01
    stream = OpenAICompatLLM(url, "m").stream([ChatMessage("user", "hi")], tools=[])
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            assert chunk == TextDelta("w0 ")
            break
    await asyncio.wait_for(fake.disconnected.wait(), 5.0)


def test_messages_carry_tool_calls_and_results_in_chat_form() -> None:
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("assistant", "", tool_calls=[ToolCall("get_weather", '{"city":"Oslo"}', "c9")]),
        ChatMessage("tool", '{"temp": 3}', tool_call_id="c9"),
    ]
    assert chat_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c9", "content": '{"temp": 3}'},
    ]


def test_url_without_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        OpenAICompatLLM("localhost:8080", "m")


def test_repr_never_shows_the_key() -> None:
    assert "sk-secret" not in repr(OpenAICompatLLM("http://x/v1", "m", "sk-secret"))

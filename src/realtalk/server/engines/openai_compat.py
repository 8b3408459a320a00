"""An LLM behind any OpenAI-compatible `/v1/chat/completions` endpoint (llama.cpp server, vLLM,
Ollama, OpenAI itself), streamed over server-sent events.

Realtime function tools are flat (`{"type": "function", "name", ...}`); chat completions nest them
(`{"type": "function", "function": {"name", ...}}`), and stream a tool call's arguments in pieces
keyed by `index`. This module converts the one into the other and assembles the pieces.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from realtalk.server.engines.base import (
    LLM,
    ChatMessage,
    EngineError,
    LLMChunk,
    LLMUsage,
    TextDelta,
    ToolCall,
)

__all__ = ["OpenAICompatLLM", "chat_messages", "chat_tool_choice", "chat_tools"]

logger = logging.getLogger("realtalk.server")


class OpenAICompatLLM(LLM):
    """Streams `POST {url}/chat/completions`; `url` is the API base (".../v1") or the full path."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None = None,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"LLM url must start with http:// or https://, got {url!r}")
        url = url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )

    def __repr__(self) -> str:  # never show the key
        return f"OpenAICompatLLM(url={self.url!r}, model={self.model!r})"

    async def stream(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any] = "auto",
        max_output_tokens: int | None = None,
    ) -> AsyncIterator[LLMChunk]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": chat_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = chat_tools(tools)
            body["tool_choice"] = chat_tool_choice(tool_choice)
        if max_output_tokens is not None:
            body["max_tokens"] = max_output_tokens
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"

        calls: dict[int, dict[str, str]] = {}  # index -> {"id", "name", "arguments"} so far
        usage: LLMUsage | None = None
        async with (
            aiohttp.ClientSession(timeout=self._timeout) as http,
            http.post(self.url, json=body, headers=headers) as response,
        ):
            if response.status >= 400:
                detail = (await response.text())[:500]
                raise EngineError(f"chat endpoint {self.url} answered {response.status}: {detail}")
            async for data in _sse_data(response.content):
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except json.JSONDecodeError as exc:
                    raise EngineError(
                        f"chat endpoint sent a chunk that is not JSON: {data[:200]}"
                    ) from exc
                if chunk.get("usage"):
                    u = chunk["usage"]
                    usage = LLMUsage(
                        int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
                    )
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        yield TextDelta(delta["content"])
                    for piece in delta.get("tool_calls") or []:
                        _merge_tool_call(calls, piece)
        for index in sorted(calls):
            call = calls[index]
            yield ToolCall(call["name"], call["arguments"] or "{}", call["id"] or None)
        yield usage or LLMUsage(0, 0)


async def _sse_data(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The `data:` payloads of an SSE stream (multi-line data joined with newlines)."""
    lines: list[str] = []
    async for raw in content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
    if lines:
        yield "\n".join(lines)


def _merge_tool_call(calls: dict[int, dict[str, str]], piece: dict[str, Any]) -> None:
    call = calls.setdefault(int(piece.get("index") or 0), {"id": "", "name": "", "arguments": ""})
    if piece.get("id"):
        call["id"] = piece["id"]
    function = piece.get("function") or {}
    if function.get("name"):
        call["name"] += function["name"]
    if function.get("arguments"):
        call["arguments"] += function["arguments"]


def chat_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """ChatMessages as chat-completions messages."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
            continue
        message: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.call_id or f"call_{i}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for i, c in enumerate(m.tool_calls)
            ]
        if m.name and m.role != "assistant":
            message["name"] = m.name
        out.append(message)
    return out


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Realtime function tools (flat) as chat-completions tools (nested under "function")."""
    out = []
    for tool in tools:
        if tool.get("type", "function") != "function":
            continue
        function = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
        out.append({"type": "function", "function": function})
    return out


def chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    """ "auto"/"none"/"required" pass through; a named Realtime function becomes the nested form."""
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return choice

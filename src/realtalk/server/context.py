"""What the LLM sees: conversation items mapped to chat messages.

The local LLM reads text only, so user audio enters as its transcript (the connection transcribes
every committed utterance whether or not the client asked for transcription events), assistant
audio as its transcript (already cut to what the user heard when the item was truncated), images
as a short note. Function calls and their outputs become tool calls and tool messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from realtalk.server.engines.base import ChatMessage, ToolCall

__all__ = ["Context", "build_context"]

#: Resolves the transcript of a user audio content part: (item id, content index) -> text.
TranscriptOf = Callable[[str, int], Awaitable[str]]


@dataclass
class Context:
    """The messages for one response, and how much user audio they stand for (for usage)."""

    messages: list[ChatMessage]
    audio_ms: int


async def build_context(
    instructions: str,
    items: Iterable[tuple[dict[str, Any], int]],
    transcript_of: TranscriptOf,
) -> Context:
    """``items`` are (public item, ms of audio it holds) in conversation order."""
    messages: list[ChatMessage] = []
    if instructions:
        messages.append(ChatMessage("system", instructions))
    audio_ms = 0
    names: dict[str, str] = {}  # call_id -> function name, for tool messages
    for item, item_audio_ms in items:
        kind = item.get("type")
        if kind == "message":
            text = await _message_text(item, transcript_of)
            role = item.get("role")
            if role == "user":
                audio_ms += item_audio_ms
            if text and role in ("system", "user", "assistant"):
                messages.append(ChatMessage(role, text))
        elif kind == "function_call":
            call_id = str(item.get("call_id") or item.get("id") or "")
            name = str(item.get("name", ""))
            names[call_id] = name
            call = ToolCall(name, str(item.get("arguments") or "{}"), call_id)
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and last.tool_calls:
                last.tool_calls.append(call)  # parallel calls belong to one assistant turn
            else:
                messages.append(ChatMessage("assistant", "", tool_calls=[call]))
        elif kind == "function_call_output":
            call_id = str(item.get("call_id", ""))
            messages.append(
                ChatMessage(
                    "tool",
                    str(item.get("output", "")),
                    tool_call_id=call_id,
                    name=names.get(call_id),
                )
            )
    return Context(messages, audio_ms)


async def _message_text(item: dict[str, Any], transcript_of: TranscriptOf) -> str:
    pieces: list[str] = []
    for index, part in enumerate(item.get("content") or []):
        ptype = part.get("type")
        if ptype in ("input_text", "output_text", "text"):
            pieces.append(str(part.get("text") or ""))
        elif ptype == "output_audio":
            pieces.append(str(part.get("transcript") or ""))
        elif ptype == "input_audio":
            transcript = part.get("transcript")
            if transcript is None:
                transcript = await transcript_of(str(item.get("id")), index)
            pieces.append(str(transcript or ""))
        elif ptype == "input_image":
            pieces.append("(The user shared an image.)")
    return " ".join(p.strip() for p in pieces if p and p.strip())

"""Qwen2.5-Coder-Instruct (0.5B by default, 1.5B on request) on llama.cpp: a local model that
chooses its own tools.

The prompt is ChatML with the session's tools in Qwen's own `<tool_call>` format
(`toolcalls.render_prompt`), and decoding is constrained so the reply is either plain speech or
one call of one of the session's tools with arguments that follow its schema
(`toolcalls.call_grammar`). Whether to call, and what, is the model's decision; nothing here looks
at the words of the question.

A reply that starts as speech streams out as it is written and stops after `max_sentences`
sentences. A reply that starts as a call is collected, parsed and validated; if it is unusable
(cut off, wrong arguments) the model gets one more try constrained to that tool's schema, and
after that the response fails with an engine error (an error event for the client; nothing is
spoken). After a tool result the model may only speak: it answers from the result in its own words.

The system prompt and tools are evaluated when a session is configured (`prefill`), so the first
question pays only for its own tokens.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from realtalk.server.engines.base import (
    LLM,
    ChatMessage,
    EngineError,
    LLMChunk,
    LLMUsage,
    TextDelta,
)
from realtalk.server.engines.llama import DEFAULT_SYSTEM_PROMPT, SENTENCE_END, TOOL_USE_PROMPT
from realtalk.server.engines.models import DEFAULT_MODEL, model_path
from realtalk.server.engines.runtime import Completion, LlamaRuntime
from realtalk.server.engines.threads import iterate_in_thread, run_in_thread
from realtalk.server.engines.toolcalls import (
    call_grammar,
    function_tools,
    parse_reply,
    render_prompt,
    starts_call,
    system_block,
)

__all__ = ["QwenLLM"]

logger = logging.getLogger("realtalk.server")

_LOOKAHEAD_TOKENS = 4
_MAX_CALL_TOKENS = 160


class QwenLLM(LLM):
    """A local Qwen2.5 GGUF that speaks or calls the session's tools; see the module docstring."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        model: str = DEFAULT_MODEL,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        max_reply_tokens: int = 80,
        max_sentences: int = 2,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT + " " + TOOL_USE_PROMPT,
        temperature: float = 0.0,
    ) -> None:
        self.runtime = LlamaRuntime(path or model_path(model), n_ctx=n_ctx, n_threads=n_threads)
        self.max_reply_tokens = max_reply_tokens
        self.max_sentences = max_sentences
        self.system_prompt = system_prompt
        self.temperature = temperature
        # The first evaluation pays for paging in the weights; pay it now, not in a user's turn.
        self.runtime.prefill(system_block(system_prompt, []))

    def _system(self, instructions: str | None) -> str:
        return f"{self.system_prompt}\n{instructions}" if instructions else self.system_prompt

    async def prefill(self, instructions: str, tools: list[dict[str, Any]]) -> None:
        prefix = system_block(self._system(instructions), function_tools(tools))
        await run_in_thread(lambda: self.runtime.prefill(prefix), name="realtalk-prefill")

    async def stream(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any] = "auto",
        max_output_tokens: int | None = None,
    ) -> AsyncIterator[LLMChunk]:
        def produce(stop: threading.Event) -> Iterator[LLMChunk]:
            return self._generate(messages, tools, tool_choice, max_output_tokens, stop)

        chunks = iterate_in_thread(produce, name="realtalk-qwen", lookahead=_LOOKAHEAD_TOKENS)
        async with contextlib.aclosing(chunks) as items:
            async for chunk in items:
                yield chunk

    def _generate(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any],
        max_output_tokens: int | None,
        stop: threading.Event,
    ) -> Iterator[LLMChunk]:
        listed = function_tools(tools)
        allowed, speech = _choices(listed, tool_choice)
        if messages and messages[-1].role == "tool":
            allowed, speech = [], True  # answer from the result, in words
        prompt = render_prompt(self.system_prompt, messages, listed)
        limit = max(1, min(max_output_tokens or self.max_reply_tokens, self.runtime.n_ctx // 4))
        usage = Completion()
        with self.runtime.lock:
            if stop.is_set():
                return
            pieces = self.runtime.complete(
                prompt,
                max_tokens=max(limit, _MAX_CALL_TOKENS) if allowed else limit,
                temperature=self.temperature,
                grammar=call_grammar(allowed, speech=speech),
                stop=stop,
                usage=usage,
            )
            text = ""
            is_call: bool | None = None
            with contextlib.closing(pieces):
                for piece in pieces:
                    text += piece
                    if is_call is None:
                        is_call = starts_call(text)
                        if is_call is False:
                            piece = text.lstrip()
                    if is_call is False:
                        yield TextDelta(piece)
                        if len(SENTENCE_END.findall(text)) >= self.max_sentences:
                            break
            if is_call:
                yield from self._call(prompt, text, allowed, usage, stop)
            yield LLMUsage(usage.prompt_tokens, usage.output_tokens)

    def _call(
        self,
        prompt: str,
        text: str,
        allowed: list[dict[str, Any]],
        usage: Completion,
        stop: threading.Event,
    ) -> Iterator[LLMChunk]:
        parsed = parse_reply(text, allowed)
        if parsed.call is None and not stop.is_set():
            logger.info("the model wrote an unusable call (%s); trying once more", parsed.error)
            named = [t for t in allowed if t["name"] == parsed.name] or allowed
            retry = Completion()
            again = "".join(
                self.runtime.complete(
                    prompt,
                    max_tokens=_MAX_CALL_TOKENS,
                    temperature=0.0,
                    grammar=call_grammar(named, speech=False),
                    stop=stop,
                    usage=retry,
                )
            )
            usage.output_tokens += retry.output_tokens
            parsed = parse_reply(again, named)
        if parsed.call is None:
            if stop.is_set():
                return
            raise EngineError(f"the local model could not write a valid tool call: {parsed.error}")
        parsed.call.call_id = "call_" + uuid.uuid4().hex[:20]
        yield parsed.call


def _choices(
    tools: list[dict[str, Any]], tool_choice: str | dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    """The tools the model may call and whether it may speak instead, for `tool_choice`."""
    if tool_choice == "none" or not tools:
        return [], True
    if isinstance(tool_choice, dict):
        named = [t for t in tools if t["name"] == tool_choice.get("name")]
        if not named:
            raise ValueError(f"tool_choice names {tool_choice.get('name')!r}, which is not a tool")
        return named, False
    return tools, tool_choice != "required"

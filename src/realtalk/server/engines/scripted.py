"""Deterministic engines for tests: exact replies, exact audio durations, no model packages.

- `ScriptedLLM` follows three rules on the last message (see its docstring), so a test can make the
  server call a tool by saying "call get_weather {"city": "Paris"}". A test may add its own rules
  (`ScriptRule`): "when the user says something matching X, call tool Y with Z, then say W".
- `ToneVoice` "speaks" each word as a 200 ms harmonic tone burst plus a 50 ms gap at 24 kHz, so the
  audio length of any reply is known in advance.
- `ScriptedTranscriber` returns injected text, or "(speech 1.2 s)" describing what it heard.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtalk.server.engines.base import (
    LLM,
    ChatMessage,
    LLMChunk,
    LLMUsage,
    TextDelta,
    ToolCall,
    Transcriber,
    Transcript,
    Voice,
    check_pcm16k,
)
from realtalk.server.engines.sentences import split_sentences

__all__ = ["EMPTY_INPUT_REPLY", "ScriptRule", "ScriptedLLM", "ScriptedTranscriber", "ToneVoice"]

EMPTY_INPUT_REPLY = "I did not hear anything."
_RECALL = re.compile(r"\bwhat did i say before\b", re.IGNORECASE)
_CALL = re.compile(r"\bcall\s+([A-Za-z_][A-Za-z0-9_.-]*)")
_TOOL_ERROR_PREFIX = "Error:"  # how realtalk.tools.ToolResult.failure words a failed call


@dataclass(frozen=True)
class ScriptRule:
    """A test's own rule: when the last user message matches ``pattern``, do this instead.

    - ``say`` alone: reply with that text.
    - ``call`` (with ``arguments``, a dict or raw JSON text): say ``say`` first if given, then
      call the tool. When its result comes back, reply with ``then_say`` (``{output}`` stands for
      the tool's output), or ``on_error`` if the tool failed (``{error}`` stands for the error
      text); without them the default rule 1 reply ("Tool <name> returned <output>.").

    ``pattern`` is a regular expression searched case-insensitively in the user's words.
    """

    pattern: str
    say: str | None = None
    call: str | None = None
    arguments: dict[str, Any] | str = field(default_factory=dict)
    then_say: str | None = None
    on_error: str | None = None

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"ScriptRule pattern {self.pattern!r} is not a regex: {exc}") from None
        if self.say is None and self.call is None:
            raise ValueError("a ScriptRule needs `say`, `call`, or both")
        if self.call is None and (self.then_say is not None or self.on_error is not None):
            raise ValueError("`then_say` and `on_error` need a `call`")

    def matches(self, text: str) -> bool:
        return re.search(self.pattern, text, re.IGNORECASE) is not None

    @property
    def arguments_json(self) -> str:
        args = self.arguments
        return args if isinstance(args, str) else json.dumps(args)

    def after_result(self, output: str) -> str | None:
        """The reply to this rule's tool result, or None for the default."""
        if output.startswith(_TOOL_ERROR_PREFIX) and self.on_error is not None:
            error = output[len(_TOOL_ERROR_PREFIX) :].strip()
            return self.on_error.replace("{error}", error).replace("{output}", output)
        if self.then_say is not None:
            return self.then_say.replace("{output}", output)
        return None


class ScriptedLLM(LLM):
    """Replies by rule, streaming word by word.

    1. The last message is a tool result → "Tool <name> returned <output>."
    2. The last user message contains `call <tool_name>`, optionally followed by a JSON object →
       a ToolCall with those arguments (`{}` without them). Arguments that are not valid JSON are
       passed on verbatim, so tests can exercise the server's handling of bad arguments. The name
       need not be among `tools` (tests of unknown tools need that); `tool_choice="none"` disables
       the rule. `tool_choice="required"` or a named function forces a call (to the named or the
       first tool) even without the phrase.
    3. The last user message asks "what did I say before" → "Before that you said: <the previous
       user message>." ("You said nothing before." when there is none): an answer only the
       conversation so far can give (tests of resumed conversations use it).
    4. Otherwise → "You said: <text>." (or `EMPTY_INPUT_REPLY` for empty text).

    `rules` (:class:`ScriptRule`) come first: the first one whose pattern matches the last user
    message decides the reply, and the reply to the result of a call it made. With none matching,
    the three rules above apply, so an LLM without rules behaves exactly as before.

    `max_output_tokens` cuts the reply after that many words. Usage counts words: every message's
    words as input, the emitted words (or the call's name and arguments) as output. `word_delay_s`
    spaces the words out in time, for tests that interrupt a reply mid-stream.
    """

    def __init__(self, word_delay_s: float = 0.0, rules: Iterable[ScriptRule] = ()) -> None:
        self.word_delay_s = word_delay_s
        self._rules: list[ScriptRule] = list(rules)
        self._lock = threading.Lock()

    @property
    def rules(self) -> list[ScriptRule]:
        with self._lock:
            return list(self._rules)

    def add_rule(self, rule: ScriptRule) -> None:
        """Add a rule after the existing ones (earlier rules win)."""
        if not isinstance(rule, ScriptRule):
            raise TypeError(f"expected a ScriptRule, got {type(rule).__name__}")
        with self._lock:
            self._rules.append(rule)

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    async def stream(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any] = "auto",
        max_output_tokens: int | None = None,
    ) -> AsyncIterator[LLMChunk]:
        input_tokens = sum(len(m.content.split()) for m in messages)
        preface, call = self._by_rule(messages, tool_choice)
        if preface is None and call is None:
            call = self._decide_call(messages, tools, tool_choice)
        words: list[str] = []
        if call is None or preface is not None:
            words = (preface if preface is not None else self.reply_text(messages)).split()
            if max_output_tokens is not None:
                words = words[: max(max_output_tokens, 0)]
        for i, word in enumerate(words):
            await asyncio.sleep(self.word_delay_s)  # also a cancellation point between words
            yield TextDelta(word if i == 0 else " " + word)
        output = len(words)
        if call is not None:
            await asyncio.sleep(self.word_delay_s)
            yield call
            output += len(call.name.split()) + len(call.arguments.split())
        yield LLMUsage(input_tokens=input_tokens, output_tokens=output)

    def _by_rule(
        self, messages: list[ChatMessage], tool_choice: str | dict[str, Any]
    ) -> tuple[str | None, ToolCall | None]:
        """(text to say, call to make) by the first matching ScriptRule; (None, None) if none."""
        rules = self.rules
        if not rules or not messages:
            return None, None
        last = messages[-1]
        if last.role == "tool":  # the rule that asked for this call, by what the user said then
            name = _tool_name(messages, last)
            asked = _user_text_before_call(messages, last)
            rule = next((r for r in rules if r.call == name and r.matches(asked)), None)
            return (rule.after_result(last.content) if rule else None), None
        text = _last_user_text(messages)
        rule = next((r for r in rules if r.matches(text)), None)
        if rule is None:
            return None, None
        if rule.call is None or tool_choice == "none":
            return rule.say or "", None
        return rule.say, ToolCall(rule.call, rule.arguments_json, f"call_scripted_{len(messages)}")

    @staticmethod
    def reply_text(messages: list[ChatMessage]) -> str:
        """The text rule 1 or 3 produces for `messages` (what the stream spells out)."""
        last = messages[-1] if messages else None
        if last is not None and last.role == "tool":
            return f"Tool {_tool_name(messages, last)} returned {last.content}."
        text = _last_user_text(messages).strip().rstrip(".!?…").strip()
        if _RECALL.search(text):
            earlier = [m.content for m in messages if m.role == "user"][:-1]
            if not earlier:
                return "You said nothing before."
            return f"Before that you said: {earlier[-1].strip().rstrip('.!?…').strip()}."
        return f"You said: {text}." if text else EMPTY_INPUT_REPLY

    def _decide_call(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any],
    ) -> ToolCall | None:
        if tool_choice == "none" or (messages and messages[-1].role == "tool"):
            return None
        call_id = f"call_scripted_{len(messages)}"
        text = _last_user_text(messages)
        match = _CALL.search(text)
        if match is not None:
            return ToolCall(match.group(1), _arguments_after(text[match.end() :]), call_id)
        if isinstance(tool_choice, dict) and tool_choice.get("name"):
            return ToolCall(str(tool_choice["name"]), "{}", call_id)
        if tool_choice == "required" and tools:
            return ToolCall(str(tools[0].get("name", "")), "{}", call_id)
        return None


def _last_user_text(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


def _user_text_before_call(messages: list[ChatMessage], result: ChatMessage) -> str:
    """What the user had said when the model made the call that `result` answers."""
    for i in range(len(messages) - 1, -1, -1):
        if any(
            c.call_id is not None and c.call_id == result.tool_call_id
            for c in messages[i].tool_calls
        ):
            return _last_user_text(messages[:i])
    return _last_user_text(messages)


def _tool_name(messages: list[ChatMessage], result: ChatMessage) -> str:
    """The tool a result belongs to: its own `name`, or the call with the same id."""
    if result.name:
        return result.name
    for message in reversed(messages):
        for call in message.tool_calls:
            if call.call_id is not None and call.call_id == result.tool_call_id:
                return call.name
    return "unknown"


def _arguments_after(rest: str) -> str:
    rest = rest.strip()
    if not rest.startswith("{"):
        return "{}"
    try:
        value, _ = json.JSONDecoder().raw_decode(rest)
    except json.JSONDecodeError:
        return rest
    return json.dumps(value)


class ToneVoice(Voice):
    """Synthetic speech with exact timing: a tone burst and a gap per word, one chunk per sentence.

    A sentence of n words lasts exactly n × (word_s + gap_s). Each word's pitch comes from its
    letters, so different texts sound (and look) different, but the same text is always identical.
    """

    sample_rate = 24000

    def __init__(self, word_s: float = 0.2, gap_s: float = 0.05, amplitude: float = 0.3) -> None:
        self.word_samples = round(word_s * self.sample_rate)
        self.gap_samples = round(gap_s * self.sample_rate)
        self.amplitude = amplitude
        t = np.arange(self.word_samples) / self.sample_rate
        fade = min(self.word_samples // 2, round(0.01 * self.sample_rate))
        envelope = np.ones(self.word_samples)
        envelope[:fade] = np.linspace(0.0, 1.0, fade)
        envelope[self.word_samples - fade :] = np.linspace(1.0, 0.0, fade)
        self._t = t
        self._envelope = envelope

    def duration_s(self, text: str) -> float:
        """How long `synthesize(text)` will sound, in seconds."""
        n = len(text.split())
        return n * (self.word_samples + self.gap_samples) / self.sample_rate

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for sentence in split_sentences(text):
            yield np.concatenate([self._word(w) for w in sentence.split()])

    def _word(self, word: str) -> np.ndarray:
        f0 = 110.0 + 10.0 * (sum(map(ord, word)) % 20)
        wave = sum(np.sin(2 * np.pi * f0 * k * self._t) / k for k in (1, 2, 3)) * (
            self.amplitude / 1.84
        )  # 1 + 1/2 + 1/3 ≈ 1.84 keeps the peak under `amplitude`
        out = np.zeros(self.word_samples + self.gap_samples, dtype=np.int16)
        out[: self.word_samples] = np.round(wave * self._envelope * 32767).astype(np.int16)
        return out


class ScriptedTranscriber(Transcriber):
    """Returns injected transcripts in order, else "(speech N.N s)" for the audio's duration."""

    def __init__(self, transcripts: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._queue: deque[str] = deque(transcripts)
        self.calls = 0
        self.prompts: list[str | None] = []  # the prompt of each call, in order

    def set_next(self, text: str) -> None:
        """Queue the text the next `transcribe` call returns (calls consume the queue in order)."""
        with self._lock:
            self._queue.append(text)

    def clear(self) -> None:
        """Forget queued texts (a turn that was never heard must not answer for the next one)."""
        with self._lock:
            self._queue.clear()

    def transcribe(self, pcm16k: np.ndarray, prompt: str | None = None) -> Transcript:
        pcm = check_pcm16k(pcm16k, "ScriptedTranscriber.transcribe")
        duration = pcm.size / self.sample_rate
        with self._lock:
            self.calls += 1
            self.prompts.append(prompt)
            text = self._queue.popleft() if self._queue else f"(speech {duration:.1f} s)"
        return Transcript(text=text, duration_s=duration, language="en")

"""An LLM judge for what exact expectations cannot say ("the reply is polite and answers").

NON-DETERMINISTIC: a judge is a language model; the same reply may pass once and fail the next
time, and a small local model judges poorly. Keep exact expectations for what must hold and use a
judge for tone and helpfulness, in tests marked ``@pytest.mark.realtalk_judge``.

A judge is any chat model behind realtalk's ``LLM`` engine interface: an OpenAI-compatible
endpoint (:meth:`Judge.openai_compatible`: OpenAI, llama.cpp server, vLLM, Ollama) or the local
offline model (:meth:`Judge.local`).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from realtalk.server.engines.base import LLM, ChatMessage, TextDelta
from realtalk.testing.expect import ExpectationFailed, TurnResult

__all__ = ["Judge", "Verdict"]

_PROMPT = """You judge one turn of a conversation between a user and a voice assistant.
Criterion: {intent}

Conversation:
{conversation}

Does the assistant's part meet the criterion? Answer with PASS or FAIL on the first line, then
one short sentence saying why."""
_VERDICT = re.compile(r"\b(PASS|FAIL)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    raw: str


class Judge:
    """Asks ``llm`` whether a turn meets a criterion (non-deterministic, see the module)."""

    def __init__(self, llm: LLM, *, max_output_tokens: int = 120) -> None:
        self.llm = llm
        self.max_output_tokens = max_output_tokens

    @classmethod
    def openai_compatible(cls, url: str, model: str, api_key: str | None = None) -> Judge:
        """A judge behind ``POST {url}/chat/completions`` (the key is sent, never logged)."""
        from realtalk.server.engines.openai_compat import OpenAICompatLLM

        return cls(OpenAICompatLLM(url, model, api_key))

    @classmethod
    def local(cls) -> Judge:
        """The local offline LLM (loads it once per process; a weak judge, but free)."""
        from realtalk.server.engines.loader import _llama

        return cls(_llama())

    async def verdict(self, turn: TurnResult, intent: str) -> Verdict:
        """The judge's verdict on ``turn`` against ``intent``."""
        lines = []
        if turn.heard:
            lines.append(f"User: {turn.heard}")
        for event in turn.conversation:
            if event.type == "agent_message":
                lines.append(f"Assistant: {event.text}")
            elif event.type == "function_call_output":
                lines.append(f"(tool {event.name} returned: {event.output})")
        prompt = _PROMPT.format(intent=intent, conversation="\n".join(lines) or "(nothing)")
        pieces: list[str] = []
        stream = self.llm.stream(
            [ChatMessage("user", prompt)], tools=[], tool_choice="none",
            max_output_tokens=self.max_output_tokens,
        )  # fmt: skip
        async with contextlib.aclosing(stream) as chunks:  # type: ignore[type-var]
            async for chunk in chunks:
                if isinstance(chunk, TextDelta):
                    pieces.append(chunk.text)
        raw = "".join(pieces).strip()
        match = _VERDICT.search(raw)
        passed = match is not None and match.group(1).upper() == "PASS"
        reason = raw[match.end() :].strip(" :.-\n") if match else raw
        return Verdict(passed, reason or "(no reason given)", raw)

    async def check(self, turn: TurnResult, intent: str) -> Verdict:
        """Raise :class:`ExpectationFailed` unless the judge says the turn meets ``intent``."""
        verdict = await self.verdict(turn, intent)
        if not verdict.passed:
            raise ExpectationFailed(
                f"\nExpected (LLM judge, non-deterministic): {intent}\n"
                f"     Got: FAIL: {verdict.reason}\n\n{turn.story()}"
            )
        return verdict

"""Configuring a session has the LLM evaluate its instructions and tools before the first turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from realtalk.server.engines.base import LLM, ChatMessage, LLMChunk, LLMUsage
from tests.conftest import make_engines
from tests.unit.server.conftest import Harness


class PrefillRecorder(LLM):
    def __init__(self) -> None:
        self.prefills: list[tuple[str, list[str]]] = []

    async def prefill(self, instructions: str, tools: list[dict[str, Any]]) -> None:
        self.prefills.append((instructions, [t["name"] for t in tools]))

    async def stream(  # type: ignore[override]
        self, messages: list[ChatMessage], **kw: Any
    ) -> AsyncIterator[LLMChunk]:
        yield LLMUsage(0, 0)


async def test_configuring_a_session_prefills_its_prompt_once_per_change() -> None:
    engines = make_engines()
    llm = engines.llm = PrefillRecorder()
    harness = Harness(engines)
    tool = {"type": "function", "name": "calculate", "parameters": {"type": "object"}}
    update = {"type": "session.update", "session": {"type": "realtime", "instructions": "Be."}}
    await harness.send(update)
    await until(lambda: len(llm.prefills) == 1)
    await harness.send(update)  # the same again: nothing new to evaluate
    await harness.send({"type": "session.update", "session": {"type": "realtime", "tools": [tool]}})
    await until(lambda: len(llm.prefills) == 2)
    assert llm.prefills == [("Be.", []), ("Be.", ["calculate"])]
    await harness.connection.aclose()


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)

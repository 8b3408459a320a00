"""A reply started on a guess: the LLM begins during the silence that may end the user's turn.

Ending a turn waits on silence (and on the end-of-turn model); the transcript of the utterance
is already speculated at the pause's first silent window (see ``transcription``). With that text
the LLM can start too: a :class:`ReplyGuess` runs the LLM on the context the reply *would*
have, and reads ahead until the first piece the voice would speak (or a function call) is
there, then stops pulling, so a guess never costs more than a few words of work. Given the
voice, it has that piece voiced too (an :class:`~realtalk.server.voicing.EarlyPiece`): when
the turn waits on a long silence (an unfinished-sounding sentence), the reply's first audio is
ready when the turn ends. When the turn ends, the response takes the guess only if the context
it really builds is the same (same messages, tools and limits); otherwise, or when the user
goes on speaking, the guess is closed and forgotten. Nothing of a guess is ever sent to the
client: the response replays its chunks as if the LLM had produced them just then.

A guess holds an open LLM stream (a local model may be busy with it), so every guess is closed as
soon as it is known to be useless, before any other LLM call of the connection starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from realtalk.server.engines.base import LLM, ChatMessage, LLMChunk, TextDelta, ToolCall, Voice
from realtalk.server.engines.sentences import PieceCutter

from .voicing import EarlyPiece

__all__ = ["GuessTask", "ReplyGuess", "discard"]

logger = logging.getLogger("realtalk.server")


class ReplyGuess:
    """One speculative LLM call; ``take`` it if the real context matches, else ``close`` it."""

    def __init__(
        self,
        llm: LLM,
        messages: list[ChatMessage],
        *,
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any],
        max_output_tokens: int | None,
        voice: Voice | None = None,
    ) -> None:
        """``voice``: the voice that would speak the reply (None: a text reply)."""
        self.messages = messages
        self._key = _key(tools, tool_choice, max_output_tokens)
        self._stream = llm.stream(
            messages, tools=tools, tool_choice=tool_choice, max_output_tokens=max_output_tokens
        )
        self._chunks: list[LLMChunk] = []
        self._ended = False  # the stream is exhausted
        self._grew = asyncio.Event()
        self._task = asyncio.create_task(self._read_ahead(), name="realtalk-reply-guess")
        self._closed = False
        self._taken = False
        self._voice = voice
        #: the reply's first piece, voiced as soon as it was written (with a voice)
        self.early: EarlyPiece | None = None

    @property
    def chunks_ready(self) -> int:
        return len(self._chunks)

    def fits(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any],
        max_output_tokens: int | None,
    ) -> bool:
        """Would the LLM have been called with exactly this?"""
        return (
            not self._closed
            and messages == self.messages
            and _key(tools, tool_choice, max_output_tokens) == self._key
        )

    async def _read_ahead(self) -> None:
        pieces = PieceCutter()  # cut as the response's voice will cut the same deltas
        try:
            while True:
                try:
                    chunk = await anext(self._stream)
                except StopAsyncIteration:
                    self._ended = True
                    self._voice_early(pieces.finish())
                    return
                self._chunks.append(chunk)
                self._grew.set()
                if isinstance(chunk, ToolCall):
                    return
                if isinstance(chunk, TextDelta):
                    first = pieces.add(chunk.text)
                    if first:  # the first piece the voice would speak is there
                        self._voice_early(first)
                        return
        finally:
            self._grew.set()

    def _voice_early(self, pieces: list[str]) -> None:
        if pieces and self._voice is not None and self.early is None and not self._closed:
            self.early = EarlyPiece(self._voice, pieces[0])

    async def take(self) -> AsyncIterator[LLMChunk]:
        """The reply: the chunks read ahead, then the rest of the same stream, on demand."""
        self._taken = True
        index = 0
        try:
            while True:
                while index < len(self._chunks):
                    yield self._chunks[index]
                    index += 1
                if self._task.done():
                    break
                self._grew.clear()
                if index < len(self._chunks) or self._task.done():
                    continue
                await self._grew.wait()
            self._task.result()  # an engine error surfaces in the response, as it would have
            if not self._ended:
                async for chunk in self._stream:
                    yield chunk
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop the LLM (waits for its thread to let go), then the early voice (a guess not
        taken does not need it; either way it has ended when this returns)."""
        self._closed = True
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
        with contextlib.suppress(Exception):
            await self._stream.aclose()  # type: ignore[attr-defined]
        if self.early is not None:
            if not self._taken:
                self.early.cancel()
            await asyncio.gather(self.early.audio, return_exceptions=True)


GuessTask = asyncio.Task["ReplyGuess | None"]


async def discard(task: GuessTask) -> None:
    """Forget a guess that is still being made or already made: stop it and its LLM."""
    if not task.done():
        task.cancel()
    (guess,) = await asyncio.gather(task, return_exceptions=True)
    if isinstance(guess, ReplyGuess):
        await guess.close()


def _key(tools: list[dict[str, Any]], tool_choice: str | dict[str, Any], limit: int | None) -> str:
    return json.dumps([tools, tool_choice, limit], sort_keys=True, default=str)

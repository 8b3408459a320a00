"""While the first piece of a reply is being voiced, the LLM is not read (on two cores it would
slow the voice down); the rest of the reply follows once the first piece's audio is out."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np

from realtalk.protocol import events as ev
from realtalk.server.engines.base import LLM, ChatMessage, LLMChunk, LLMUsage, TextDelta
from realtalk.server.engines.scripted import ToneVoice
from tests.conftest import make_engines
from tests.unit.server.conftest import Harness

REPLY = "First piece here. And then a second sentence follows it. And a third one."
WORDS = REPLY.split(" ")


class CountingLLM(LLM):
    """Streams WORDS and counts how many the response has taken so far."""

    def __init__(self) -> None:
        self.taken = 0

    async def stream(self, messages: list[ChatMessage], **kw: Any) -> AsyncIterator[LLMChunk]:
        for i, word in enumerate(WORDS):
            self.taken += 1
            yield TextDelta(word if i == 0 else " " + word)
        yield LLMUsage(1, len(WORDS))


class SlowVoice(ToneVoice):
    """Notes how many words the LLM had given when each piece started and ended."""

    def __init__(self, llm: CountingLLM) -> None:
        super().__init__()
        self.llm = llm
        self.lock = threading.Lock()
        self.spans: list[tuple[str, int, int]] = []

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        before = self.llm.taken
        time.sleep(0.2)
        yield from super().synthesize(text)
        with self.lock:
            self.spans.append((text, before, self.llm.taken))


async def test_the_llm_waits_while_the_first_piece_is_voiced() -> None:
    llm = CountingLLM()
    engines = make_engines()
    engines.llm = llm
    voice = SlowVoice(llm)
    engines.voice = voice
    h = Harness(engines)
    await h.send(ev.conversation_item_create(ev.user_text_item("hi")))
    await h.send(ev.response_create())
    done = await h.wait_for("response.done")
    assert done["response"]["status"] == "completed"

    first, *rest = voice.spans
    assert first[0] == "First piece here."
    assert first[1] == first[2], "the LLM was read while the first piece was being voiced"
    assert rest and rest[0][2] > first[2]  # and it went on afterwards
    transcript = h.of("response.output_audio_transcript.done")[0]["transcript"]
    assert transcript == " ".join(WORDS)
    await h.connection.aclose()

"""The reply starts in the pause: the LLM runs on the speculative transcript before the turn has
ended, its reply is used when the turn ends in that pause, and thrown away when the user goes on."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from realtalk.protocol import events as ev
from realtalk.server.engines.base import ChatMessage, LLMChunk
from realtalk.server.engines.scripted import ScriptedLLM, ScriptedTranscriber, ToneVoice
from realtalk.server.speculation import ReplyGuess
from tests.conftest import make_engines
from tests.unit.server.conftest import Harness, silence, tone_speech

VAD_500 = {
    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}
}


class WatchedLLM(ScriptedLLM):
    """The scripted LLM, noting each call, what the server had sent by then, and each close."""

    def __init__(self, harness: list[Harness]) -> None:
        super().__init__(word_delay_s=0.01)
        self._harness = harness
        self.calls: list[tuple[str, list[str]]] = []  # (user text, event types sent so far)
        self.closed = 0
        self.finished = 0

    async def stream(self, messages: list[ChatMessage], **options: Any) -> AsyncIterator[LLMChunk]:
        self.calls.append((messages[-1].content, self._harness[0].types()))
        try:
            async for chunk in super().stream(messages, **options):
                yield chunk
            self.finished += 1
        finally:
            self.closed += 1


class WatchedVoice(ToneVoice):
    """The tone voice, noting each text it speaks and what the server had sent by then."""

    def __init__(self, harness: list[Harness]) -> None:
        super().__init__()
        self._harness = harness
        self.spoken: list[tuple[str, list[str]]] = []

    def synthesize(self, text: str) -> Any:
        self.spoken.append((text, self._harness[0].types()))
        return super().synthesize(text)


async def _harness(
    kind: type[WatchedLLM] = WatchedLLM, transcriber: ScriptedTranscriber | None = None
) -> tuple[Harness, Any]:
    box: list[Harness] = []
    engines = make_engines()
    if transcriber is not None:
        engines.transcriber = transcriber
    llm = kind(box)
    engines.llm = llm
    h = Harness(engines, speculative_transcripts=True)
    box.append(h)
    await h.send(ev.session_update(VAD_500))
    return h, llm


async def _ask(h: Harness, words: str) -> dict[str, Any]:
    """Say ``words``, then 600 ms of silence in real time (so a guess has time to start and the
    500 ms turn ends in it); the response's ``response.done``."""
    await h.append(silence(200) + tone_speech(words), chunk_ms=20)
    for _ in range(30):
        await h.append(silence(20), chunk_ms=20)
        await asyncio.sleep(0.01)
    return await h.wait_for("response.done")


async def test_the_reply_begins_before_the_turn_has_ended_and_is_used() -> None:
    h, llm = await _harness()
    try:
        done = await _ask(h, "one two three four")
        assert len(llm.calls) == 1  # one LLM call: the guess became the reply
        text, sent_by_then = llm.calls[0]
        assert "input_audio_buffer.speech_stopped" not in sent_by_then
        assert done["response"]["status"] == "completed"
        transcript = done["response"]["output"][0]["content"][0]["transcript"]
        assert transcript == f"You said: {text.rstrip('.')}."
        assert llm.finished == 1
    finally:
        await h.connection.aclose()


async def test_a_guess_is_thrown_away_when_the_user_goes_on_speaking() -> None:
    h, llm = await _harness()
    voice = WatchedVoice([h])
    h.engines.voice = voice
    try:
        await h.append(silence(200) + tone_speech("one two"), chunk_ms=20)
        for _ in range(15):  # a 300 ms pause: long enough to guess, too short to end the turn
            await h.append(silence(20), chunk_ms=20)
            await asyncio.sleep(0.01)
        for _ in range(100):
            if llm.calls:
                break
            await asyncio.sleep(0.01)
        assert len(llm.calls) == 1
        await h.append(tone_speech("three four") + silence(700), chunk_ms=20)
        done = await h.wait_for("response.done")
        for _ in range(100):
            if llm.closed == len(llm.calls):
                break
            await asyncio.sleep(0.01)
        assert len(h.of("input_audio_buffer.speech_stopped")) == 1
        # the first guess was closed unfinished, the reply came from a fresh call on all the audio
        assert len(llm.calls) >= 2 and llm.closed == len(llm.calls)
        final_text = llm.calls[-1][0]
        assert final_text != llm.calls[0][0]
        transcript = done["response"]["output"][0]["content"][0]["transcript"]
        assert transcript == f"You said: {final_text.rstrip('.')}."
        # nothing of the first guess was heard, even if its first piece had been voiced
        audio = b"".join(base64.b64decode(e["delta"]) for e in h.of("response.output_audio.delta"))
        assert len(audio) == 2 * round(voice.duration_s(transcript) * voice.sample_rate)
    finally:
        await h.connection.aclose()


async def test_the_guess_voices_its_first_piece_while_the_turn_waits_and_the_reply_plays_it() -> (
    None
):
    """The turn waits 500 ms of silence; by then the guess's first piece is already voiced, once,
    and the reply sends that audio, then voices the rest as usual."""
    h, llm = await _harness()
    voice = WatchedVoice([h])
    h.engines.voice = voice
    try:
        done = await _ask(h, "one two three four")
        assert len(llm.calls) == 1
        transcript = done["response"]["output"][0]["content"][0]["transcript"]
        texts = [text for text, _sent in voice.spoken]
        assert " ".join(texts) == transcript  # every piece voiced once, none twice
        first, sent_by_then = voice.spoken[0]
        assert len(first.split()) < len(transcript.split())  # a first piece, not the reply
        assert "input_audio_buffer.speech_stopped" not in sent_by_then
        audio = b"".join(base64.b64decode(e["delta"]) for e in h.of("response.output_audio.delta"))
        assert len(audio) == 2 * round(voice.duration_s(transcript) * voice.sample_rate)
    finally:
        await h.connection.aclose()


async def test_a_text_reply_is_not_voiced_ahead() -> None:
    h, _llm = await _harness()
    voice = WatchedVoice([h])
    h.engines.voice = voice
    try:
        await h.send(ev.session_update({"output_modalities": ["text"]}))
        done = await _ask(h, "one two three four")
        assert done["response"]["output"][0]["content"][0]["type"] == "output_text"
        assert voice.spoken == []
    finally:
        await h.connection.aclose()


async def test_no_guess_without_speculative_transcripts() -> None:
    box: list[Harness] = []
    engines = make_engines()
    llm = WatchedLLM(box)
    engines.llm = llm
    h = Harness(engines, speculative_transcripts=False)
    box.append(h)
    try:
        await h.send(ev.session_update(VAD_500))
        await h.append(silence(200) + tone_speech("one two three") + silence(700), chunk_ms=20)
        await h.wait_for("response.done")
        (call,) = llm.calls
        assert "input_audio_buffer.speech_stopped" in call[1]
    finally:
        await h.connection.aclose()


class SlowTranscriber(ScriptedTranscriber):
    def transcribe(self, pcm16k: Any, prompt: str | None = None) -> Any:
        time.sleep(0.4)  # still transcribing when the turn ends
        return super().transcribe(pcm16k, prompt)


async def test_a_guess_still_being_made_when_the_turn_ends_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken: list[ReplyGuess] = []
    take = ReplyGuess.take

    def counting_take(self: ReplyGuess) -> Any:
        taken.append(self)
        return take(self)

    monkeypatch.setattr(ReplyGuess, "take", counting_take)
    box: list[Harness] = []
    engines = make_engines()
    engines.transcriber = SlowTranscriber()
    llm = WatchedLLM(box)
    engines.llm = llm
    h = Harness(engines, speculative_transcripts=True)
    box.append(h)
    try:
        vad_200 = {"audio": {"input": {"turn_detection": {"type": "server_vad"}}}}
        await h.send(ev.session_update(vad_200))  # the client's default: 200 ms of silence
        await h.append(silence(200) + tone_speech("one two three"), chunk_ms=20)
        for _ in range(20):
            await h.append(silence(20), chunk_ms=20)
            await asyncio.sleep(0.01)
        done = await h.wait_for("response.done")
        assert done["response"]["status"] == "completed"
        assert len(llm.calls) == 1
        assert len(taken) == 1  # the guess, taken while it was still waiting for its text
        assert "input_audio_buffer.speech_stopped" in llm.calls[0][1]
    finally:
        await h.connection.aclose()


class WarmedLLM(WatchedLLM):
    """Also notes each `warm` (the last message it was given) in one log with the LLM calls."""

    def __init__(self, harness: list[Harness]) -> None:
        super().__init__(harness)
        self.log: list[tuple[str, str]] = []
        self.words: list[str] = []  # the user's words each warm-up was given

    async def warm(
        self, messages: list[ChatMessage], tools: list[dict[str, Any]], user_words: str = ""
    ) -> None:
        self.log.append(("warm", messages[-1].content if messages else ""))
        self.words.append(user_words)

    async def stream(self, messages: list[ChatMessage], **options: Any) -> AsyncIterator[LLMChunk]:
        self.log.append(("reply", messages[-1].content))
        async for chunk in super().stream(messages, **options):
            yield chunk


async def test_the_llm_evaluates_the_conversation_while_the_user_speaks() -> None:
    h, llm = await _harness(WarmedLLM)
    try:
        await h.append(silence(200) + tone_speech("one two three four") + silence(700), chunk_ms=20)
        first = await h.wait_for("response.done")
        said = first["response"]["output"][0]["content"][0]["transcript"]
        await h.append(silence(200) + tone_speech("five six seven") + silence(700), chunk_ms=20)
        await h.wait_for("response.done", count=2)
        # Once a turn, before the reply to it, with the conversation the turn follows: at first
        # the system turn alone, then ending with what the agent said (evaluated first as that
        # reply ended, so the turn's own warm-up finds it done).
        kinds = [kind for kind, _ in llm.log[:5]]
        assert kinds == ["warm", "reply", "warm", "warm", "reply"]
        assert llm.log[2][1] == llm.log[3][1] == said
        assert llm.log[4][1] not in (said, llm.log[1][1])  # the second turn's own words
    finally:
        await h.connection.aclose()


class WordsLLM(WarmedLLM):
    warms_words = True  # can use the user's words so far: worth a partial transcript


async def test_a_longer_turn_warms_the_llm_with_the_words_said_so_far() -> None:
    """800 ms into the speech, the turn so far is transcribed and the LLM evaluates it too;
    nothing of that partial transcript reaches the client, and the reply answers the turn."""
    h, llm = await _harness(WordsLLM)
    transcriber = h.connection.engines.transcriber
    assert isinstance(transcriber, ScriptedTranscriber)
    try:
        speech = tone_speech("one two three four five six")  # 1.5 s
        cut = 48 * 1100  # 1.1 s in: inside the fifth word, not in a gap between words
        await h.append(silence(200) + speech[:cut], chunk_ms=20)
        for _ in range(500):  # the first warm-up (200 ms in) and the words' one (800 ms in)
            if len(llm.words) == 2:
                break
            await asyncio.sleep(0.01)
        assert llm.words[0] == ""
        assert llm.words[1].startswith("(speech 1.")  # the scripted transcriber's account
        for _ in range(20):  # what the rest hears (the gaps between words are heard too)
            transcriber.set_next("one two three four five six")
        await h.append(speech[cut:] + silence(700), chunk_ms=20)
        done = await h.wait_for("response.done")
        assert (
            "one two three four five six"
            in done["response"]["output"][0]["content"][0]["transcript"]
        )
        assert [kind for kind, _ in llm.log[:3]] == ["warm", "warm", "reply"]
        assert not h.of("conversation.item.input_audio_transcription.delta")
    finally:
        await h.connection.aclose()


async def test_a_turn_too_short_to_warm_still_gets_its_reply() -> None:
    h, llm = await _harness(WarmedLLM)
    try:
        await h.append(silence(200) + tone_speech("hi")[: 24 * 2 * 120] + silence(700), chunk_ms=20)
        done = await h.wait_for("response.done")
        assert done["response"]["status"] == "completed"
        assert llm.log[0][0] == "reply"  # 120 ms of speech: nothing to warm before the reply
    finally:
        await h.connection.aclose()


async def test_a_reply_that_leaves_the_floor_warms_the_llm_for_the_next_turn() -> None:
    """A greeting before any user turn: the conversation it leaves is evaluated as it ends
    (a local model re-evaluates its system turn for a greeting that asked something); a reply
    that called a tool warms nothing, as the client's result comes next."""
    h, llm = await _harness(WarmedLLM)
    try:
        await h.send(ev.response_create({"instructions": "Greet the user."}))
        await h.wait_for("response.done")
        for _ in range(100):
            if llm.log[-1][0] == "warm":
                break
            await asyncio.sleep(0.01)
        assert [kind for kind, _ in llm.log] == ["reply", "warm"]
        greeting = h.of("response.done")[0]["response"]["output"][0]["content"][0]["transcript"]
        assert llm.log[1][1] == greeting

        tool = {"type": "function", "name": "get_time", "parameters": {"type": "object"}}
        await h.send(ev.response_create({"tools": [tool], "tool_choice": "required"}))
        done = await h.wait_for("response.done", count=2)
        assert done["response"]["output"][0]["type"] == "function_call"
        await asyncio.sleep(0.1)
        assert [kind for kind, _ in llm.log] == ["reply", "warm", "reply"]
    finally:
        await h.connection.aclose()


class SlowPartsTranscriber(ScriptedTranscriber):
    """Takes 600 ms over audio under 1.2 s long (the partial transcript 800 ms into a turn)."""

    def transcribe(self, pcm16k: Any, prompt: str | None = None) -> Any:
        if len(pcm16k) < 1.2 * self.sample_rate:
            time.sleep(0.6)
        return super().transcribe(pcm16k, prompt)


async def test_words_transcribed_after_the_pause_began_do_not_warm_the_llm() -> None:
    """The partial transcript comes back once the user has stopped: the pause's own transcript
    and guess need the cores and the LLM now, so its words are not evaluated."""
    h, llm = await _harness(WordsLLM, SlowPartsTranscriber())
    try:
        await h.append(silence(200) + tone_speech("one two three four"), chunk_ms=20)
        await h.append(silence(700), chunk_ms=20)
        done = await h.wait_for("response.done")
        assert done["response"]["status"] == "completed"
        await asyncio.sleep(0.7)  # the slow partial transcript is back by now
        # the conversation was warmed (before the reply, and after it for the next turn), the
        # late words were not
        assert [kind for kind, _ in llm.log] == ["warm", "reply", "warm"]
        assert llm.words == ["", ""]
    finally:
        await h.connection.aclose()

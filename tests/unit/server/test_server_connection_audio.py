"""Input audio through the connection: manual commits, server VAD turns, transcription."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from realtalk.protocol import events as ev
from realtalk.server.engines.base import Transcriber, Transcript
from realtalk.server.engines.scripted import ScriptedTranscriber
from tests.conftest import make_engines
from tests.unit.server.conftest import Harness, silence, tone_speech

MANUAL = {"audio": {"input": {"turn_detection": None}}}
WITH_TRANSCRIPTION = {"audio": {"input": {"transcription": {"model": "whisper-1"}}}}


async def test_commit_under_100ms_is_refused_then_a_real_commit_makes_a_user_item(
    harness: Harness,
) -> None:
    await harness.send(ev.session_update(MANUAL))
    await harness.append(silence(60))
    await harness.send(ev.input_audio_buffer_commit(event_id="c1"))
    error = harness.last_error()
    assert (error["code"], error["event_id"]) == ("input_audio_buffer_commit_empty", "c1")
    assert "60.00ms" in error["message"]
    await harness.append(silence(240))  # 300 ms buffered in all: the failed commit kept it
    start = len(harness.events)
    await harness.send(ev.input_audio_buffer_commit())
    assert harness.types(start) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    item = harness.events[-1]["item"]
    assert item["role"] == "user" and item["content"] == [
        {"type": "input_audio", "transcript": None}
    ]
    assert harness.of("response.created") == []  # a manual commit never starts a response
    await harness.send(ev.conversation_item_retrieve(item["id"]))
    assert harness.events[-1]["item"]["content"][0]["audio"].startswith("AAAA")
    await harness.send(ev.response_create())
    done = await harness.wait_for("response.done")
    assert done["response"]["output"][0]["content"][0]["transcript"] == "You said: (speech 0.3 s)."


async def test_clear_empties_the_buffer(harness: Harness) -> None:
    await harness.send(ev.session_update(MANUAL))
    await harness.append(silence(500))
    await harness.send(ev.input_audio_buffer_clear())
    assert harness.events[-1]["type"] == "input_audio_buffer.cleared"
    await harness.send(ev.input_audio_buffer_commit())
    assert harness.last_error()["code"] == "input_audio_buffer_commit_empty"


async def test_server_vad_turn_in_order_with_transcription(harness: Harness) -> None:
    transcriber = harness.engines.transcriber
    assert isinstance(transcriber, ScriptedTranscriber)
    transcriber.set_next("What is the weather in Paris?")
    await harness.send(ev.session_update(WITH_TRANSCRIPTION))
    start = len(harness.events)
    speech = tone_speech("one two three four")  # 1000 ms
    await harness.append(silence(1000) + speech + silence(800))
    done = await harness.wait_for("response.done")
    types = harness.types(start)
    assert types[:5] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert types[5:7] == ["response.created", "rate_limits.updated"]
    # the transcript is ready before the reply starts (the LLM needs it)
    assert types.index("conversation.item.input_audio_transcription.completed") < types.index(
        "response.output_item.added"
    )
    started = harness.of("input_audio_buffer.speech_started")[0]
    stopped = harness.of("input_audio_buffer.speech_stopped")[0]
    committed = harness.of("input_audio_buffer.committed")[0]
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert 1000 - 300 - 40 <= started["audio_start_ms"] <= 1000 - 300 + 40  # prefix padding
    assert 1950 <= stopped["audio_end_ms"] <= 2050  # the last word ends at 1950 ms
    completed = harness.of("conversation.item.input_audio_transcription.completed")[0]
    assert completed["item_id"] == committed["item_id"]
    assert completed["transcript"] == "What is the weather in Paris?"
    assert completed["usage"]["type"] == "duration" and completed["usage"]["seconds"] > 1.0
    deltas = harness.of("conversation.item.input_audio_transcription.delta")
    assert "".join(d["delta"] for d in deltas) == completed["transcript"]
    reply = done["response"]["output"][0]["content"][0]["transcript"]
    assert reply == "You said: What is the weather in Paris."
    # the committed audio runs from audio_start_ms to where the turn was detected
    await harness.send(ev.conversation_item_retrieve(committed["item_id"]))
    item = harness.events[-1]["item"]
    assert item["content"][0]["transcript"] == "What is the weather in Paris?"
    import base64

    audio_ms = len(base64.b64decode(item["content"][0]["audio"])) / 48
    assert stopped["audio_end_ms"] - started["audio_start_ms"] <= audio_ms <= 2000


async def test_no_transcription_events_unless_asked_but_the_llm_still_hears(
    harness: Harness,
) -> None:
    transcriber = harness.engines.transcriber
    assert isinstance(transcriber, ScriptedTranscriber)
    transcriber.set_next("Good morning")
    await harness.append(tone_speech("a b c") + silence(800))
    done = await harness.wait_for("response.done")
    assert not [t for t in harness.types() if "transcription" in t]
    assert done["response"]["output"][0]["content"][0]["transcript"] == "You said: Good morning."


async def test_the_sessions_transcription_prompt_guides_every_transcription(
    harness: Harness,
) -> None:
    transcriber = harness.engines.transcriber
    assert isinstance(transcriber, ScriptedTranscriber)
    prompt = "Siobhan, Aoife, Niamh"
    await harness.send(
        ev.session_update(
            {"audio": {"input": {"transcription": {"model": "whisper-1", "prompt": prompt}}}}
        )
    )
    await harness.append(tone_speech("a b c") + silence(800))
    await harness.wait_for("response.done")
    assert transcriber.prompts and set(transcriber.prompts) == {prompt}  # partials, final
    # a session that drops transcription (or its prompt) drops the prompt too
    seen = len(transcriber.prompts)
    await harness.send(ev.session_update({"audio": {"input": {"transcription": None}}}))
    await harness.append(tone_speech("a b c") + silence(800))
    await harness.wait_for("response.done", count=2)
    assert transcriber.prompts[seen:] and set(transcriber.prompts[seen:]) == {None}


async def test_create_response_false_detects_turns_but_never_answers(harness: Harness) -> None:
    await harness.send(
        ev.session_update(
            {
                "audio": {
                    "input": {"turn_detection": {"type": "server_vad", "create_response": False}}
                }
            }
        )
    )
    await harness.append(tone_speech("a b c") + silence(800))
    await harness.wait_for("conversation.item.done")
    assert harness.of("input_audio_buffer.speech_stopped")
    assert harness.of("response.created") == []


async def test_semantic_vad_waits_longer_at_low_eagerness(
    make_harness: Callable[..., Harness],
) -> None:
    ends = {}
    for eagerness in ("high", "low"):
        h = make_harness()
        td = {"type": "semantic_vad", "eagerness": eagerness, "create_response": False}
        await h.send(ev.session_update({"audio": {"input": {"turn_detection": td}}}))
        await h.append(tone_speech("a b") + silence(2000), chunk_ms=20)
        await h.wait_for("input_audio_buffer.committed")
        item = h.of("conversation.item.added")[0]["item"]
        await h.send(ev.conversation_item_retrieve(item["id"]))
        ends[eagerness] = len(h.events[-1]["item"]["content"][0]["audio"])
    assert ends["low"] > ends["high"]  # the committed audio includes the silence waited for


async def test_g711_input_is_heard_by_the_vad(harness: Harness) -> None:
    from realtalk.media.g711 import ulaw_encode
    from realtalk.media.resample import resample_oneshot

    await harness.send(ev.session_update({"audio": {"input": {"format": {"type": "audio/pcmu"}}}}))
    pcm24 = np.frombuffer(tone_speech("a b c") + silence(800), dtype="<i2")
    ulaw = ulaw_encode(resample_oneshot(pcm24, 24000, 8000).astype(np.int16))
    import base64

    for i in range(0, len(ulaw), 800):
        await harness.send(
            ev.input_audio_buffer_append(base64.b64encode(ulaw[i : i + 800]).decode())
        )
    committed = await harness.wait_for("input_audio_buffer.committed")
    await harness.send(ev.conversation_item_retrieve(committed["item_id"]))
    audio = base64.b64decode(harness.events[-1]["item"]["content"][0]["audio"])
    assert 700 <= len(audio) / 8 <= 1500  # µ-law bytes: 8 a millisecond


class GrowingTranscriber(Transcriber):
    """Knows the sentence; hears one more word for every 250 ms of audio."""

    def __init__(self, sentence: str) -> None:
        self.words = sentence.split()
        self.lock = threading.Lock()
        self.calls: list[float] = []

    def transcribe(self, pcm16k: Any, prompt: str | None = None) -> Transcript:
        seconds = pcm16k.size / 16000
        with self.lock:
            self.calls.append(seconds)
        heard = self.words[: max(1, int(seconds / 0.25))]
        return Transcript(" ".join(heard), seconds)


async def test_partial_transcripts_stream_while_the_user_speaks(
    make_harness: Callable[..., Harness],
) -> None:
    engines = make_engines()
    sentence = "one two three four five six seven eight nine ten eleven twelve"
    engines.transcriber = GrowingTranscriber(sentence)
    h = make_harness(engines, partial_transcripts=True, partial_interval_ms=500)
    await h.send(ev.session_update({**WITH_TRANSCRIPTION}))
    speech = tone_speech(sentence)  # 3 s
    # append in real-time-sized steps, letting the partial transcriptions run between them
    import asyncio

    for i in range(0, len(speech), 48 * 250):
        await h.append(speech[i : i + 48 * 250])
        await asyncio.sleep(0.02)
    deltas_before_stop = list(h.of("conversation.item.input_audio_transcription.delta"))
    await h.append(silence(800))
    completed = await h.wait_for("conversation.item.input_audio_transcription.completed")
    assert deltas_before_stop, "no partial transcript while speaking"
    deltas = h.of("conversation.item.input_audio_transcription.delta")
    item_id = h.of("input_audio_buffer.speech_started")[0]["item_id"]
    assert {d["item_id"] for d in deltas} == {item_id}
    assert "".join(d["delta"] for d in deltas) == completed["transcript"]
    assert completed["transcript"].startswith("one two three")


async def test_speculation_in_the_pause_becomes_the_final_transcript(
    make_harness: Callable[..., Harness],
) -> None:
    engines = make_engines()
    transcriber = GrowingTranscriber("one two three four five six seven eight nine ten")
    engines.transcriber = transcriber
    h = make_harness(engines, speculative_transcripts=True)
    td = {"type": "server_vad", "silence_duration_ms": 600, "create_response": False}
    transcription = {"model": "whisper-1"}
    await h.send(
        ev.session_update(
            {"audio": {"input": {"turn_detection": td, "transcription": transcription}}}
        )
    )
    assert h.events[-1]["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 600
    # a 300 ms pause inside the turn (a guess that gets dropped), then the real end
    await h.append(
        tone_speech("a b c") + silence(300) + tone_speech("d e") + silence(1000), chunk_ms=20
    )
    completed = await h.wait_for("conversation.item.input_audio_transcription.completed")
    assert len(h.of("input_audio_buffer.speech_started")) == 1  # one turn, pause and all
    stopped = h.of("input_audio_buffer.speech_stopped")[0]
    started = h.of("input_audio_buffer.speech_started")[0]
    for _ in range(1000):  # the dropped guesses' threads may still be running: let them finish
        if len(transcriber.calls) >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    # Guesses at the first silent window of each pause (the gaps between the tone's words are
    # pauses too), the last one kept: none at commit.
    assert len(transcriber.calls) >= 2
    kept_s = max(transcriber.calls)  # threads may finish in any order; the guess kept is longer
    assert completed["usage"]["seconds"] == round(kept_s, 3)
    # the kept guess heard the turn up to the pause (plus the speculation delay), not the wait
    spoken_s = (stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000
    assert spoken_s <= kept_s <= spoken_s + 0.2


async def test_without_speculation_the_commit_is_transcribed(
    make_harness: Callable[..., Harness],
) -> None:
    engines = make_engines()
    transcriber = GrowingTranscriber("one two three")
    engines.transcriber = transcriber
    h = make_harness(engines)
    await h.send(ev.session_update(WITH_TRANSCRIPTION))
    await h.append(tone_speech("a b c d") + silence(800))
    completed = await h.wait_for("conversation.item.input_audio_transcription.completed")
    assert len(transcriber.calls) == 1
    assert completed["usage"]["seconds"] == round(transcriber.calls[0], 3)


class FailingTranscriber(Transcriber):
    def transcribe(self, pcm16k: Any, prompt: str | None = None) -> Transcript:
        raise RuntimeError("the microphone was a banana")


async def test_a_failed_transcription_is_reported_and_the_turn_still_answered(
    make_harness: Callable[..., Harness],
) -> None:
    engines = make_engines()
    engines.transcriber = FailingTranscriber()
    h = make_harness(engines)
    await h.send(ev.session_update(WITH_TRANSCRIPTION))
    await h.append(tone_speech("a b c") + silence(800))
    failed = await h.wait_for("conversation.item.input_audio_transcription.failed")
    assert failed["item_id"] == h.of("input_audio_buffer.committed")[0]["item_id"]
    assert failed["error"]["message"] == "the microphone was a banana"
    done = await h.wait_for("response.done")
    assert done["response"]["status"] == "completed"  # the LLM heard nothing, but answers

"""A message's Voicing on its own, with no Response: streamed text in, pieces spoken in order,
each piece's transcript delta before its audio, the audio stored in the item and counted."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from realtalk.protocol import events as ev
from realtalk.protocol.audio_formats import AudioFormat
from realtalk.protocol.ids import IdGenerator
from realtalk.server.conversation import Entry
from realtalk.server.engines.scripted import ToneVoice
from realtalk.server.voicing import Message, Voicing

REPLY = "Well then my friend, here is the answer. It is short"
PCM24K = AudioFormat.parse({"type": "audio/pcm", "rate": 24000})


def make_voicing() -> tuple[Voicing, list[dict[str, Any]], list[str], list[int]]:
    events: list[dict[str, Any]] = []
    marks: list[str] = []
    counted: list[int] = []
    item = ev.message_item(
        "assistant",
        [{"type": "output_audio", "transcript": ""}],
        item_id="item_1",
        status="in_progress",
        with_object=True,
    )
    entry = Entry(item, audio={0: bytearray()}, audio_format=PCM24K)
    voicing = Voicing(
        Message(entry, 0, audio=True),
        "resp_1",
        ToneVoice(),
        PCM24K,
        send=events.append,
        new_id=IdGenerator(deterministic=True),
        mark=marks.append,
        on_audio=counted.append,
    )
    return voicing, events, marks, counted


async def test_streamed_text_is_spoken_piece_by_piece_transcript_first() -> None:
    voicing, events, marks, counted = make_voicing()
    for word in REPLY.split(" "):
        voicing.add(word + " ")
    assert voicing.queued == 2  # the first clause, then the sentence it belongs to
    await voicing.finish()

    message = voicing.message
    assert message.text == REPLY
    assert message.part["transcript"] == message.text
    pieces: list[str] = []
    for event in events:
        if event["type"] == "response.output_audio_transcript.delta":
            pieces.append(event["delta"])
        else:
            assert event["type"] == "response.output_audio.delta"
            assert pieces, "audio went out before its transcript"
    assert pieces == ["Well then my friend,", " here is the answer.", " It is short"]

    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    assert audio and bytes(message.entry.audio[0]) == audio and sum(counted) == len(audio)
    spoken = message.entry.spoken
    assert [s.end_char for s in spoken] == [20, 40, len(message.text)]
    assert spoken[-1].end_ms == len(audio) / PCM24K.bytes_per_ms
    assert marks == ["first_sentence"]


async def test_stop_ends_the_voice_and_sends_nothing_more() -> None:
    voicing, events, _marks, _counted = make_voicing()
    voicing.add("One sentence here. ")
    voicing.stop()  # before the worker took the piece
    await asyncio.gather(voicing.task, return_exceptions=True)
    assert voicing.task.cancelled()
    assert events == [] and not voicing.first_voiced.is_set()

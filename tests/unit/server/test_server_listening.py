"""The Listener on its own, with no Connection: audio in; turn events, a committed item and the
calls that ask the session for a reply out. What a turn means for responses is the session's
(the callbacks), so listening is tested apart from replying."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from realtalk.protocol.audio_formats import AudioFormat
from realtalk.protocol.ids import IdGenerator
from realtalk.protocol.session import default_session
from realtalk.server.conversation import Conversation
from realtalk.server.input_buffer import encode_from_int16, fading
from realtalk.server.limits import DEFAULT_LIMITS
from realtalk.server.listening import Listener
from realtalk.server.response import ResponseSettings
from realtalk.server.speculation import GuessTask
from realtalk.server.transcription import UserTranscripts
from tests.conftest import make_engines
from tests.unit.server.conftest import silence, tone_speech

CHUNK_MS = 100


class Session:
    """What a Connection would be to the listener: records every call it gets."""

    def __init__(self, *, replying: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.conversation = Conversation()
        self.replying = replying
        self.speech: list[bool] = []
        self.replies: list[GuessTask | None] = []
        engines = make_engines()
        new_id = IdGenerator(deterministic=True)
        self.transcripts = UserTranscripts(
            engines.transcriber,
            self.events.append,
            new_id,
            on_text=lambda *_: None,
            partials=False,
            speculate=False,
        )
        self.listener = Listener(
            engines,
            self.events.append,
            new_id,
            self.transcripts,
            default_session("gpt-realtime")["audio"]["input"],
            limits=DEFAULT_LIMITS,
            conversation=lambda: self.conversation,
            replying=lambda: self.replying,
            reply_settings=self._settings,
            on_speech=self.speech.append,
            reply=self.replies.append,
        )

    def _settings(self) -> ResponseSettings:
        raise AssertionError("no reply is prepared: speculation is off")

    async def hear(self, pcm: bytes) -> None:
        step = 48 * CHUNK_MS
        for i in range(0, len(pcm), step):
            chunk = pcm[i : i + step]
            await self.listener.append(base64.b64encode(chunk).decode(), None)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def aclose(self) -> None:
        await self.listener.aclose()
        await self.transcripts.aclose()


async def test_a_turn_is_heard_committed_and_handed_to_the_session_for_a_reply() -> None:
    session = Session()
    await session.hear(silence(300) + tone_speech() + silence(1500))
    await session.aclose()

    assert session.types()[:5] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    (item,) = [entry.item for entry in session.conversation]
    assert item["role"] == "user" and item["id"] == session.events[0]["item_id"]
    assert session.speech == [True]  # server_vad's default: the reply running is cut
    assert session.replies == [None]  # no guess: speculation is off


async def test_a_turn_ending_while_a_reply_runs_asks_for_no_other() -> None:
    session = Session(replying="resp_1")
    await session.hear(silence(300) + tone_speech() + silence(1500))
    await session.aclose()

    assert "input_audio_buffer.committed" in session.types()
    assert session.replies == []


async def test_a_commit_without_turn_detection_asks_for_nothing() -> None:
    session = Session()
    audio_input = default_session("gpt-realtime")["audio"]["input"]
    session.listener.configure({**audio_input, "turn_detection": None})
    await session.hear(tone_speech() + silence(1500))
    assert session.types() == []  # no VAD: nothing is decided while audio comes in
    session.listener.commit()
    await session.aclose()

    assert session.types()[0] == "input_audio_buffer.committed"
    assert session.speech == [] and session.replies == []


def test_speech_is_fading_when_its_last_window_is_far_below_its_loudest() -> None:
    pcm24 = AudioFormat("audio/pcm", 24000)
    words = tone_speech("one two three")  # 250 ms tone bursts with short gaps between
    assert not fading(words[: 48 * 200], pcm24)  # inside the first word
    assert fading(words + silence(40), pcm24)  # the speech has stopped
    assert not fading(silence(500), pcm24)  # never loud: nothing fades
    assert not fading(words[:100], pcm24)  # shorter than two windows
    quieter = (np.frombuffer(words[: 48 * 200], "<i2") // 10).astype("<i2").tobytes()
    assert not fading(words[: 48 * 200] + quieter, pcm24)  # 20 dB down: still speech
    pcmu = AudioFormat("audio/pcmu", 8000)
    loud = encode_from_int16(np.full(1600, 8000, np.int16), pcmu)
    assert fading(loud + encode_from_int16(np.zeros(400, np.int16), pcmu), pcmu)

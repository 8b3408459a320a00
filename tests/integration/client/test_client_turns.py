"""A typed turn and a spoken turn through OpenAIRealtime and the local server."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from realtalk.media.frame import AudioFrame
from realtalk.plugins.openai import OpenAIRealtimeConfig
from tests.integration.client.conftest import FRAME_MS


async def test_text_turn(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    await rig.model.send_text_message("hello there")
    await rig.log.wait(lambda: rig.log.of("turn_metrics"))
    assert rig.log.finals("agent") == ["You said: hello there."]
    (ended,) = rig.log.of("agent_speech_ended")
    assert ended["played_ms"] == 1000 and not ended["interrupted"]  # 4 words x 250 ms
    (turn,) = rig.log.of("turn_metrics")
    assert turn.usage.output_tokens > 0
    roles = [(i["type"], i.get("role")) for i in rig.connection.items()]
    assert roles == [("message", "user"), ("message", "assistant")]
    assert rig.log.of("error") == []


async def test_spoken_turn_from_48k_stereo_frames(
    make_rig: Callable[..., Any], speech: Callable[[str], list[AudioFrame]]
) -> None:
    rig = await make_rig()
    utterance = speech("Hello, how are you today?")
    rig.mic.say(utterance)
    await rig.log.wait(lambda: rig.log.of("turn_metrics"))

    assert rig.log.of("user_speech_started") and rig.log.of("user_speech_ended")
    # The scripted transcriber describes what it heard ("(speech 1.8 s)"); the LLM echoes it.
    (heard,) = rig.log.finals("user")
    assert re.fullmatch(r"\(speech \d+\.\d s\)", heard)
    assert 1.0 <= float(heard.split()[1]) <= len(utterance) * FRAME_MS / 1000 + 0.3
    reply = f"You said: {heard}."
    assert rig.log.finals("agent") == [reply]
    (ended,) = rig.log.of("agent_speech_ended")
    assert ended["played_ms"] == 250 * len(reply.split())  # every word played
    (turn,) = rig.log.of("turn_metrics")
    assert turn.latency_ms is not None and turn.model_latency_ms is not None
    assert turn.latency_ms >= turn.model_latency_ms >= 0
    assert turn.input_transcription_usage.input_tokens + turn.input_transcription_usage.seconds > 0

    # The server got 24 kHz mono at the right speed: the audio it received lasts as long as the
    # microphone ran (a stereo-as-mono or wrong-rate bug would halve or double it).
    await rig.mic.aclose()
    await asyncio.sleep(0.3)
    appended = sum(
        len(base64.b64decode(e["audio"])) for e in rig.connection.of("input_audio_buffer.append")
    )
    appended_ms = appended / 48
    assert rig.mic.sent_ms > len(utterance) * FRAME_MS
    assert rig.mic.sent_ms - 120 <= appended_ms <= rig.mic.sent_ms
    assert rig.log.of("error") == []


async def test_appends_queued_while_the_socket_was_busy_go_out_as_one(
    make_rig: Callable[..., Any],
) -> None:
    rig = await make_rig(config=OpenAIRealtimeConfig(turn_detection=None))
    await rig.mic.aclose()
    await asyncio.sleep(0.2)
    before = len(rig.connection.of("input_audio_buffer.append"))
    rng = np.random.default_rng(7)
    for _ in range(100):  # 2 s of 48 kHz stereo, handed over without giving the loop a turn
        pcm = (rng.standard_normal(2 * 960) * 3000).astype("<i2").tobytes()
        await rig.model.handle_audio_input(AudioFrame(pcm, 48000, 2))
    await rig.model.commit_audio_input()
    async with asyncio.timeout(15):
        while not rig.connection.of("input_audio_buffer.commit"):
            await asyncio.sleep(0.01)
    appends = rig.connection.of("input_audio_buffer.append")[before:]
    # ~30 batches of 40-70 ms queued: the send loop wrote them as one append (and the tail).
    assert 1 <= len(appends) <= 2
    received_ms = sum(len(base64.b64decode(e["audio"])) for e in appends) / 48
    assert 2000 <= received_ms <= 2000 + 120  # all of it, plus what the microphone left
    kinds = [e["type"] for e in rig.connection.received]
    assert kinds.index("input_audio_buffer.commit") > len(kinds) - 2  # after the audio
    assert rig.log.of("error") == []

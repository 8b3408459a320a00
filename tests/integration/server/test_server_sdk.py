"""The official openai SDK drives the local server over a real WebSocket.

Every server frame is checked against the SDK's GA models (strictly), every client event we send
against its client union.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from realtalk.protocol import events as ev
from realtalk.server import LocalServer
from tests.conftest import make_engines
from tests.integration.server.conftest import sdk_client

WORD_MS = 250  # ToneVoice: one word = 200 ms tone + 50 ms gap
SILENCE_1S = bytes(48_000)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def audio_ms(events: list[dict], response_id: str) -> float:
    data = b"".join(
        base64.b64decode(e["delta"])
        for e in events
        if e["type"] == "response.output_audio.delta" and e["response_id"] == response_id
    )
    return len(data) / 48


async def test_text_turn(scripted_server: LocalServer) -> None:
    async with sdk_client(scripted_server) as client:
        created = await client.recv()
        assert created["type"] == "session.created"
        await client.send(ev.session_update({"instructions": "Be brief."}))
        updated = await client.until("session.updated")
        assert updated["session"]["instructions"] == "Be brief."
        assert updated["session"]["id"] == created["session"]["id"]
        await client.send(ev.conversation_item_create(ev.user_text_item("Hello there")))
        await client.send(ev.response_create())
        done = await client.until("response.done")
        response = done["response"]
        assert response["status"] == "completed"
        transcript = response["output"][0]["content"][0]["transcript"]
        assert transcript == "You said: Hello there."
        assert audio_ms(client.events, response["id"]) == 4 * WORD_MS


async def test_spoken_turn_with_server_vad(
    scripted_server: LocalServer, speech_pcm24k: Callable[[str], bytes]
) -> None:
    speech = speech_pcm24k("What is the capital of France?")
    async with sdk_client(scripted_server) as client:
        await client.send(
            ev.session_update(
                {"audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}}}
            )
        )
        await client.until("session.updated")
        await client.append_pcm(SILENCE_1S + speech + SILENCE_1S)
        done = await client.until("response.done")
        types = client.types()
        order = [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "response.created",
        ]
        positions = [types.index(t) for t in order]
        assert positions == sorted(positions)
        started = client.of("input_audio_buffer.speech_started")[0]
        stopped = client.of("input_audio_buffer.speech_stopped")[0]
        # espeak starts speaking at once: onset at ~1000 ms minus 300 ms of padding
        assert 600 <= started["audio_start_ms"] <= 800
        speech_end_ms = 1000 + len(speech) / 48
        assert speech_end_ms - 400 <= stopped["audio_end_ms"] <= speech_end_ms + 100
        completed = client.of("conversation.item.input_audio_transcription.completed")[0]
        assert completed["item_id"] == started["item_id"]
        # the scripted transcriber describes what it heard: its duration
        heard_s = float(completed["transcript"].split()[1])
        committed_s = completed["usage"]["seconds"]
        assert abs(heard_s - committed_s) < 0.06
        assert abs(committed_s - (stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000) < 0.4
        reply = done["response"]["output"][0]["content"][0]["transcript"]
        assert reply == f"You said: {completed['transcript'].rstrip('.')}."


async def test_function_call_output_and_follow_up(scripted_server: LocalServer) -> None:
    async with sdk_client(scripted_server) as client:
        await client.send(ev.session_update({"tools": [WEATHER_TOOL], "tool_choice": "auto"}))
        await client.send(
            ev.conversation_item_create(ev.user_text_item('call get_weather {"city": "Paris"}'))
        )
        await client.send(ev.response_create())
        done = await client.until("response.done")
        call = done["response"]["output"][0]
        assert (call["type"], call["name"], call["arguments"]) == (
            "function_call",
            "get_weather",
            '{"city": "Paris"}',
        )
        arguments = client.of("response.function_call_arguments.done")[0]
        assert arguments["call_id"] == call["call_id"]
        await client.send(
            ev.conversation_item_create(
                ev.function_call_output_item(call["call_id"], '{"temp_c": 18, "sky": "clear"}')
            )
        )
        await client.until("conversation.item.done")
        await client.send(ev.response_create())
        follow_up = await client.until("response.done")
        transcript = follow_up["response"]["output"][0]["content"][0]["transcript"]
        assert transcript == 'Tool get_weather returned {"temp_c": 18, "sky": "clear"}.'
        assert len(client.of("response.created")) == 2  # no response the client did not ask for


async def test_interruption_cancels_and_truncate_trims(
    speech_pcm24k: Callable[[str], bytes],
) -> None:
    speech = speech_pcm24k("Wait, stop please.")
    async with (
        LocalServer(port=0, engines=make_engines(word_delay_s=0.04)) as server,
        sdk_client(server) as client,
    ):
        await client.send(
            ev.conversation_item_create(
                ev.user_text_item("Red green blue. Cyan magenta yellow. Black white grey. The end")
            )
        )
        await client.send(ev.response_create())
        first = await client.until("response.output_audio.delta")
        assistant_id = first["item_id"]
        await client.append_pcm(SILENCE_1S[:9600] + speech)  # the user talks over the reply
        started = await client.until("input_audio_buffer.speech_started")
        done = await client.until("response.done")
        response = done["response"]
        assert response["status"] == "cancelled"
        assert response["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        types = client.types()
        tail = types[types.index("input_audio_buffer.speech_started") :]
        assert tail[1:7] == [
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        assert started["item_id"] != assistant_id
        sent_ms = int(audio_ms(client.events, response["id"]))
        played = min(400, sent_ms)
        await client.send(ev.conversation_item_truncate(assistant_id, played))
        truncated = await client.until("conversation.item.truncated")
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (assistant_id, played)
        await client.send(ev.conversation_item_retrieve(assistant_id))
        item = (await client.until("conversation.item.retrieved"))["item"]
        assert len(base64.b64decode(item["content"][0]["audio"])) == played * 48
        assert len(item["content"][0]["transcript"]) < len(
            response["output"][0]["content"][0]["transcript"]
        )
        # the user's turn then ends and is answered as usual
        await client.append_pcm(SILENCE_1S)
        next_done = await client.until("response.done")
        assert next_done["response"]["status"] == "completed"

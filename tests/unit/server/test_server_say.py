"""say(text) over the protocol: the server speaks the text itself, exactly, without its LLM."""

from __future__ import annotations

import base64

import pytest

from realtalk.protocol import events as ev
from realtalk.protocol import parse_say_instructions, say_instructions
from realtalk.server.engines.scripted import ToneVoice
from tests.conftest import make_engines
from tests.unit.server.conftest import Harness
from tests.unit.server.test_server_connection_responses import RecordingLLM

TEXT = "Welcome to the demo. It has three parts, and a quiz! Ready?"


def test_the_wording_round_trips_and_other_instructions_are_not_a_say() -> None:
    assert parse_say_instructions(say_instructions(TEXT)) == TEXT
    assert parse_say_instructions("Be brief.") is None
    assert parse_say_instructions(None) is None
    assert parse_say_instructions(say_instructions("x")[:-1] + "  ") is None  # no text left
    with pytest.raises(ValueError, match="needs some text"):
        say_instructions("   ")
    with pytest.raises(TypeError):
        say_instructions(42)  # type: ignore[arg-type]


async def test_a_say_speaks_every_sentence_exactly_and_records_it_as_the_agents_words() -> None:
    llm = RecordingLLM()
    engines = make_engines()
    engines.llm = llm
    h = Harness(engines)
    await h.send(ev.conversation_item_create(ev.user_text_item("hello")))
    await h.send(ev.response_create({"instructions": say_instructions(TEXT), "input": []}))
    done = (await h.wait_for("response.done"))["response"]

    assert llm.seen == []  # the LLM was never asked
    assert done["status"] == "completed"
    (transcript,) = h.of("response.output_audio_transcript.done")
    assert transcript["transcript"] == TEXT
    deltas = [d["delta"] for d in h.of("response.output_audio_transcript.delta")]
    assert "".join(deltas) == TEXT
    audio = b"".join(base64.b64decode(d["delta"]) for d in h.of("response.output_audio.delta"))
    assert len(audio) / 48 == pytest.approx(ToneVoice().duration_s(TEXT) * 1000)
    usage = done["usage"]
    assert usage["output_token_details"]["audio_tokens"] > 0
    assert usage["output_token_details"]["text_tokens"] > 0
    assert usage["input_tokens"] > 0

    (item,) = done["output"]
    assert item["role"] == "assistant"
    assert item["content"][0]["transcript"] == TEXT
    roles = [e.item["role"] for e in h.connection.conversation]
    assert roles == ["user", "assistant"]
    await h.connection.aclose()


async def test_a_say_in_a_text_session_is_the_exact_text_and_ignores_max_output_tokens() -> None:
    h = Harness(make_engines())
    await h.send(
        ev.response_create(
            {
                "instructions": say_instructions(TEXT),
                "input": [],
                "output_modalities": ["text"],
                "max_output_tokens": 2,
            }
        )
    )
    done = (await h.wait_for("response.done"))["response"]
    assert done["status"] == "completed"
    (text,) = h.of("response.output_text.done")
    assert text["text"] == TEXT
    await h.connection.aclose()


async def test_ordinary_instructions_still_go_to_the_llm() -> None:
    h = Harness(make_engines())
    await h.send(ev.conversation_item_create(ev.user_text_item("hello")))
    await h.send(ev.response_create({"instructions": "Say something nice."}))
    await h.wait_for("response.done")
    (transcript,) = h.of("response.output_audio_transcript.done")
    assert transcript["transcript"] == "You said: hello."
    await h.connection.aclose()

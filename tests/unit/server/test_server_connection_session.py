"""The connection's session and conversation handling, fed events directly."""

from __future__ import annotations

import time

from realtalk.protocol import events as ev
from realtalk.server.connection import expiry_message
from tests.unit.server.conftest import Harness


async def test_session_created_comes_first_with_id_object_and_expiry(harness: Harness) -> None:
    assert harness.types() == ["session.created"]
    session = harness.events[0]["session"]
    assert session["id"].startswith("sess_")
    assert session["object"] == "realtime.session"
    assert abs(session["expires_at"] - (time.time() + 3600)) < 5
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"


async def test_session_update_merges_deeply_and_answers_with_the_whole_session(
    harness: Harness,
) -> None:
    await harness.send(
        ev.session_update(
            {
                "instructions": "Be brief.",
                "audio": {
                    "input": {
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 800},
                        "transcription": {"model": "whisper-1"},
                    }
                },
            },
            event_id="evt_1",
        )
    )
    updated = harness.events[-1]
    assert updated["type"] == "session.updated"
    session = updated["session"]
    detection = session["audio"]["input"]["turn_detection"]
    assert detection["silence_duration_ms"] == 800
    assert detection["threshold"] == 0.5  # kept from before
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["instructions"] == "Be brief."
    await harness.send(
        ev.session_update({"audio": {"input": {"turn_detection": None, "transcription": None}}})
    )
    session = harness.events[-1]["session"]
    assert session["audio"]["input"]["turn_detection"] is None
    assert session["audio"]["input"]["transcription"] is None
    assert session["instructions"] == "Be brief."


async def test_invalid_session_update_names_the_parameter_and_changes_nothing(
    harness: Harness,
) -> None:
    before = len(harness.events)
    await harness.send(
        {
            "type": "session.update",
            "event_id": "evt_bad",
            "session": {"type": "realtime", "audio": {"input": {"format": {"type": "pcm16x"}}}},
        },
        valid=False,
    )
    assert harness.types(before) == ["error"]
    error = harness.last_error()
    assert error["param"] == "session.audio.input.format"
    assert error["event_id"] == "evt_bad"
    assert harness.connection.session["audio"]["input"]["format"]["type"] == "audio/pcm"


async def test_the_model_of_a_session_cannot_change(harness: Harness) -> None:
    await harness.send(ev.session_update({"model": "gpt-realtime"}))
    assert harness.events[-1]["type"] == "session.updated"
    await harness.send(ev.session_update({"model": "gpt-realtime-mini"}))
    assert harness.last_error()["param"] == "session.model"


async def test_items_are_added_after_their_predecessor_and_deleted(harness: Harness) -> None:
    await harness.send(ev.conversation_item_create(ev.user_text_item("one", item_id="a")))
    await harness.send(ev.conversation_item_create(ev.user_text_item("two", item_id="b")))
    await harness.send(
        ev.conversation_item_create(ev.user_text_item("zero", item_id="z"), previous_item_id="root")
    )
    added = harness.of("conversation.item.added")
    assert [(e["item"]["id"], e["previous_item_id"]) for e in added] == [
        ("a", None),
        ("b", "a"),
        ("z", None),
    ]
    done = harness.of("conversation.item.done")
    assert [e["item"]["status"] for e in done] == ["completed"] * 3
    assert [e.id for e in harness.connection.conversation] == ["z", "a", "b"]
    await harness.send(ev.conversation_item_delete("a", event_id="del"))
    assert harness.events[-1] == {
        "type": "conversation.item.deleted",
        "event_id": harness.events[-1]["event_id"],
        "item_id": "a",
    }
    await harness.send(ev.conversation_item_delete("a", event_id="del2"))
    error = harness.last_error()
    assert (error["code"], error["event_id"]) == ("item_delete_invalid_item_id", "del2")


async def test_unknown_previous_item_is_an_error_and_nothing_is_added(harness: Harness) -> None:
    await harness.send(
        ev.conversation_item_create(
            ev.user_text_item("x"), previous_item_id="item_missing", event_id="c1"
        )
    )
    error = harness.last_error()
    assert (error["param"], error["event_id"]) == ("previous_item_id", "c1")
    assert len(harness.connection.conversation) == 0


async def test_retrieve_returns_user_audio_as_sent(harness: Harness) -> None:
    audio = "AAABAAIAAwA="
    item = ev.message_item("user", [{"type": "input_audio", "audio": audio}], item_id="u1")
    await harness.send(ev.conversation_item_create(item))
    added = harness.of("conversation.item.added")[-1]["item"]
    assert "audio" not in added["content"][0]  # items in events carry no audio bytes
    await harness.send(ev.conversation_item_retrieve("u1"))
    retrieved = harness.events[-1]
    assert retrieved["type"] == "conversation.item.retrieved"
    assert retrieved["item"]["content"][0]["audio"] == audio


async def test_expiry_is_reported_in_openai_words(harness: Harness) -> None:
    harness.connection.expire()
    error = harness.last_error()
    assert error["code"] == "session_expired"
    assert error["message"] == "Your session hit the maximum duration of 60 minutes."
    assert expiry_message(1) == "Your session hit the maximum duration of 1 second."


async def test_output_audio_buffer_clear_is_refused_over_websocket(harness: Harness) -> None:
    await harness.send(ev.output_audio_buffer_clear(event_id="oc"))
    error = harness.last_error()
    assert error["event_id"] == "oc" and "WebRTC" in error["message"]

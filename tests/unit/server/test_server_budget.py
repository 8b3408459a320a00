"""The per-connection budget of the local server, driven on a Connection directly (issue 11).

Each test is a regression test for a defect found by attacking the server: uncommitted audio
grew without bound (4), any number of out-of-band responses ran at once (5), deleting the item
being written and re-creating its id mixed the two items (8), ids of any length or empty were
taken (8), and ``null`` for an optional field was refused where OpenAI reads "not given" (9).
"""

from __future__ import annotations

import base64
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from realtalk.protocol.validate import validate_client_event
from realtalk.server.limits import Limits
from tests.conftest import make_engines
from tests.unit.server.conftest import Harness, silence, tone_speech

NO_VAD = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}


def _append(pcm: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}


async def test_uncommitted_audio_stops_at_the_limit_with_an_error(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(limits=Limits(max_buffer_ms=1000))
    await h.send({"type": "session.update", "session": NO_VAD})
    for _ in range(7):  # 2.1 s of audio into a 1 s buffer
        await h.send(_append(silence(300)))
    errors = [e["error"] for e in h.of("error")]
    assert errors and {e["code"] for e in errors} == {"input_audio_buffer_full"}
    assert errors[0]["param"] == "audio" and errors[0]["type"] == "invalid_request_error"
    assert h.connection.buffer.duration_ms == 1000  # kept at the limit, not emptied
    await h.send({"type": "input_audio_buffer.commit"})
    committed = await h.wait_for("input_audio_buffer.committed")
    assert committed["item_id"]
    assert h.connection.buffer.duration_ms == 0
    await h.send(_append(silence(300)))  # room again
    assert len(h.of("error")) == len(errors)


async def test_an_endless_turn_under_server_vad_is_cut_at_the_limit(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(limits=Limits(max_buffer_ms=2000))
    words = " ".join(["word"] * 40)  # 10 s of tone, no pause long enough to end the turn
    await h.append(tone_speech(words))
    assert h.of("input_audio_buffer.committed"), "the turn was never cut"
    # Cut every 2 s, and what follows each cut is heard as a new turn: 10 s make 4 or 5.
    assert len(h.of("input_audio_buffer.committed")) >= 3
    assert len(h.of("input_audio_buffer.speech_started")) >= 3
    assert h.connection.buffer.duration_ms <= 2000
    assert not [e for e in h.of("error") if e["error"]["code"] != "input_audio_buffer_full"]


async def test_a_closed_connection_lets_its_audio_go_at_once(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    await h.send({"type": "session.update", "session": NO_VAD})
    await h.send(_append(silence(10_000)))  # 480 kB
    assert len(h.connection.buffer) == 480_000
    await h.connection.aclose()
    # Not left for the cyclic garbage collector: the buffer and the items are gone now.
    assert len(h.connection.buffer) == 0 and len(h.connection.conversation) == 0


async def test_out_of_band_responses_are_capped_per_connection(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(limits=Limits(max_responses=3))
    create = {"type": "response.create", "response": {"conversation": "none"}}
    for i in range(10):  # no await in between lets any of them finish
        await h.send({**create, "event_id": f"e{i}"})
    assert len(h.connection.responses) == 3
    refused = [e["error"] for e in h.of("error")]
    assert len(refused) == 7 and {e["code"] for e in refused} == {"too_many_responses"}
    await h.wait_for("response.done", 3)
    await h.send(create)  # the slots are free again
    assert len(h.of("error")) == 7


async def test_items_are_capped(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(limits=Limits(max_items=3, max_conversation_bytes=1000))
    for i in range(4):
        await h.send(_user_text(f"item_{i}", "hi"))
    assert h.last_error()["code"] == "conversation_full"
    assert len(h.connection.conversation) == 3
    await h.send({"type": "conversation.item.delete", "item_id": "item_0"})
    await h.send(_user_text("item_big", "x" * 2000))  # over the text budget
    assert h.last_error()["code"] == "conversation_full"
    await h.send(_user_text("item_4", "fits"))
    assert "item_4" in h.connection.conversation


def _user_text(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "id": item_id,
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


async def test_deleting_the_item_being_written_and_reusing_its_id_keeps_them_apart(
    make_harness: Callable[..., Harness],
) -> None:
    # A slow model (1 s a word): the reply is still being written when it is deleted.
    harness = make_harness(make_engines(word_delay_s=1.0))
    await harness.send({"type": "session.update", "session": NO_VAD})
    await harness.send(_user_text("item_q", "hello"))
    await harness.send({"type": "response.create"})
    added = await harness.wait_for("response.output_item.added")
    reply_id = added["item"]["id"]
    await harness.send({"type": "conversation.item.delete", "item_id": reply_id})
    await harness.send(_user_text(reply_id, "a new item, same id"))
    await harness.wait_for("response.done")
    done = [e["item"] for e in harness.of("conversation.item.done") if e["item"]["id"] == reply_id]
    assert [item["role"] for item in done] == ["user"], done
    entry = harness.connection.conversation.get(reply_id)
    assert entry is not None and entry.item["role"] == "user"
    assert entry.item["content"] == [{"type": "input_text", "text": "a new item, same id"}]


@pytest.mark.parametrize("item_id", ["", "x" * 33, "x" * 1_000_000])
async def test_empty_and_overlong_item_ids_are_refused(harness: Harness, item_id: str) -> None:
    await harness.send(_user_text(item_id, "hello"), valid=False)
    error = harness.last_error()
    assert error["param"] == "item.id"
    assert len(error["message"]) < 300  # the id is not echoed back
    assert len(harness.connection.conversation) == 0
    for kind in ("conversation.item.retrieve", "conversation.item.delete"):
        await harness.send({"type": kind, "item_id": item_id}, valid=False)
        assert harness.last_error()["param"] == "item_id"


async def test_an_id_of_32_characters_is_taken(harness: Harness) -> None:
    await harness.send(_user_text("i" * 32, "hello"))
    assert "i" * 32 in harness.connection.conversation


async def test_null_instructions_fall_back_to_the_sessions(harness: Harness) -> None:
    """What LiveKit's generate_reply() sends: every typed turn of a LiveKit agent."""
    await harness.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "instructions": "Be brief.", **NO_VAD},
        }
    )
    await harness.send(_user_text("item_q", "hello"))
    await harness.send(
        {
            "type": "response.create",
            "event_id": "response_create_abc",
            "response": {"instructions": None, "metadata": {"client_event_id": "x"}},
        },
        valid=False,
    )
    assert not harness.of("error"), harness.of("error")
    created = await harness.wait_for("response.created")
    assert created["response"]["metadata"] == {"client_event_id": "x"}
    done = await harness.wait_for("response.done")
    assert done["response"]["status"] == "completed"


def test_deep_validation_builds_no_string_per_value() -> None:
    """A 200,000-element value used to cost a path string per element (gigabytes at 11 M)."""
    event = {"type": "session.update", "session": {"type": "realtime", "tools": [0] * 200_000}}
    tracemalloc.start()
    try:
        problem = validate_client_event(event)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problem is not None and problem.param == "session.tools"
    assert peak < 2_000_000, f"validation allocated {peak} bytes at its peak"

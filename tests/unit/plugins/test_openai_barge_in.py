"""Barge-in: silence within one frame every time, truncate at the played position, never more."""

from __future__ import annotations

import pytest

from realtalk.media.playout import FlushResult
from realtalk.plugins.openai import OpenAIRealtimeConfig
from realtalk.plugins.openai.audio import barge_in_events
from realtalk.protocol import IdGenerator, events
from tests.unit.plugins.harness import Harness


def cuts(sent: list[dict]) -> list[tuple[str, str, int | None]]:
    return [
        (e["type"].rsplit(".", 1)[1], e["item_id"], e.get("audio_end_ms"))
        for e in sent
        if e["type"] in ("conversation.item.truncate", "conversation.item.delete")
    ]


async def test_five_barge_ins_in_a_row_each_silence_and_truncate_exactly() -> None:
    h = Harness()
    for i in range(5):
        item = f"item_a{i}"
        h.feed(*h.audio_response(f"resp_{i}", item, 1000))
        played_ms = 100 + 80 * i
        assert all(any(frame) for frame in h.play(played_ms))
        h.feed(h.speech_started(f"item_u{i}"))
        assert h.next_frame_silent(), f"barge-in {i} did not silence the output"
        sent = h.sent()
        assert cuts(sent) == [("truncate", item, played_ms)]
        assert "response.cancel" not in [e["type"] for e in sent]  # nothing active: no cancel
        h.feed(events.conversation_item_truncated(h.eid(), item, 0, played_ms))
        words = h.model.conversation.transcript(item)
        assert words is not None and len(words.split()) == round(10 * played_ms / 1000)
        h.feed(h.speech_stopped(f"item_u{i}"))
        assert h.of("agent_speech_ended")[-1] == {
            "item_id": item,
            "played_ms": played_ms,
            "interrupted": True,
        }
    assert len(h.of("turn_metrics")) == 5
    assert all(turn.interrupted for turn in h.of("turn_metrics"))
    assert h.of("error") == []


async def test_barge_in_during_generation_drops_late_audio_of_that_response() -> None:
    h = Harness()
    seq = h.audio_response("resp_1", "item_a", 600, done=False)
    h.feed(*seq[:-4])  # created, item, deltas; not yet done
    h.play(200)
    h.feed(h.speech_started())
    assert h.next_frame_silent()
    assert cuts(h.sent()) == [("truncate", "item_a", 200)]
    # The server goes on for a moment before its VAD cancel lands: none of it may play.
    h.feed(*h.audio_deltas("resp_1", "item_a", 300))
    h.feed(*h.audio_end("resp_1", "item_a", "whatever"), h.done("resp_1", status="cancelled"))
    assert h.output.buffered_ms == 0
    assert h.next_frame_silent()
    assert h.sent() == []


async def test_nothing_played_means_delete_not_a_zero_truncate() -> None:
    h = Harness()
    h.feed(*h.audio_response("resp_1", "item_a", 300))
    h.feed(*h.audio_response("resp_2", "item_b", 300))
    h.feed(h.speech_started())
    assert cuts(h.sent()) == [("delete", "item_a", None), ("delete", "item_b", None)]


async def test_queued_items_behind_the_playing_one_are_deleted() -> None:
    h = Harness()
    h.feed(*h.audio_response("resp_1", "item_a", 300))
    h.feed(*h.audio_response("resp_2", "item_b", 300))
    h.play(120)
    h.feed(h.speech_started())
    assert cuts(h.sent()) == [("truncate", "item_a", 120), ("delete", "item_b", None)]


async def test_speech_after_playback_finished_cuts_nothing() -> None:
    h = Harness()
    h.feed(*h.audio_response("resp_1", "item_a", 200))
    h.play(260)
    h.feed(h.speech_started())
    assert cuts(h.sent()) == []


async def test_no_flush_when_interrupt_response_is_off() -> None:
    config = OpenAIRealtimeConfig(
        turn_detection={"type": "server_vad", "interrupt_response": False}
    )
    h = Harness(config)
    h.feed(*h.audio_response("resp_1", "item_a", 400))
    h.play(100)
    h.feed(h.speech_started())
    assert not h.next_frame_silent()
    assert h.sent() == []
    assert h.of("user_speech_started") == [{}]


async def test_interrupt_cancels_only_an_active_response_and_always_flushes() -> None:
    h = Harness()
    seq = h.audio_response("resp_1", "item_a", 600, done=False)
    h.feed(*seq)
    h.play(100)
    await h.model.interrupt()
    assert h.next_frame_silent()
    sent = h.sent()
    assert [e["type"] for e in sent] == ["response.cancel", "conversation.item.truncate"]
    assert sent[0]["response_id"] == "resp_1"
    h.feed(h.done("resp_1", status="cancelled"))

    h.feed(*h.audio_response("resp_2", "item_b", 600))  # complete; still playing
    h.play(60)
    await h.model.interrupt()
    assert h.next_frame_silent()
    assert cuts(sent := h.sent()) == [("truncate", "item_b", 60)]
    assert "response.cancel" not in [e["type"] for e in sent]

    await h.model.interrupt()  # nothing left: nothing to send, no error
    assert h.sent() == []


async def test_response_cancelled_by_the_server_stops_its_audio() -> None:
    h = Harness()
    h.feed(*h.audio_response("resp_1", "item_a", 800, done=False))
    h.play(100)
    h.feed(h.done("resp_1", status="cancelled"))
    assert h.next_frame_silent()
    assert cuts(h.sent()) == [("truncate", "item_a", 100)]
    h.feed(*h.audio_deltas("resp_1", "item_a", 200))  # late audio is dropped
    assert h.output.buffered_ms == 0


@pytest.mark.parametrize(("played", "received", "expected"), [(500, 300, 300), (120, 300, 120)])
def test_truncation_is_clamped_to_the_audio_received(
    played: int, received: int, expected: int
) -> None:
    result, out = barge_in_events(
        FlushResult("item_a", played), lambda _: received, IdGenerator(deterministic=True)
    )
    assert out[0]["audio_end_ms"] == expected
    assert result.truncated_ms == expected


async def test_g711_output_is_decoded_and_truncated_in_wire_milliseconds() -> None:
    import base64

    from realtalk.media.g711 import ulaw_encode
    from tests.unit.plugins.harness import tone

    config = OpenAIRealtimeConfig(output_audio_format="g711_ulaw")
    h = Harness(config, output_rate=8000)
    ulaw = ulaw_encode(tone(500, rate=8000))
    h.feed(*h.audio_response("resp_1", "item_a", 0, done=False)[:3])
    h.feed(
        events.response_output_audio_delta(
            h.eid(), "resp_1", "item_a", 0, 0, base64.b64encode(ulaw).decode()
        )
    )
    assert h.output.buffered_ms == 500
    h.play(240)
    h.feed(h.speech_started())
    assert cuts(h.sent()) == [("truncate", "item_a", 240)]


async def test_the_agent_transcript_follows_the_voice_and_keeps_only_what_was_heard() -> None:
    h = Harness()
    h.feed(h.created("resp_1"), *h.audio_item("resp_1", "item_a"))
    first = events.response_output_audio_transcript_delta(
        h.eid(), "resp_1", "item_a", 0, 0, "First part."
    )
    h.feed(first, *h.audio_deltas("resp_1", "item_a", 500))
    second = events.response_output_audio_transcript_delta(
        h.eid(), "resp_1", "item_a", 0, 0, " Second part."
    )
    h.feed(second, *h.audio_deltas("resp_1", "item_a", 500))
    h.feed(*h.audio_end("resp_1", "item_a", "First part. Second part."), h.done("resp_1"))

    def agent() -> list[tuple[str, bool, bool]]:
        return [
            (t["text"], t["is_final"], bool(t.get("interrupted")))
            for t in h.of("realtime_model_transcription")
            if t["role"] == "agent"
        ]

    assert agent() == []  # all of it has arrived, none of it has played
    h.play(100)
    h.model._timer_fired("pace")  # the pacing timer fires
    assert agent() == [("First part.", False, False)]
    h.play(300)  # 400 ms played: the second part's audio (from 500 ms) has not
    h.model._timer_fired("pace")  # the pacing timer fires
    assert agent() == [("First part.", False, False)]
    h.feed(h.speech_started())  # the user cuts in
    assert agent() == [("First part.", False, False), ("First part.", True, True)]

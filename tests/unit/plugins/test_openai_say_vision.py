"""say() (verbatim, optionally non-interruptible), one-off replies, and vision input."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from realtalk.errors import NotConnectedError
from realtalk.plugins.openai import SAY_INSTRUCTIONS, OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.protocol import events
from tests.unit.plugins.harness import Harness


def interrupt_response_of(update: dict) -> bool:
    return update["session"]["audio"]["input"]["turn_detection"]["interrupt_response"]


async def test_say_asks_for_the_text_verbatim_without_a_user_message() -> None:
    h = Harness()
    await h.model.send_message("Welcome to the demo.")
    (create,) = h.sent()
    assert create["type"] == "response.create"
    body = create["response"]
    assert body["instructions"] == SAY_INSTRUCTIONS + "Welcome to the demo."
    assert body["input"] == []  # nothing added to, or read from, the conversation
    assert body["metadata"]["kind"] == "say"
    with pytest.raises(ValueError):
        await h.model.send_message("   ")


async def test_non_interruptible_say_survives_speech_and_restores_vad() -> None:
    h = Harness()
    await h.model.send_message("Please listen to this notice.", interruptible=False)
    relax, create = h.sent()
    assert relax["type"] == "session.update" and interrupt_response_of(relax) is False
    assert create["type"] == "response.create"

    seq = h.audio_response("resp_say", "item_say", 600, metadata=create["response"]["metadata"])
    h.feed(*seq[:-1])  # everything but response.done
    h.play(100)
    h.feed(h.speech_started())
    assert not h.next_frame_silent(), "a non-interruptible reply was cut"
    assert h.sent() == []
    h.feed(seq[-1])  # response.done
    (restore,) = h.sent()
    assert restore["type"] == "session.update" and interrupt_response_of(restore) is True
    h.feed(h.speech_started())
    assert not h.next_frame_silent()  # still playing its queued audio
    h.play(600)
    assert h.of("agent_speech_ended")[-1] == {
        "item_id": "item_say",
        "played_ms": 600,
        "interrupted": False,
    }

    # An ordinary reply afterwards is interruptible again.
    h.feed(*h.audio_response("resp_2", "item_b", 400))
    h.play(100)
    h.feed(h.speech_started())
    assert h.next_frame_silent()
    assert [e["type"] for e in h.sent()] == ["conversation.item.truncate"]


async def test_interruptible_reply_started_during_protected_audio_is_still_cut() -> None:
    h = Harness()
    await h.model.send_message("Notice.", interruptible=False)
    _, create = h.sent()
    h.feed(*h.audio_response("resp_say", "item_say", 400, metadata=create["response"]["metadata"]))
    h.sent()  # the restore
    h.feed(*h.audio_response("resp_vad", "item_v", 400, done=False))
    h.play(100)
    h.feed(h.speech_started())
    cut = h.sent()
    assert [(e["type"], e["item_id"]) for e in cut] == [("conversation.item.delete", "item_v")]
    h.play(300)
    assert h.next_frame_silent()  # item_v never plays
    assert [e["item_id"] for e in h.of("agent_speech_ended")] == ["item_say"]


async def test_explicit_interrupt_cuts_even_a_protected_reply() -> None:
    h = Harness()
    await h.model.send_message("Notice.", interruptible=False)
    _, create = h.sent()
    h.feed(
        *h.audio_response(
            "resp_say", "item_say", 400, metadata=create["response"]["metadata"], done=False
        )
    )
    h.play(100)
    await h.model.interrupt()
    assert h.next_frame_silent()
    assert [e["type"] for e in h.sent()] == ["response.cancel", "conversation.item.truncate"]


async def test_create_response_adds_one_off_instructions_to_the_agents() -> None:
    h = Harness()
    await h.model.create_response("Mention the weather.")
    (create,) = h.sent()
    assert create["response"]["instructions"] == "Be brief.\n\nMention the weather."


async def test_requests_wait_while_a_response_is_active() -> None:
    h = Harness()
    h.feed(h.created("resp_1"))
    await h.model.create_response()
    assert h.sent() == []
    h.feed(h.done("resp_1"))
    assert [e["type"] for e in h.sent()] == ["response.create"]


async def test_calls_without_a_session_raise_not_connected() -> None:
    model = OpenAIRealtime(api_key="k", model="m", base_url="ws://127.0.0.1:9/v1")
    with pytest.raises(NotConnectedError):
        await model.send_text_message("hi")
    with pytest.raises(RuntimeError):  # NotConnectedError is a RuntimeError, as the seed raised
        await model.create_response()


def frame(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)


def decode(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


async def test_video_is_throttled_encoded_with_aspect_and_sent_as_user_image() -> None:
    config = OpenAIRealtimeConfig(max_image_fps=2.0, image_max_size=(320, 320))
    h = Harness(config)
    await h.model.handle_video_input(frame(640, 360))
    await h.model.handle_video_input(frame(640, 360))  # within 0.5 s: dropped
    (create,) = h.sent()
    (part,) = create["item"]["content"]
    assert create["item"]["role"] == "user" and part["type"] == "input_image"
    assert decode(part["image_url"]).size == (320, 180)
    time.sleep(0.51)
    await h.model.handle_video_input(frame(640, 360))
    assert len(h.sent()) == 1


async def test_bad_video_frame_is_reported_not_raised() -> None:
    h = Harness()
    await h.model.handle_video_input(b"not an image")
    assert h.of("error")[0].code == "invalid_image"
    assert h.sent() == []


async def test_message_with_frames_and_reply_with_frames() -> None:
    h = Harness()
    await h.model.send_message_with_frames("What is this?", [frame(100, 50), frame(50, 100)])
    item, create = h.sent()
    types = [p["type"] for p in item["item"]["content"]]
    assert types == ["input_text", "input_image", "input_image"]
    assert create["type"] == "response.create"
    await h.model.create_response(frames=[frame(64, 64)])
    (item,) = h.sent()  # the images go at once; the reply waits for the first one
    h.feed(h.created_for(create, "resp_1"), h.done("resp_1"))
    (create,) = h.sent()
    assert create["type"] == "response.create"
    assert [p["type"] for p in item["item"]["content"]] == ["input_image"]
    h.feed(*h.ack(item))
    assert item["item"]["id"] in h.model.conversation


def test_bytes_to_base64_url() -> None:
    model = OpenAIRealtime(api_key="k", model="m", base_url="ws://127.0.0.1:9/v1")
    assert model.bytes_to_base64_url(b"\xff\xd8", "PNG") == "data:image/png;base64,/9g="
    assert events.input_image(model.bytes_to_base64_url(b"x"))["type"] == "input_image"

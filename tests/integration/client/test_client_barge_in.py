"""Five barge-ins in a row over a real socket: silence within one frame, truncation at the
position really played, and not a single error from the server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from realtalk.media.frame import AudioFrame
from tests.integration.client.conftest import FRAME_MS

# Short sentences, so the voice starts after the first one while the LLM is still writing; the
# reply ("You said: ...") lasts 26 words x 250 ms = 6.5 s.
LONG = " ".join(f"word{i}." if i % 3 == 2 else f"word{i}" for i in range(24))


async def test_five_barge_ins_in_a_row(
    make_rig: Callable[..., Any], speech: Callable[[str], list[AudioFrame]]
) -> None:
    # The LLM streams a word every 40 ms: early barge-ins hit a reply still being generated
    # (the server cancels it), later ones a reply fully received but still playing.
    rig = await make_rig(word_delay_s=0.04)
    interruption = speech("wait")
    truncation_errors: list[int] = []
    silence_after_ms: list[float] = []
    for i in range(5):
        replies = len([r for r in rig.log.of("response_created") if r["kind"] == "reply"])
        await rig.model.send_text_message(LONG)
        await rig.log.wait(
            lambda n=replies: (
                len([r for r in rig.log.of("response_created") if r["kind"] == "reply"]) > n
            )
        )
        item = (await rig.log.next("agent_speech_started"))["item_id"]
        await asyncio.sleep(0.2 + 0.35 * i)

        cuts_before = len(rig.connection.of("conversation.item.truncate"))
        rig.mic.say(interruption)
        await rig.log.next("user_speech_started")
        cut_at = rig.speaker.cut_at
        assert cut_at is not None
        played_ms = rig.speaker.frames[item] * FRAME_MS
        await rig.log.wait(
            lambda n=cuts_before: len(rig.connection.of("conversation.item.truncate")) > n
        )
        truncate = rig.connection.of("conversation.item.truncate")[-1]
        assert truncate["item_id"] == item
        truncation_errors.append(truncate["audio_end_ms"] - played_ms)

        await asyncio.sleep(0.25)
        after = [(t, silent) for t, silent in rig.speaker.after_flush if t > cut_at]
        assert after, "the speaker read no frame after the cut"
        assert all(silent for _, silent in after), f"barge-in {i}: audio after the cut"
        silence_after_ms.append((after[0][0] - cut_at) * 1000)
        # The user's turn ("wait") is answered before the next round.
        await rig.log.wait(lambda n=i: len(rig.log.of("turn_metrics")) >= 2 * (n + 1))

    print(f"\nbarge-in: next frame after the cut came {max(silence_after_ms):.1f} ms later (max)")
    print(f"truncation error vs frames played (ms): {truncation_errors}")
    assert all(abs(e) <= 20 for e in truncation_errors)
    assert rig.log.of("error") == []
    statuses = [r["status"] for r in rig.log.of("response_done") if r["kind"] == "reply"]
    assert "cancelled" in statuses  # at least one cut came while the server was still talking
    items = {i["id"]: i for i in rig.connection.items()}
    for truncate in rig.connection.of("conversation.item.truncate"):
        assert truncate["item_id"] in items  # the server kept every cut item (nothing refused)

"""Connection.aclose: nothing new starts afterwards (no idle-timeout turn, no transcription)."""

from __future__ import annotations

from realtalk.protocol import events as ev
from realtalk.server.engines.scripted import ScriptedTranscriber
from tests.unit.server.conftest import Harness, silence


async def test_closing_mid_reply_arms_no_idle_timeout_and_transcribes_nothing(
    harness: Harness,
) -> None:
    td = {"type": "server_vad", "idle_timeout_ms": 5000}
    await harness.send(ev.session_update({"audio": {"input": {"turn_detection": td}}}))
    await harness.append(silence(300))
    await harness.send(ev.conversation_item_create(ev.user_text_item("Hi there")))
    await harness.send(ev.response_create())
    await harness.connection.aclose()  # cancels the reply, which would arm the idle timer

    assert harness.of("response.done")[-1]["response"]["status"] == "cancelled"
    assert harness.connection._idle is None
    start = len(harness.events)
    harness.connection._idle_timeout()  # as if a timer armed earlier fired now
    assert harness.types(start) == []
    transcriber = harness.engines.transcriber
    assert isinstance(transcriber, ScriptedTranscriber) and transcriber.calls == 0

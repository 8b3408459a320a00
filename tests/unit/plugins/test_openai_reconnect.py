"""Reconnection and recycling without sockets: what is replayed, what waits, what is fatal."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest

from realtalk.errors import ConnectionLostError, FatalServerError
from realtalk.plugins.openai import OpenAIRealtimeConfig, OpenAISession, ReconnectPolicy, reconnect
from realtalk.protocol import events
from tests.unit.plugins.harness import FakeWebSocket, Harness, settle


class Reopener:
    """Replaces OpenAIRealtime._open: fails ``failures`` times, then attaches a fake session."""

    def __init__(self, h: Harness, failures: list[Exception] | None = None) -> None:
        self.h = h
        self.failures = list(failures or [])
        self.sessions: list[OpenAISession] = []

    async def __call__(self) -> OpenAISession:
        if self.failures:
            raise self.failures.pop(0)
        session = OpenAISession(ws=FakeWebSocket(), msg_queue=asyncio.Queue(), tasks=[])  # type: ignore[arg-type]
        self.h.model._attach(session)
        self.h.session = session
        self.sessions.append(session)
        return session


def fast(**kwargs: object) -> OpenAIRealtimeConfig:
    policy = ReconnectPolicy(max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0)
    return OpenAIRealtimeConfig(reconnect=policy, **kwargs)  # type: ignore[arg-type]


async def drop_mid_reply(h: Harness, *, say_more: bool) -> list[dict]:
    await h.model.send_text_message("tell me a story")
    user_create, reply = h.sent()
    h.feed(*h.ack(user_create))
    seq = h.audio_response(
        "resp_1", "item_a", 600, metadata=reply["response"]["metadata"], done=False
    )
    h.feed(*seq[:-4])  # audio arrived, the reply is not finished
    h.feed(
        events.response_output_audio_transcript_delta(
            h.eid(), "resp_1", "item_a", 0, 0, "Once upon"
        )
    )
    h.model._connection_lost(h.session, "connection lost (test)")
    if say_more:
        await h.model.send_text_message("are you there?")  # while reconnecting: kept
    await settle(h.model, rounds=50)
    assert [e["attempt"] for e in h.of("reconnecting")] == [1]
    assert [e["attempt"] for e in h.of("reconnected")] == [1]
    return h.sent()


def texts(sent: list[dict]) -> list[tuple[str, str]]:
    return [
        (e["item"]["role"], e["item"]["content"][0]["text"])
        for e in sent
        if e["type"] == "conversation.item.create"
    ]


async def test_drop_mid_reply_replays_the_conversation_and_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness(fast())
    monkeypatch.setattr(h.model, "_open", Reopener(h))
    sent = await drop_mid_reply(h, say_more=False)
    assert texts(sent) == [("user", "tell me a story"), ("assistant", "Once upon")]
    creates = [e for e in sent if e["type"] == "conversation.item.create"]
    assert creates[1]["previous_item_id"] == creates[0]["item"]["id"]
    assert [e["type"] for e in sent][-1] == "response.create"
    assert sent[-1]["response"]["metadata"]["kind"] == "resume"  # the cut reply is asked again
    # The audio that had arrived plays out; nothing waits forever for the lost rest of it.
    h.play(600)
    assert h.of("agent_speech_ended")[-1]["played_ms"] == 600


async def test_a_message_sent_while_reconnecting_is_delivered_after_the_replay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness(fast())
    monkeypatch.setattr(h.model, "_open", Reopener(h))
    sent = await drop_mid_reply(h, say_more=True)
    assert texts(sent) == [
        ("user", "tell me a story"),
        ("assistant", "Once upon"),
        ("user", "are you there?"),
    ]
    (create,) = [e for e in sent if e["type"] == "response.create"]
    assert create["response"]["metadata"]["kind"] == "reply"  # no extra "resume" reply
    h.feed(h.created_for(create, "resp_2"), h.done("resp_2"))
    assert h.sent() == []


async def test_transient_failures_back_off_then_fatal_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness(fast())
    monkeypatch.setattr(
        h.model,
        "_open",
        Reopener(
            h, [ConnectionLostError("refused"), FatalServerError("bad key", code="invalid_api_key")]
        ),
    )
    h.model._connection_lost(h.session, "gone")
    await settle(h.model, rounds=50)
    assert [e["attempt"] for e in h.of("reconnecting")] == [1, 2]
    assert h.of("reconnected") == []
    assert h.of("error")[-1].fatal is True and h.of("error")[-1].code == "invalid_api_key"
    assert h.of("closed")


async def test_giving_up_after_max_attempts_is_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(fast())
    monkeypatch.setattr(h.model, "_open", Reopener(h, [ConnectionLostError("no")] * 3))
    h.model._connection_lost(h.session, "gone")
    await settle(h.model, rounds=50)
    assert len(h.of("reconnecting")) == 3
    error = h.of("error")[-1]
    assert error.fatal and error.code == "connection_lost" and "3 attempts" in error.message


async def test_tool_output_of_a_dropped_session_is_replayed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.unit.plugins.test_openai_tools import TOOLS

    h = Harness(fast(), tools=TOOLS)
    monkeypatch.setattr(h.model, "_open", Reopener(h))
    h.feed(h.created("resp_fc"), *h.function_call("resp_fc", "call_1", "lookup", '{"query": "q"}'))
    h.feed(h.done("resp_fc"))
    await settle(h.model)
    first = h.sent()
    assert [e["type"] for e in first] == ["conversation.item.create", "response.create"]
    h.model._connection_lost(h.session, "gone")  # before the output was acknowledged
    await settle(h.model, rounds=50)
    sent = h.sent()
    types = [(e["type"], e.get("item", {}).get("type")) for e in sent]
    assert ("conversation.item.create", "function_call") in types
    assert ("conversation.item.create", "function_call_output") in types
    assert [t for t, _ in types].count("response.create") == 1  # the unanswered request, once


async def test_session_expired_then_close_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(fast())
    monkeypatch.setattr(h.model, "_open", Reopener(h))
    h.feed(h.error("session_expired", "Your session hit the maximum duration of 60 minutes."))
    assert h.of("error")[0].fatal is False
    h.model._connection_lost(h.session, "closed by the server (code 1001)")
    await settle(h.model, rounds=50)
    assert [e["attempt"] for e in h.of("reconnected")] == [1]


async def test_recycle_waits_for_the_reply_to_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(fast())
    reopen = Reopener(h)
    monkeypatch.setattr(h.model, "_open", reopen)
    h.feed(*h.audio_response("resp_1", "item_a", 200, done=False))
    reconnect.on_recycle_due(h.model)
    await settle(h.model)
    assert reopen.sessions == []  # a reply is active
    h.feed(h.done("resp_1"))
    await settle(h.model)
    assert reopen.sessions == []  # its audio still plays
    h.play(200)
    await settle(h.model, rounds=50)
    assert len(reopen.sessions) == 1
    assert h.of("reconnecting")[0]["reason"].startswith("session recycle")


async def test_user_audio_of_an_outage_reaches_the_new_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from realtalk.media.frame import AudioFrame

    h = Harness(fast())
    monkeypatch.setattr(h.model, "_open", Reopener(h))
    frame = AudioFrame.from_array(np.full(960, 3000, dtype=np.int16), 48000)
    old = h.session
    h.model._connection_lost(old, "gone")
    for _ in range(50):  # one second of speech while the link is down
        await h.model.handle_audio_input(frame)
    await settle(h.model, rounds=50)
    appended = [e for e in h.sent() if e["type"] == "input_audio_buffer.append"]
    appended_ms = sum(len(base64.b64decode(e["audio"])) for e in appended) / 48
    (reconnected,) = h.of("reconnected")
    # (whole milliseconds per append, rounded down)
    assert reconnected["replayed_audio_ms"] == pytest.approx(appended_ms, abs=len(appended))
    assert 900 <= appended_ms <= 1000  # all of it but the resampler's and batch's tail
    assert reconnected["dropped_audio_ms"] == 0


async def test_audio_beyond_the_outage_limit_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from realtalk.media.frame import AudioFrame
    from realtalk.plugins.openai.reconnect import MAX_HELD_AUDIO_MS

    h = Harness(fast())
    release = asyncio.Event()
    reopen = Reopener(h)

    async def slow_open() -> OpenAISession:
        await release.wait()
        return await reopen()

    monkeypatch.setattr(h.model, "_open", slow_open)
    h.model._connection_lost(h.session, "gone")
    await settle(h.model)
    frame = AudioFrame(bytes(4800), 24000)  # 100 ms at the wire rate: passes through as is
    for _ in range(MAX_HELD_AUDIO_MS // 100 + 20):
        await h.model.handle_audio_input(frame)
    release.set()
    await settle(h.model, rounds=50)
    (reconnected,) = h.of("reconnected")
    assert reconnected["replayed_audio_ms"] <= MAX_HELD_AUDIO_MS
    assert reconnected["dropped_audio_ms"] >= 1900
    (error,) = [e for e in h.of("error") if e.code == "audio_dropped"]
    assert not error.fatal and "audio" in error.message


async def test_a_reply_cut_by_the_network_is_reported_done(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(fast())
    monkeypatch.setattr(h.model, "_open", Reopener(h))
    h.feed(*h.audio_response("resp_1", "item_a", 200, done=False))
    h.model._connection_lost(h.session, "gone")
    await settle(h.model, rounds=50)
    (done,) = h.of("response_done")
    assert done["response_id"] == "resp_1" and done["reason"] == "connection_lost"
    (resume,) = [e for e in h.sent() if e["type"] == "response.create"]
    h.play(200)
    h.feed(h.created_for(resume, "resp_2"), h.done("resp_2"))
    assert len(h.of("turn_metrics")) == 1  # the cut response does not block the turn forever

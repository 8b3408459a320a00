"""AgentSession against a fake model: lifecycle order, state derivation, event relay, close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from realtalk.agent import Agent
from realtalk.errors import NotConnectedError
from realtalk.media.frame import AudioFrame
from realtalk.metrics import TurnMetrics
from realtalk.realtime.base import ModelError, RealtimeBaseModel
from realtalk.session import AgentSession
from realtalk.transports.base import Transport


class FakeModel(RealtimeBaseModel):
    """Records every call into a shared log; tests emit the model's events by hand."""

    def __init__(self, log: list[Any], *, fail_connect: bool = False) -> None:
        super().__init__()
        self.log = log
        self.fail_connect = fail_connect

    def set_agent(self, agent: Agent) -> None:
        self.log.append(("set_agent", agent.instructions))

    async def connect(self) -> None:
        self.log.append(("connect",))
        if self.fail_connect:
            raise ConnectionRefusedError("nobody listens")

    async def aclose(self) -> None:
        self.log.append(("model.aclose",))

    async def handle_audio_input(self, audio: Any) -> None:
        self.log.append(("audio", audio))

    async def handle_video_input(self, frame: Any) -> None:
        self.log.append(("video", frame))

    async def send_text_message(self, message: str) -> None:
        self.log.append(("send_text_message", message))

    async def send_message(self, message: str, *, interruptible: bool = True) -> None:
        self.log.append(("send_message", message, interruptible))

    async def create_response(
        self,
        instructions: str | None = None,
        *,
        frames: list[Any] | None = None,
        interruptible: bool = True,
    ) -> None:
        self.log.append(("create_response", instructions, frames, interruptible))

    async def interrupt(self) -> None:
        self.log.append(("interrupt",))

    async def update_agent(self, agent: Agent) -> None:
        self.log.append(("update_agent", agent.instructions))


class FakeTransport(Transport):
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def attach(self, session: AgentSession) -> None:
        self.session = session
        self.log.append(("transport.attach",))

    async def aclose(self) -> None:
        self.log.append(("transport.aclose",))


class Greeter(Agent):
    def __init__(self, log: list[Any]) -> None:
        super().__init__(instructions="be brief")
        self.log = log

    async def on_enter(self) -> None:
        self.log.append(("on_enter",))
        await self.session.say("Hello!")

    async def on_exit(self) -> None:
        self.log.append(("on_exit",))


class Recorder:
    """Collects the session's events as (name, payload)."""

    EVENTS = (
        "user_state_changed",
        "agent_state_changed",
        "transcription",
        "function_call",
        "metrics",
        "error",
        "closed",
        "reconnecting",
        "reconnected",
    )

    def __init__(self, session: AgentSession) -> None:
        self.events: list[tuple[str, Any]] = []
        for name in self.EVENTS:
            session.on(name, lambda payload, name=name: self.events.append((name, payload)))

    def of(self, name: str) -> list[Any]:
        return [payload for event, payload in self.events if event == name]

    def states(self, name: str = "agent_state_changed") -> list[str]:
        return [payload["state"] for payload in self.of(name)]


@pytest.fixture
def log() -> list[Any]:
    return []


@pytest.fixture
async def started(log: list[Any]) -> tuple[AgentSession, FakeModel, Recorder]:
    model = FakeModel(log)
    session = AgentSession(agent=Agent(instructions="be brief"), model=model)
    recorder = Recorder(session)
    await session.start(FakeTransport(log))
    yield session, model, recorder
    await session.close()


# -- lifecycle ---------------------------------------------------------------------------------


async def test_start_connects_then_attaches_then_enters_and_close_reverses(
    log: list[Any],
) -> None:
    model = FakeModel(log)
    session = AgentSession(agent=Greeter(log), model=model)
    recorder = Recorder(session)

    await session.start(FakeTransport(log))
    assert log == [
        ("set_agent", "be brief"),
        ("connect",),
        ("transport.attach",),
        ("on_enter",),
        ("send_message", "Hello!", True),
    ]
    assert session.agent_state == "thinking"  # the greeting is on its way

    log.clear()
    await session.close()
    assert log == [("on_exit",), ("transport.aclose",), ("model.aclose",)]
    assert session.agent_state == "closed"
    assert recorder.of("closed") == [{"reason": "closed"}]


async def test_model_gets_an_audio_output_before_connect(log: list[Any]) -> None:
    model = FakeModel(log)
    assert model.audio_output is None
    session = AgentSession(agent=Agent(instructions="x"), model=model)
    assert model.audio_output is session.audio_output
    assert session.audio_output.sample_rate == 24000


async def test_close_is_idempotent_and_concurrent_callers_share_it(log: list[Any]) -> None:
    model = FakeModel(log)
    session = AgentSession(agent=Greeter(log), model=model)
    recorder = Recorder(session)
    await session.start(FakeTransport(log))

    await asyncio.gather(session.close(), session.close(), session.close())
    await session.close()

    assert log.count(("on_exit",)) == 1
    assert log.count(("model.aclose",)) == 1
    assert log.count(("transport.aclose",)) == 1
    assert len(recorder.of("closed")) == 1
    await asyncio.wait_for(session.wait_closed(), 1)
    # The session no longer listens to the model and the agent is free again.
    assert model.listener_count("user_speech_started") == 0
    with pytest.raises(RuntimeError):
        _ = session.agent.session


async def test_calls_after_close_raise_not_connected(log: list[Any]) -> None:
    session = AgentSession(agent=Agent(instructions="x"), model=FakeModel(log))
    with pytest.raises(NotConnectedError):
        await session.say("too early")
    await session.start()
    await session.close()
    for call in (session.say("hi"), session.reply(), session.interrupt(), session.send_text("x")):
        with pytest.raises(NotConnectedError):
            await call


async def test_start_twice_is_refused(started: tuple[AgentSession, FakeModel, Recorder]) -> None:
    session, _, _ = started
    with pytest.raises(RuntimeError, match="already"):
        await session.start()


async def test_failed_connect_closes_without_entering(log: list[Any]) -> None:
    model = FakeModel(log, fail_connect=True)
    session = AgentSession(agent=Greeter(log), model=model)
    recorder = Recorder(session)

    with pytest.raises(ConnectionRefusedError):
        await session.start(FakeTransport(log))

    assert ("on_enter",) not in log and ("on_exit",) not in log
    assert ("transport.attach",) not in log
    assert ("model.aclose",) in log
    assert session.agent_state == "closed"
    assert "start failed" in recorder.of("closed")[0]["reason"]


async def test_closing_while_connecting_skips_attach_and_on_enter(log: list[Any]) -> None:
    connecting, release = asyncio.Event(), asyncio.Event()

    class SlowModel(FakeModel):
        async def connect(self) -> None:
            connecting.set()
            await release.wait()

    session = AgentSession(agent=Greeter(log), model=SlowModel(log))
    starting = asyncio.create_task(session.start(FakeTransport(log)))
    await connecting.wait()
    await session.close(reason="stopped by signal")
    release.set()
    await starting
    assert ("transport.attach",) not in log and ("on_enter",) not in log
    assert session.agent_state == "closed"
    await asyncio.wait_for(session.wait_started(), 1)  # nobody hangs waiting for the start


async def test_failing_on_enter_is_reported_and_the_session_goes_on(log: list[Any]) -> None:
    class Broken(Agent):
        async def on_enter(self) -> None:
            raise RuntimeError("greeting exploded")

    session = AgentSession(agent=Broken(instructions="x"), model=FakeModel(log))
    recorder = Recorder(session)
    await session.start()
    assert "greeting exploded" in recorder.of("error")[0]["message"]
    await session.send_text("still here?")
    assert ("send_text_message", "still here?") in log
    await session.close()


async def test_a_transport_task_may_close_the_session_that_closes_it(log: list[Any]) -> None:
    """A transport that ends the conversation from its own pump, and cancels it in aclose."""

    class Hangup(FakeTransport):
        async def attach(self, session: AgentSession) -> None:
            await super().attach(session)
            self.pump = asyncio.get_running_loop().create_task(self._run())

        async def _run(self) -> None:
            await self.session.close(reason="caller hung up")

        async def aclose(self) -> None:
            self.pump.cancel()
            await asyncio.gather(self.pump, return_exceptions=True)
            await super().aclose()

    session = AgentSession(agent=Agent(instructions="x"), model=FakeModel(log))
    recorder = Recorder(session)
    await session.start(Hangup(log))
    await asyncio.wait_for(session.wait_closed(), 2)
    assert recorder.of("closed") == [{"reason": "caller hung up"}]
    assert ("model.aclose",) in log


# -- delegation --------------------------------------------------------------------------------


async def test_say_reply_interrupt_send_text_delegate_to_the_model(
    started: tuple[AgentSession, FakeModel, Recorder], log: list[Any]
) -> None:
    session, _, _ = started
    log.clear()
    await session.say("Exactly this.", interruptible=False)
    await session.reply("be funny", frames=["img"])
    await session.send_text("typed")
    await session.interrupt()
    assert log == [
        ("send_message", "Exactly this.", False),
        ("create_response", "be funny", ["img"], True),
        ("send_text_message", "typed"),
        ("interrupt",),
    ]


async def test_empty_text_is_refused(started: tuple[AgentSession, FakeModel, Recorder]) -> None:
    session, _, _ = started
    with pytest.raises(ValueError):
        await session.say("  ")
    with pytest.raises(ValueError):
        await session.send_text("")


async def test_audio_is_dropped_before_start_and_passed_on_after(log: list[Any]) -> None:
    session = AgentSession(agent=Agent(instructions="x"), model=FakeModel(log))
    frame = AudioFrame(bytes(960 * 2 * 2), 48000, 2)
    await session.push_audio(frame)
    await session.start()
    await session.push_audio(frame)
    assert [entry for entry in log if entry[0] == "audio"] == [("audio", frame)]
    with pytest.raises(ValueError):
        await session.push_audio(b"raw bytes")  # type: ignore[arg-type]
    await session.close()


async def test_video_reaches_the_model_only_with_vision_and_throttled(log: list[Any]) -> None:
    blind = AgentSession(agent=Agent(instructions="x"), model=FakeModel(log))
    await blind.start()
    await blind.push_video("frame-0")
    await blind.close()
    assert not [entry for entry in log if entry[0] == "video"]

    seeing = AgentSession(
        agent=Agent(instructions="x"), model=FakeModel(log), vision=True, max_video_fps=1.0
    )
    await seeing.start()
    for i in range(5):  # far faster than one per second
        await seeing.push_video(f"frame-{i}")
    await seeing.close()
    assert [entry for entry in log if entry[0] == "video"] == [("video", "frame-0")]


async def test_agent_updates_reach_a_live_model(
    started: tuple[AgentSession, FakeModel, Recorder], log: list[Any]
) -> None:
    session, _, _ = started
    await session.agent.update_instructions("be verbose")
    assert ("update_agent", "be verbose") in log


# -- state -------------------------------------------------------------------------------------


async def test_a_spoken_turn_moves_user_and_agent_states(
    started: tuple[AgentSession, FakeModel, Recorder],
) -> None:
    session, model, recorder = started
    model.emit("user_speech_started", {})
    assert session.user_state == "speaking"
    model.emit("user_speech_ended", {})
    assert (session.user_state, session.agent_state) == ("listening", "thinking")
    model.emit("response_created", {"response_id": "r1"})
    model.emit("agent_speech_started", {"item_id": "i1"})
    assert session.agent_state == "speaking"
    model.emit("response_done", {"response_id": "r1"})
    assert session.agent_state == "speaking"  # the audio is still playing
    # As the plugin does: the last frame played, then at once the turn is reported complete.
    model.emit("agent_speech_ended", {"item_id": "i1", "played_ms": 900, "interrupted": False})
    model.emit("turn_metrics", TurnMetrics(index=0))
    await asyncio.sleep(0)
    assert session.agent_state == "listening"

    assert recorder.states() == ["listening", "thinking", "speaking", "listening"]
    assert recorder.states("user_state_changed") == ["speaking", "listening"]


async def test_the_agent_keeps_thinking_between_a_tool_call_and_its_follow_up(
    started: tuple[AgentSession, FakeModel, Recorder],
) -> None:
    session, model, recorder = started
    await session.send_text("what time is it?")
    model.emit("response_created", {"response_id": "r1"})
    model.emit("agent_speech_started", {"item_id": "i1"})  # "let me look that up"
    model.emit("response_done", {"response_id": "r1"})
    model.emit("agent_speech_ended", {"item_id": "i1", "played_ms": 700, "interrupted": False})
    await asyncio.sleep(0)
    assert session.agent_state == "thinking"  # the tool runs; the turn is not over
    model.emit("function_call", {"name": "now", "arguments": "{}", "output": "noon"})
    model.emit("response_created", {"response_id": "r2"})
    model.emit("agent_speech_started", {"item_id": "i2"})
    model.emit("response_done", {"response_id": "r2"})
    model.emit("agent_speech_ended", {"item_id": "i2", "played_ms": 500, "interrupted": False})
    model.emit("turn_metrics", TurnMetrics(index=0, tool_calls=["now"]))
    await asyncio.sleep(0)
    assert recorder.states() == [
        "listening",
        "thinking",
        "speaking",
        "thinking",
        "speaking",
        "listening",
    ]


async def test_audio_received_but_not_yet_playing_counts_as_thinking(
    started: tuple[AgentSession, FakeModel, Recorder],
) -> None:
    session, model, _ = started
    model.emit("response_created", {"response_id": "r1"})
    session.audio_output.push("i1", bytes(4800))  # 100 ms, still in the jitter buffer
    model.emit("response_done", {"response_id": "r1"})
    model.emit("turn_metrics", TurnMetrics(index=0))
    assert session.agent_state == "thinking"
    session.audio_output.flush()
    await session.interrupt()
    assert session.agent_state == "listening"


# -- relay -------------------------------------------------------------------------------------


async def test_model_events_are_relayed_as_json_friendly_dicts(
    started: tuple[AgentSession, FakeModel, Recorder],
) -> None:
    session, model, recorder = started
    model.emit(
        "realtime_model_transcription",
        {"role": "agent", "text": "Hi the", "is_final": False, "item_id": "i1"},
    )
    model.emit(
        "realtime_model_transcription",
        {"role": "user", "text": "hello", "is_final": True, "item_id": "i0"},
    )
    model.emit(
        "function_call",
        {"name": "now", "call_id": "c1", "arguments": "{}", "output": "noon", "is_error": False},
    )
    model.emit("error", ModelError("rate limited", code="rate_limit_exceeded"))
    model.emit("reconnecting", {"attempt": 1, "reason": "session limit"})
    model.emit("reconnected", {"attempt": 1})

    assert recorder.of("transcription") == [
        {"role": "agent", "text": "Hi the", "is_final": False, "item_id": "i1"},
        {"role": "user", "text": "hello", "is_final": True, "item_id": "i0"},
    ]
    assert recorder.of("function_call") == [
        {"name": "now", "arguments": "{}", "output": "noon", "is_error": False}
    ]
    assert recorder.of("error") == [
        {"message": "rate limited", "code": "rate_limit_exceeded", "fatal": False}
    ]
    assert recorder.of("reconnecting") == [{"attempt": 1, "reason": "session limit"}]
    assert recorder.of("reconnected") == [{"attempt": 1}]
    assert not session.closed


async def test_turn_metrics_are_kept_and_emitted(
    started: tuple[AgentSession, FakeModel, Recorder],
) -> None:
    session, model, recorder = started
    turn = TurnMetrics(index=0, user_speech_end_at=10.0, first_audio_played_at=10.25)
    model.emit("turn_metrics", turn)
    assert session.metrics == [turn]
    [payload] = recorder.of("metrics")
    assert payload["latency_ms"] == pytest.approx(250.0)
    assert payload == turn.to_dict()


async def test_a_fatal_error_closes_the_session(
    started: tuple[AgentSession, FakeModel, Recorder], log: list[Any]
) -> None:
    session, model, recorder = started
    model.emit("error", ModelError("bad key", code="invalid_api_key", fatal=True))
    await asyncio.wait_for(session.wait_closed(), 1)
    assert recorder.of("error")[0]["fatal"] is True
    assert "bad key" in recorder.of("closed")[0]["reason"]
    assert session.close_reason == recorder.of("closed")[0]["reason"]
    assert ("model.aclose",) in log


async def test_the_model_closing_closes_the_session(
    started: tuple[AgentSession, FakeModel, Recorder],
) -> None:
    session, model, recorder = started
    model.emit("closed", {"reason": "server went away"})
    await asyncio.wait_for(session.wait_closed(), 1)
    assert recorder.of("closed") == [{"reason": "server went away"}]


async def test_two_sessions_do_not_hear_each_other(log: list[Any]) -> None:
    a = AgentSession(agent=Agent(instructions="a"), model=FakeModel(log))
    b = AgentSession(agent=Agent(instructions="b"), model=FakeModel(log))
    heard_a, heard_b = Recorder(a), Recorder(b)
    await a.start()
    await b.start()
    a.model.emit("user_speech_started", {})
    assert heard_a.states("user_state_changed") == ["speaking"]
    assert heard_b.states("user_state_changed") == []
    await a.close()
    await b.close()

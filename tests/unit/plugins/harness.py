"""A socket-free harness for OpenAIRealtime: feed it server events, read what it sends.

Every server event the tests build is checked against the SDK's server union, and every client
event the model sends against the SDK's client union (strictly) and our own validator, so a test
sequence cannot drift away from the real protocol.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable
from typing import Any, get_args

import numpy as np

from realtalk.agent import Agent
from realtalk.media.playout import AudioOutput
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeClient, OpenAIRealtimeConfig
from realtalk.plugins.openai.link import Action, ArmTimer, CancelTimer, Emit, RunTool
from realtalk.protocol import IdGenerator, events, validate_client_event
from realtalk.realtime.events import ModelEventName
from realtalk.tools import FunctionTool
from tests.conformance import check_client_event, check_server_event

EVENT_NAMES = get_args(ModelEventName)  # every event the model may emit

FRAME_MS = 20


class FakeWebSocket:
    """Stands in for the socket; the send loop is not running in these tests."""

    close_code = None
    close_reason = None

    async def send(self, data: str) -> None:  # pragma: no cover - never called
        raise AssertionError("the harness reads the queue, not the socket")

    async def close(self) -> None:
        return None


def tone(ms: int, rate: int = 24000, freq: float = 440.0) -> bytes:
    """A loud sine, so silence after a flush is easy to tell apart."""
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * freq * t) * 12000).astype("<i2").tobytes()


class Harness:
    def __init__(
        self,
        config: OpenAIRealtimeConfig | None = None,
        *,
        tools: Iterable[FunctionTool] = (),
        output_rate: int = 24000,
    ) -> None:
        self.model = OpenAIRealtime(
            api_key="sk-test", model="gpt-realtime", base_url="ws://127.0.0.1:9/v1", config=config
        )
        self.output = AudioOutput(sample_rate=output_rate, realtime=False, jitter_ms=0)
        self.model.audio_output = self.output
        self.model.set_agent(Agent(instructions="Be brief.", tools=list(tools)))
        self.ids = IdGenerator(deterministic=True)
        self.emitted: list[tuple[str, Any]] = []
        for name in EVENT_NAMES:
            self.model.on(
                name, lambda *args, _n=name: self.emitted.append((_n, args[0] if args else None))
            )
        self._outbox: list[dict[str, Any]] = []
        self.open_link()

    def open_link(self) -> None:
        """A new link: the model sends its settings and the server confirms them."""
        self.session = self.model.adopt_link(FakeWebSocket())  # type: ignore[arg-type]
        (update,) = self.sent()
        assert update["type"] == "session.update"
        self.model.feed(events.session_updated(self.eid(), update["session"]))
        self.updates = [update]

    # -- what the model sent -------------------------------------------------------------------

    def sent(self) -> list[dict[str, Any]]:
        """Client events queued since the last call, each validated strictly."""
        out = []
        while not self.session.msg_queue.empty():
            event = self.session.msg_queue.get_nowait()
            check_client_event(event)
            problem = validate_client_event(event)
            assert problem is None, (event["type"], problem)
            out.append(event)
        return out

    def sent_types(self) -> list[str]:
        return [event["type"] for event in self.sent()]

    def of(self, name: str) -> list[Any]:
        return [payload for event, payload in self.emitted if event == name]

    # -- playback ------------------------------------------------------------------------------

    def play(self, ms: int) -> list[bytes]:
        return [self.output.read_frame().data for _ in range(ms // FRAME_MS)]

    def next_frame_silent(self) -> bool:
        return not any(self.output.read_frame().data)

    # -- server side ---------------------------------------------------------------------------

    def feed(self, *server_events: dict[str, Any], validate: bool = True) -> None:
        for event in server_events:
            if validate:
                check_server_event(event)
            self.model.feed(event)

    def eid(self) -> str:
        return self.ids("event")

    def response(
        self, response_id: str, status: str = "in_progress", **extra: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": response_id,
            "object": "realtime.response",
            "status": status,
            "output": [],
        }
        body.update(extra)
        return body

    def created(self, response_id: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        extra = {"metadata": metadata} if metadata else {}
        return events.response_created(self.eid(), self.response(response_id, **extra))

    def created_for(self, request: dict[str, Any], response_id: str) -> dict[str, Any]:
        """response.created answering the client's response.create (echoes its metadata)."""
        return self.created(response_id, request["response"]["metadata"])

    def done(
        self,
        response_id: str,
        status: str = "completed",
        output: list[dict[str, Any]] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if usage is not None:
            extra["usage"] = usage
        if status == "cancelled":
            extra["status_details"] = {"type": "cancelled", "reason": "turn_detected"}
        body = self.response(response_id, status, **extra)
        body["output"] = output or []
        return events.response_done(self.eid(), body)

    def audio_item(
        self, response_id: str, item_id: str, *, start: bool = True
    ) -> list[dict[str, Any]]:
        item = events.message_item(
            "assistant", [], item_id=item_id, status="in_progress", with_object=True
        )
        out = []
        if start:
            out.append(events.response_output_item_added(self.eid(), response_id, 0, item))
            out.append(events.conversation_item_added(self.eid(), item, None))
        return out

    def audio_deltas(
        self, response_id: str, item_id: str, ms: int, chunk_ms: int = 100
    ) -> list[dict[str, Any]]:
        pcm = tone(ms)
        step = 48 * chunk_ms
        return [
            events.response_output_audio_delta(
                self.eid(), response_id, item_id, 0, 0, base64.b64encode(pcm[i : i + step]).decode()
            )
            for i in range(0, len(pcm), step)
        ]

    def audio_end(self, response_id: str, item_id: str, transcript: str) -> list[dict[str, Any]]:
        item = events.message_item(
            "assistant",
            [{"type": "output_audio", "transcript": transcript}],
            item_id=item_id,
            status="completed",
            with_object=True,
        )
        return [
            events.response_output_audio_done(self.eid(), response_id, item_id, 0, 0),
            events.response_output_audio_transcript_done(
                self.eid(), response_id, item_id, 0, 0, transcript
            ),
            events.response_output_item_done(self.eid(), response_id, 0, item),
            events.conversation_item_done(self.eid(), item, None),
        ]

    def audio_response(
        self,
        response_id: str,
        item_id: str,
        ms: int,
        transcript: str = "one two three four five six seven eight nine ten",
        *,
        metadata: dict[str, str] | None = None,
        done: bool = True,
    ) -> list[dict[str, Any]]:
        seq = [self.created(response_id, metadata), *self.audio_item(response_id, item_id)]
        seq += self.audio_deltas(response_id, item_id, ms)
        seq += self.audio_end(response_id, item_id, transcript)
        if done:
            seq.append(self.done(response_id))
        return seq

    def speech_started(self, item_id: str = "item_user") -> dict[str, Any]:
        return events.speech_started(self.eid(), item_id, 1000)

    def speech_stopped(self, item_id: str = "item_user") -> dict[str, Any]:
        return events.speech_stopped(self.eid(), item_id, 2000)

    def function_call(
        self, response_id: str, call_id: str, name: str, arguments: str, index: int = 0
    ) -> list[dict[str, Any]]:
        item_id = f"item_fc_{call_id}"
        started = events.function_call_item(
            call_id=call_id,
            name=name,
            arguments="",
            item_id=item_id,
            status="in_progress",
            with_object=True,
        )
        finished = events.function_call_item(
            call_id=call_id,
            name=name,
            arguments=arguments,
            item_id=item_id,
            status="completed",
            with_object=True,
        )
        return [
            events.response_output_item_added(self.eid(), response_id, index, started),
            events.conversation_item_added(self.eid(), started, None),
            events.response_function_call_arguments_done(
                self.eid(), response_id, item_id, index, call_id, name, arguments
            ),
            events.response_output_item_done(self.eid(), response_id, index, finished),
            events.conversation_item_done(self.eid(), finished, None),
        ]

    def ack(self, client_event: dict[str, Any]) -> list[dict[str, Any]]:
        """conversation.item.added/done for a conversation.item.create the client sent."""
        item = dict(client_event["item"])
        item["object"] = "realtime.item"
        item["status"] = "completed"
        return [
            events.conversation_item_added(self.eid(), item, None),
            events.conversation_item_done(self.eid(), item, None),
        ]

    def error(
        self,
        code: str,
        message: str = "nope",
        client_event_id: str | None = None,
        type: str = "invalid_request_error",
    ) -> dict[str, Any]:
        return events.error(
            self.eid(), message=message, code=code, type=type, client_event_id=client_event_id
        )


async def settle(model: OpenAIRealtime, rounds: int = 20) -> None:
    """Let tool tasks and emitter tasks run."""
    for _ in range(rounds):
        await asyncio.sleep(0)
    await model.wait_idle()


class CoreHarness(Harness):
    """The sans-I/O core alone: no event loop, no socket, a clock the test moves.

    Server events go in through ``receive_event``; the test reads the client events
    (``sent``), the model events (``of``), the armed timers (``timers``, fired with ``fire``)
    and every other action (``actions``), and plays the driver's part by hand: ``open_link``
    after a ``Reconnect``, ``core.connect_failed`` for a failed attempt.
    """

    def __init__(
        self,
        config: OpenAIRealtimeConfig | None = None,
        *,
        tools: Iterable[FunctionTool] = (),
        output_rate: int = 24000,
    ) -> None:
        self.now = 0.0
        self.core = OpenAIRealtimeClient(
            config or OpenAIRealtimeConfig(),
            model="gpt-realtime",
            ids=IdGenerator(deterministic=True),
            now=lambda: self.now,
        )
        self.output = AudioOutput(sample_rate=output_rate, realtime=False, jitter_ms=0)
        core = self.core
        self.output.on_item_started = lambda item_id: core.audio_started(item_id, self.now)
        self.output.on_item_finished = core.audio_played
        self.output.on_idle = core.playout_idle
        core.set_audio_output(self.output)
        self.tools = list(tools)
        core.configure("Be brief.", [tool.to_openai() for tool in self.tools])
        self.ids = IdGenerator(deterministic=True)
        self.emitted: list[tuple[str, Any]] = []
        self.actions: list[Action] = []
        self.timers: dict[str, float] = {}
        self.wire: list[dict[str, Any]] = []
        core.connect()
        self.open_link()

    def open_link(self) -> None:
        """The driver opened a socket; the server confirms the settings."""
        self.core.connection_opened()
        update = self.sent()[0]
        assert update["type"] == "session.update", update
        self.feed(events.session_updated(self.eid(), update["session"]))

    def collect(self) -> None:
        for action in self.core.actions():
            if isinstance(action, Emit):
                self.emitted.append((action.name, action.payload))
                continue
            self.actions.append(action)
            if isinstance(action, ArmTimer):
                self.timers[action.name] = action.delay_s
            elif isinstance(action, CancelTimer):
                self.timers.pop(action.name, None)
        self.wire += self.core.events_to_send()

    def of_type(self, kind: type) -> list[Any]:
        self.collect()
        return [a for a in self.actions if isinstance(a, kind)]

    def fire(self, name: str) -> None:
        self.collect()
        assert name in self.timers, (name, self.timers)
        del self.timers[name]
        self.core.timer_fired(name)
        self.collect()

    def feed(self, *server_events: dict[str, Any], validate: bool = True) -> None:
        for event in server_events:
            if validate:
                check_server_event(event)
            self.core.receive_event(event)
            self.collect()

    def sent(self) -> list[dict[str, Any]]:
        self.collect()
        out, self.wire = self.wire, []
        for event in out:
            check_client_event(event)
            problem = validate_client_event(event)
            assert problem is None, (event["type"], problem)
        return out

    def play(self, ms: int) -> list[bytes]:
        frames = super().play(ms)
        self.collect()
        return frames

    def run_tools(self) -> None:
        """Run every requested tool call to completion, as the driver's tasks would."""
        import asyncio

        from realtalk.plugins.openai.tools_runner import ToolRunner

        runner = ToolRunner(lambda call, result: None)
        runner.set_tools(self.tools)
        for action in self.of_type(RunTool):
            self.actions.remove(action)
            result = asyncio.run(runner.invoke(action.call))
            self.core.tool_finished(action.call, result)
            self.collect()

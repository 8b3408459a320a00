"""AgentSession: one conversation, wiring a transport (media in and out) to a realtime model.

The session owns the conversation's lifecycle (start, close), what the code may ask of the agent
(say, reply, interrupt, send_text), who is talking (``user_state``, ``agent_state``), and its own
events and metrics. It holds no process-wide state: many sessions can share a process.

The model does the protocol work (audio resampling, barge-in truncation, running tools); the session
turns the model's events into a small, JSON-friendly stream a UI can show as it is::

    user_state_changed    {"state"}: listening | speaking
    agent_state_changed   {"state"}: initializing | listening | thinking | speaking | closed
    transcription         {"role": "user" | "agent", "text", "is_final", "item_id"}; agent
                           text is paced with its voice; when cut off, the final one holds
                           only what was heard and carries "interrupted": true
    function_call         {"name", "arguments", "output", "is_error"}
    handoff               {"from", "to", "tool", "message", "cancelled_tools"} (docs/agents.md)
    metrics               TurnMetrics.to_dict() of each completed turn
    error                 {"message", "code", "fatal"}
    reconnecting          {"attempt", "reason"};  reconnected  {"attempt"}
    closed                {"reason"}

``agent_state`` is derived from what is going on rather than set by hand
(:mod:`realtalk.turn_taking`); the model reports a turn complete with ``turn_metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from realtalk.agent import Agent
from realtalk.errors import NotConnectedError
from realtalk.events import EventEmitter
from realtalk.handoff import Handoff, ToolCalls, history_to_delete
from realtalk.media.frame import AudioFrame
from realtalk.media.image import FrameThrottler
from realtalk.media.playout import AudioOutput
from realtalk.realtime.base import ModelError, RealtimeBaseModel
from realtalk.tools import FunctionTool, ToolResult
from realtalk.turn_taking import AgentState, TurnTaking, UserState

if TYPE_CHECKING:
    from realtalk.metrics import TurnMetrics

__all__ = ["AgentSession", "AgentState", "SessionTransport", "UserState"]

logger = logging.getLogger("realtalk.session")

_OUTPUT_SAMPLE_RATE = 24000  # what Realtime models speak; the transport resamples for its device

UserdataT = TypeVar("UserdataT")


class SessionTransport(Protocol):
    """What the session asks of its transport (:class:`realtalk.transports.base.Transport` is
    the base of every one); named here so the session and the transports do not import each
    other."""

    async def attach(self, session: AgentSession[Any]) -> None: ...

    async def aclose(self) -> None: ...


class AgentSession(EventEmitter[str], Generic[UserdataT]):
    """Runs ``agent`` on ``model`` and exchanges media with a transport.

    Args:
        agent: the instructions, tools and hooks; a tool may hand over to another agent
            (:mod:`realtalk.handoff`), which then becomes ``session.agent``.
        model: a realtime model session, not yet connected (e.g. ``OpenAIRealtime(...)``).
        vision: pass camera frames from :meth:`push_video` to the model; off by default because
            every image costs tokens.
        max_video_fps: at most this many camera frames per second reach the model.
        userdata: state shared by every agent of the conversation (``session.userdata``);
            type the session as ``AgentSession[MyData]`` to have it checked.
        handoff_grace_s: at a handoff, the old agent's other tools still running get this many
            seconds to finish; those still running then are cancelled (their output says so).
    """

    def __init__(
        self,
        *,
        agent: Agent,
        model: RealtimeBaseModel,
        vision: bool = False,
        max_video_fps: float = 1.0,
        userdata: UserdataT | None = None,
        handoff_grace_s: float = 2.0,
    ) -> None:
        super().__init__(logger=logger)
        if not isinstance(model, RealtimeBaseModel):
            raise TypeError(f"model must be a RealtimeBaseModel, got {type(model).__name__}")
        if not isinstance(agent, Agent):
            raise TypeError(f"agent must be an Agent, got {type(agent).__name__}")
        if not handoff_grace_s >= 0:
            raise ValueError(f"handoff_grace_s must be >= 0, got {handoff_grace_s}")
        self.agent = agent
        self.model = model
        self.handoff_grace_s = handoff_grace_s
        self._userdata = userdata
        #: Completed turns by the name of the agent that was active when each one ended.
        self.metrics_by_agent: dict[str, list[TurnMetrics]] = {}
        self._calls = ToolCalls()
        self._switching = False
        self._pending_enter: tuple[str, Agent, Handoff] | None = None
        self._replies_asked = 0  # say/reply/send_text calls, so a handoff knows if on_enter spoke
        self.vision = vision
        self.metrics: list[TurnMetrics] = []
        #: Why the session closed (None while open): "closed", "fatal error: ...", ...
        self.close_reason: str | None = None
        if model.audio_output is None:
            model.audio_output = AudioOutput(_OUTPUT_SAMPLE_RATE)
        self._throttler = FrameThrottler(max_video_fps)
        self._transport: SessionTransport | None = None
        self._handlers: list[tuple[str, Callable[..., Any]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._turns = TurnTaking(self.emit, lambda: self.audio_output.buffered_ms)
        # Lifecycle.
        self._start_called = False
        self._entered = False
        self._started = asyncio.Event()
        self._closed = asyncio.Event()
        self._close_task: asyncio.Task[None] | None = None
        self._vision_warned = False

    # -- properties ------------------------------------------------------------------------------

    @property
    def audio_output(self) -> AudioOutput:
        """Where the agent's voice is queued; the transport pulls paced 20 ms frames from it."""
        output = self.model.audio_output
        if output is None:  # a model that dropped it; give it a fresh one rather than crash
            output = self.model.audio_output = AudioOutput(_OUTPUT_SAMPLE_RATE)
        return output

    @property
    def userdata(self) -> UserdataT:
        """The state every agent of this conversation shares (``AgentSession(userdata=...)``).

        Raises:
            RuntimeError: the session was created without userdata.
        """
        if self._userdata is None:
            raise RuntimeError("this AgentSession has no userdata; pass AgentSession(userdata=...)")
        return self._userdata

    @userdata.setter
    def userdata(self, value: UserdataT) -> None:
        self._userdata = value

    @property
    def transport(self) -> SessionTransport | None:
        return self._transport

    @property
    def user_state(self) -> UserState:
        """``listening`` or ``speaking`` (the model's speech detection)."""
        return self._turns.user_state

    @property
    def agent_state(self) -> AgentState:
        """``initializing``, ``listening``, ``thinking``, ``speaking`` or ``closed``
        (:mod:`realtalk.turn_taking` says how it is derived)."""
        return self._turns.agent_state

    @property
    def closed(self) -> bool:
        return self._close_task is not None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, transport: SessionTransport | None = None) -> None:
        """Connect the model, attach the transport, then run the agent's ``on_enter``.

        Raises:
            RuntimeError: the session was already started.
            Whatever the model's ``connect`` raises (the session is then closed).
        """
        if self._start_called:
            raise RuntimeError("AgentSession.start() was already called; a session runs once")
        self._start_called = True
        self._subscribe()
        self.agent._attach(self)
        try:
            await self._start_mcp(self.agent)
            self.model.set_agent(self._model_view(self.agent))
            await self.model.connect()
            if self.closed:  # closed (Ctrl+C, a fatal error) while connecting
                return
            self._turns.connect()
            if transport is not None:
                self._transport = transport
                await transport.attach(self)
        except BaseException as exc:
            await self.close(reason=f"start failed: {exc}")
            raise
        if self.closed:
            return
        self._entered = True
        try:
            await self.agent.on_enter()
        except Exception as exc:
            # A failed greeting must not take the conversation down; say so and go on.
            logger.exception("%s.on_enter() failed", type(self.agent).__name__)
            self.emit("error", {"message": f"on_enter failed: {exc}", "code": None, "fatal": False})
        self._started.set()

    async def wait_started(self) -> None:
        """Return once :meth:`start` finished (``on_enter`` included), or the session closed."""
        await self._started.wait()

    async def close(self, *, reason: str = "closed") -> None:
        """Run ``on_exit``, close the transport and the model, and cancel the session's tasks.

        Idempotent; concurrent callers all wait for the one close. Safe to call from a task the
        close itself cancels (a transport's pump that decides the conversation is over).
        """
        if self._close_task is None:
            self.close_reason = reason
            self._close_task = asyncio.get_running_loop().create_task(self._close(reason))
        await asyncio.shield(self._close_task)

    async def wait_closed(self) -> None:
        """Return once the session is closed (by :meth:`close`, the transport, or the model)."""
        await self._closed.wait()

    async def _close(self, reason: str) -> None:
        logger.debug("closing session: %s", reason)
        self._started.set()  # nobody waits for a start that will not come
        if self._entered:
            try:
                await self.agent.on_exit()
            except Exception:
                logger.exception("%s.on_exit() failed", type(self.agent).__name__)
        self.agent._detach()
        await self._stop_mcp(self.agent)
        if self._transport is not None:
            try:
                await self._transport.aclose()
            except Exception:
                logger.exception("closing the transport failed")
        try:
            await self.model.aclose()
        except Exception:
            logger.exception("closing the model failed")
        for event, handler in self._handlers:
            self.model.off(event, handler)
        self._handlers.clear()
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._turns.close()
        self.emit("closed", {"reason": reason})
        self._closed.set()

    # -- what the agent's code asks for ----------------------------------------------------------

    async def say(self, text: str, *, interruptible: bool = True) -> None:
        """Make the agent say ``text`` (verbatim where the model can; recorded as its words)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("say() needs non-empty text")
        self._check_live("say")
        self._expect_response()
        await self.model.send_message(text, interruptible=interruptible)

    async def reply(
        self,
        instructions: str | None = None,
        frames: list[Any] | None = None,
        *,
        interruptible: bool = True,
    ) -> None:
        """Ask the model to reply now, optionally with one-off instructions and images."""
        self._check_live("reply")
        self._expect_response()
        await self.model.create_response(instructions, frames=frames, interruptible=interruptible)

    async def interrupt(self) -> None:
        """Stop the agent: silence its audio and cancel the reply in progress."""
        self._check_live("interrupt")
        self._turns.reply_cancelled()
        await self.model.interrupt()
        self._turns.update()

    async def send_text(self, text: str) -> None:
        """A typed user message; the agent replies to it."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("send_text() needs non-empty text")
        self._check_live("send_text")
        self._expect_response()
        await self.model.send_text_message(text)

    async def push_audio(self, frame: AudioFrame) -> None:
        """User microphone audio, any rate and channel count (the model converts it).

        Frames that arrive before the model is connected or after close are dropped: a
        microphone starts and stops on its own schedule.
        """
        if not isinstance(frame, AudioFrame):
            raise ValueError(f"push_audio expects an AudioFrame, got {type(frame).__name__}")
        if self._turns.connected and not self.closed:
            await self.model.handle_audio_input(frame)

    async def push_video(self, frame: Any) -> None:
        """A camera frame; at most ``max_video_fps`` per second reach the model, only if vision."""
        if not self._turns.connected or self.closed:
            return
        if not self.vision:
            if not self._vision_warned:
                self._vision_warned = True
                logger.info("video frames are ignored: the session was created with vision=False")
            return
        if self._throttler.ready():
            await self.model.handle_video_input(frame)

    async def _on_agent_updated(self, agent: Agent) -> None:
        """The agent changed its instructions or tools: a live model gets a session update."""
        if self._turns.connected and agent is self.agent and not self.closed:
            await self.model.update_agent(self._model_view(agent))

    # -- tools and handoffs ----------------------------------------------------------------------

    def _model_view(self, agent: Agent) -> Agent:
        """What the model is given for ``agent``: its instructions, and its tools and its MCP
        servers' tools as copies whose calls go through :meth:`_run_tool`."""
        tools: list[FunctionTool] = list(agent.tools)
        names = {tool.name for tool in tools}
        for server in agent.mcp_servers:
            for tool in server.tools:
                if tool.name in names:  # the agent's own tool wins; say so once per refresh
                    logger.warning("MCP tool %s of %s is shadowed", tool.name, server.name)
                    continue
                names.add(tool.name)
                tools.append(tool)
        wrapped = [self._calls.wrap(agent, tool, self._run_tool) for tool in tools]
        return Agent(instructions=agent.instructions, tools=wrapped, name=agent.name)

    async def _run_tool(self, agent: Agent, tool: FunctionTool, arguments_json: str) -> ToolResult:
        if agent is not self.agent:  # the model called a tool of an agent that has left
            return ToolResult.failure(
                f"tool {tool.name} belongs to {agent.name}, who handed the conversation over; "
                f"{self.agent.name} is answering now"
            )
        result = await self._calls.run(agent, tool, arguments_json)
        if result.handoff is None:
            return result
        handoff: Handoff = result.handoff
        if self._switching or agent is not self.agent or self.closed:
            return ToolResult.failure(
                f"cannot hand over to {handoff.agent.name}: another handoff is in progress"
            )
        if handoff.agent is agent or handoff.agent._session is not None:
            return ToolResult.failure(
                f"cannot hand over to {handoff.agent.name}: that agent is already in a session"
            )
        self._switching = True
        try:
            await self._switch(agent, handoff, tool.name)
        except Exception as exc:
            logger.exception("handoff from %s to %s failed", agent.name, handoff.agent.name)
            self.emit("error", {"message": f"handoff failed: {exc}", "code": None, "fatal": False})
            return ToolResult.failure(f"handoff to {handoff.agent.name} failed: {exc}")
        finally:
            self._switching = False
        # No follow-up for this output: once it is in the conversation, _enter_after_handoff
        # runs the new agent's on_enter and asks for its first reply.
        self._pending_enter = (tool.name, handoff.agent, handoff)
        return ToolResult(output=result.output, reply=False)

    async def _switch(self, old: Agent, handoff: Handoff, tool_name: str) -> None:
        """Old agent out, new agent in (see docs/agents.md for the order and the rules)."""
        new = handoff.agent
        await self._start_mcp(new)  # before anything changes: its tools arrive with the update
        try:
            cancelled = await self._calls.settle(
                old,
                grace_s=self.handoff_grace_s,
                reason=f"cancelled: the conversation was handed to {new.name}",
            )
            try:
                await old.on_exit()
            except Exception:
                logger.exception("%s.on_exit() failed", old.name)
            old._detach()
            new._attach(self)
            self.agent = new
        except BaseException:  # closed or failed before the switch: the new agent never ran
            await asyncio.shield(self._stop_mcp(new))
            raise
        if new.keep_history is not None:
            await self.model.delete_items(history_to_delete(self.model.history(), new.keep_history))
        # One session.update: the new instructions and tools replace the old ones together.
        await self.model.update_agent(self._model_view(new))
        self._spawn(self._stop_mcp(old, keep=new.mcp_servers))
        logger.info("handoff: %s -> %s (tool %s)", old.name, new.name, tool_name)
        self.emit(
            "handoff",
            {
                "from": old.name,
                "to": new.name,
                "tool": tool_name,
                "message": handoff.message,
                "cancelled_tools": cancelled,
            },
        )

    async def _enter_after_handoff(self, agent: Agent, handoff: Handoff) -> None:
        replies = self._replies_asked
        try:
            await agent.on_enter()
        except Exception as exc:
            logger.exception("%s.on_enter() failed", agent.name)
            self.emit("error", {"message": f"on_enter failed: {exc}", "code": None, "fatal": False})
        if self.closed or agent is not self.agent:
            return
        try:
            if handoff.message is not None:
                await self.say(handoff.message)
            elif self._replies_asked == replies and self.user_state != "speaking":
                # Nobody asked for a reply and the user is not speaking (the server answers the
                # user's turn by itself, and that reply sees the output): the new agent answers.
                await self.reply()
        except NotConnectedError:  # closed meanwhile
            pass

    async def _start_mcp(self, agent: Agent) -> None:
        for server in agent.mcp_servers:
            server.on_tools_changed = self._mcp_tools_changed
            server.on_error = self._mcp_failed
            try:
                await server.start()
            except Exception as exc:
                logger.exception("MCP server %s did not start", server.name)
                self.emit(
                    "error",
                    {"message": f"MCP server {server.name}: {exc}", "code": "mcp", "fatal": False},
                )

    async def _stop_mcp(self, agent: Agent, keep: list[Any] | None = None) -> None:
        for server in agent.mcp_servers:
            if keep and server in keep:  # the next agent uses it too: it stays connected
                continue
            server.on_tools_changed = None
            server.on_error = None
            try:
                await server.aclose()
            except Exception:
                logger.exception("closing MCP server %s failed", server.name)

    def _mcp_failed(self, server: Any, message: str) -> None:
        payload = {"message": f"MCP server {server.name}: {message}", "code": "mcp", "fatal": False}
        self.emit("error", payload)

    def _mcp_tools_changed(self, server: Any) -> None:
        if server in self.agent.mcp_servers and self._turns.connected and not self.closed:
            self._spawn(self._on_agent_updated(self.agent))

    def _check_live(self, what: str) -> None:
        if self.closed:
            raise NotConnectedError(f"{what}() on a closed AgentSession")
        if not self._turns.connected:
            raise NotConnectedError(f"{what}() before AgentSession.start() connected the model")

    def _expect_response(self) -> None:
        self._replies_asked += 1
        self._turns.reply_due()

    # -- model events ----------------------------------------------------------------------------

    def _subscribe(self) -> None:
        handlers: dict[str, Callable[..., Any]] = {
            "user_speech_started": self._on_user_speech_started,
            "user_speech_ended": self._on_user_speech_ended,
            "agent_speech_started": self._on_agent_speech_started,
            "agent_speech_ended": self._on_agent_speech_ended,
            "response_created": self._on_response_created,
            "realtime_model_transcription": self._on_transcription,
            "function_call": self._on_function_call,
            "turn_metrics": self._on_turn_metrics,
            "error": self._on_error,
            "reconnecting": self._relay("reconnecting"),
            "reconnected": self._relay("reconnected"),
            "closed": self._on_model_closed,
        }
        for event, handler in handlers.items():
            self.model.on(event, handler)
            self._handlers.append((event, handler))

    def _on_user_speech_started(self, _payload: Any = None) -> None:
        self._turns.user_speech_started()

    def _on_user_speech_ended(self, _payload: Any = None) -> None:
        self._replies_asked += 1  # server VAD committed the turn; a reply follows
        self._turns.user_speech_ended()

    def _on_agent_speech_started(self, payload: dict[str, Any]) -> None:
        self._turns.agent_speech_started(str(payload.get("item_id")))

    def _on_agent_speech_ended(self, payload: dict[str, Any]) -> None:
        self._turns.agent_speech_ended(str(payload.get("item_id")))

    def _on_response_created(self, _payload: dict[str, Any]) -> None:
        self._turns.response_created()

    def _on_transcription(self, payload: dict[str, Any]) -> None:
        event = {
            "role": payload.get("role"),
            "text": payload.get("text", ""),
            "is_final": bool(payload.get("is_final", False)),
            "item_id": payload.get("item_id"),
        }
        if payload.get("interrupted"):
            event["interrupted"] = True  # the agent was cut off: the text is what was heard
        self.emit("transcription", event)

    def _on_function_call(self, payload: dict[str, Any]) -> None:
        pending = self._pending_enter
        if pending is not None and payload.get("name") == pending[0]:
            # The handoff's output is in the conversation: the new agent may speak now.
            self._pending_enter = None
            self._spawn(self._enter_after_handoff(pending[1], pending[2]))
        self.emit(
            "function_call",
            {
                "name": payload.get("name"),
                "arguments": payload.get("arguments"),
                "output": payload.get("output"),
                "is_error": bool(payload.get("is_error", False)),
            },
        )

    def _on_turn_metrics(self, metrics: TurnMetrics) -> None:
        # The model reports a turn once it is over: every response done (a tool call's
        # follow-up included) and its audio played, or cut short by the user speaking.
        self.metrics.append(metrics)
        self.metrics_by_agent.setdefault(self.agent.name, []).append(metrics)
        self.emit("metrics", metrics.to_dict())
        self._turns.turn_complete()

    def _on_error(self, error: Any) -> None:
        if isinstance(error, ModelError):
            payload = {"message": error.message, "code": error.code, "fatal": error.fatal}
        elif isinstance(error, dict):
            payload = {
                "message": str(error.get("message", "")),
                "code": error.get("code"),
                "fatal": bool(error.get("fatal", False)),
            }
        else:
            payload = {"message": str(error), "code": None, "fatal": False}
        self.emit("error", payload)
        if payload["fatal"]:
            self._spawn(self.close(reason=f"fatal error: {payload['message']}"))

    def _on_model_closed(self, payload: Any = None) -> None:
        if self._close_task is None:
            reason = payload.get("reason") if isinstance(payload, dict) else None
            self._spawn(self.close(reason=str(reason or "model closed")))

    def _relay(self, event: str) -> Callable[..., None]:
        def relay(payload: Any = None) -> None:
            self.emit(event, payload if payload is not None else {})

        return relay

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

"""The Agent: what the user writes (instructions, tools, and hooks on entering and leaving).

An agent is plain configuration plus behaviour; it owns no connection. An
:class:`~realtalk.session.AgentSession` attaches it with ``agent._attach(session)``, calls
:meth:`Agent.on_enter`, and detaches it with ``agent._detach()`` after :meth:`Agent.on_exit`.
While attached, :meth:`Agent.update_instructions` and :meth:`Agent.update_tools` tell the session
through ``_on_agent_updated`` so it can send a ``session.update``.

Example::

    class Assistant(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="You are a friendly voice assistant.")

        async def on_enter(self) -> None:
            await self.session.say("Hi! How can I help?")

        @function_tool
        async def get_weather(self, city: str) -> dict:
            \"\"\"Current weather for a city.\"\"\"
            ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from realtalk.tools import FunctionTool, function_tool

if TYPE_CHECKING:
    from realtalk.mcp import MCPServer
    from realtalk.media.playout import AudioOutput
    from realtalk.metrics import TurnMetrics
    from realtalk.realtime.base import RealtimeBaseModel
    from realtalk.turn_taking import AgentState, UserState

__all__ = ["Agent", "AgentHost"]


class AgentHost(Protocol):
    """The session an agent is attached to, as the agent's code sees it (``self.session``).

    :class:`~realtalk.session.AgentSession` is the one host; it is named through this protocol
    so that agents and sessions do not import each other (mypy checks that the session conforms
    where it attaches an agent). The members are the session's: see its documentation.
    """

    agent: Agent
    model: RealtimeBaseModel
    userdata: Any
    metrics: list[TurnMetrics]
    close_reason: str | None

    @property
    def transport(self) -> object | None: ...
    @property
    def user_state(self) -> UserState: ...
    @property
    def agent_state(self) -> AgentState: ...
    @property
    def audio_output(self) -> AudioOutput: ...
    @property
    def closed(self) -> bool: ...

    async def say(self, text: str, *, interruptible: bool = True) -> None: ...
    async def reply(
        self,
        instructions: str | None = None,
        frames: list[Any] | None = None,
        *,
        interruptible: bool = True,
    ) -> None: ...
    async def interrupt(self) -> None: ...
    async def send_text(self, text: str) -> None: ...
    async def close(self, *, reason: str = "closed") -> None: ...
    async def wait_closed(self) -> None: ...
    def emit(self, event: str, *args: Any) -> None: ...
    async def _on_agent_updated(self, agent: Agent) -> None: ...


class Agent:
    """Instructions and tools for one conversation role.

    Args:
        instructions: the system instructions sent to the model.
        tools: extra tools: :class:`~realtalk.tools.FunctionTool` objects or plain callables
            (wrapped with :func:`~realtalk.tools.function_tool`). Methods of the agent's class
            decorated with ``@function_tool`` are added automatically, bound to this instance.
        name: how events, metrics and handoff outputs name the agent; defaults to the class name.
        mcp_servers: Model Context Protocol servers (:mod:`realtalk.mcp`) whose tools this agent
            may call; the session connects them while the agent is active.
        keep_history: when this agent takes over in a handoff, the conversation is trimmed to
            its last ``keep_history`` messages (plus the calls still waiting for an output);
            None keeps everything.

    Raises:
        ValueError: two tools share a name, or a tool is a method not bound to an instance.
    """

    def __init__(
        self,
        *,
        instructions: str,
        tools: Iterable[Callable[..., Any] | FunctionTool] | None = None,
        name: str | None = None,
        mcp_servers: Iterable[MCPServer] | None = None,
        keep_history: int | None = None,
    ) -> None:
        if not isinstance(instructions, str):
            raise TypeError(f"instructions must be a str, got {type(instructions).__name__}")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError("name must be a non-empty str or None")
        self._name = name or type(self).__name__
        if keep_history is not None and keep_history < 0:
            raise ValueError(f"keep_history must be >= 0 or None, got {keep_history}")
        self.mcp_servers: list[MCPServer] = list(mcp_servers or ())
        self.keep_history = keep_history
        self._instructions = instructions
        self._tools = _checked_tools([*_as_tools(tools or ()), *self._method_tools()])
        self._session: AgentHost | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def instructions(self) -> str:
        return self._instructions

    @property
    def tools(self) -> list[FunctionTool]:
        """The tools the model can call (a copy of the list)."""
        return list(self._tools)

    @property
    def session(self) -> AgentHost:
        """The session this agent is attached to.

        Raises:
            RuntimeError: the agent is not attached (for example, read in ``__init__``).
        """
        if self._session is None:
            raise RuntimeError(
                f"{type(self).__name__} is not attached to a session; self.session is available "
                "from on_enter() until on_exit() returns"
            )
        return self._session

    async def on_enter(self) -> None:
        """Called once the agent is attached to a started session. Override it (e.g. to greet)."""

    async def on_exit(self) -> None:
        """Called before the agent leaves its session (closed, or handed off). Override it to
        clean up; during a handoff, the new agent's instructions are not yet in effect."""

    async def on_dtmf(self, digit: str) -> None:
        """Called for each key the caller presses on a phone call (``0-9``, ``*``, ``#``,
        ``A-D``). Override it to build a menu; the session also emits ``dtmf`` ``{"digit"}``."""

    async def update_instructions(self, instructions: str) -> None:
        """Replace the instructions; an attached session sends them to the model."""
        if not isinstance(instructions, str):
            raise TypeError(f"instructions must be a str, got {type(instructions).__name__}")
        self._instructions = instructions
        await self._notify()

    async def update_tools(self, tools: Iterable[Callable[..., Any] | FunctionTool]) -> None:
        """Replace the whole tool list, method tools included; an attached session is told.

        To add one tool: ``await agent.update_tools([*agent.tools, new_tool])``.

        Raises:
            ValueError: duplicate names or an unbound method tool; the tools are then unchanged.
        """
        self._tools = _checked_tools(_as_tools(tools))
        await self._notify()

    # -- used by AgentSession -----------------------------------------------------------------

    def _attach(self, session: AgentHost) -> None:
        if self._session is not None and self._session is not session:
            raise RuntimeError(f"{type(self).__name__} is already attached to another session")
        self._session = session

    def _detach(self) -> None:
        self._session = None

    async def _notify(self) -> None:
        if self._session is not None:
            await self._session._on_agent_updated(self)

    def _method_tools(self) -> list[FunctionTool]:
        """The ``@function_tool`` attributes of this agent's class, bound to this instance.

        Base-class tools come first, in definition order; a subclass attribute of the same name
        replaces one in place (with another tool, or with a non-tool that removes it).
        """
        found: dict[str, Any] = {}
        for klass in reversed(type(self).__mro__):
            found.update(vars(klass))
        return [
            getattr(self, attr) for attr, value in found.items() if isinstance(value, FunctionTool)
        ]


def _as_tools(items: Iterable[Callable[..., Any] | FunctionTool]) -> list[FunctionTool]:
    tools = []
    for item in items:
        if isinstance(item, FunctionTool):
            tools.append(item)
        elif callable(item):
            tools.append(function_tool(item))
        else:
            raise TypeError(f"a tool must be a FunctionTool or a callable, got {item!r}")
    return tools


def _checked_tools(tools: list[FunctionTool]) -> list[FunctionTool]:
    seen: set[str] = set()
    for tool in tools:
        if not tool.is_bound:
            raise ValueError(
                f"tool {tool.name!r} is a method read from its class; pass it from an instance "
                "(instance.method) instead"
            )
        if tool.name in seen:
            raise ValueError(f"duplicate tool name {tool.name!r}: tool names must be unique")
        seen.add(tool.name)
    return tools

"""Tests for realtalk.agent.Agent."""

from typing import Any

import pytest

from realtalk.agent import Agent
from realtalk.tools import FunctionTool, function_tool


class RecordingHost:
    """Stands in for AgentSession: records what the agent reports."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, list[str]]] = []

    async def _on_agent_updated(self, agent: Agent) -> None:
        self.updates.append((agent.instructions, [tool.name for tool in agent.tools]))


class Assistant(Agent):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(instructions="Be helpful.", **kwargs)
        self.city_lookups: list[str] = []

    @function_tool
    async def get_weather(self, city: str, units: str = "metric") -> dict[str, Any]:
        """Current weather for a city.

        Args:
            city: City name.
            units: "metric" or "imperial".
        """
        self.city_lookups.append(city)
        return {"city": city, "temp": 18}

    @function_tool(name="local_time")
    def time_in(self, city: str) -> str:
        return f"noon in {city}"

    def not_a_tool(self) -> None: ...


def tell_joke() -> str:
    """Tell a joke."""
    return "knock knock"


def test_instructions_and_method_tools_are_collected() -> None:
    agent = Assistant()
    assert agent.instructions == "Be helpful."
    assert [tool.name for tool in agent.tools] == ["get_weather", "local_time"]
    assert all(tool.is_bound for tool in agent.tools)
    assert "self" not in agent.tools[0].parameters["properties"]


async def test_method_tools_are_bound_to_their_own_instance() -> None:
    first, second = Assistant(), Assistant()
    tool = {t.name: t for t in first.tools}["get_weather"]
    result = await tool.invoke('{"city": "Oslo"}')
    assert not result.is_error
    assert first.city_lookups == ["Oslo"]
    assert second.city_lookups == []


def test_explicit_tools_come_first_and_callables_are_wrapped() -> None:
    explicit = function_tool(name="joke")(tell_joke)
    agent = Assistant(tools=[explicit, lambda_free_function])
    names = [tool.name for tool in agent.tools]
    assert names == ["joke", "lambda_free_function", "get_weather", "local_time"]
    assert all(isinstance(tool, FunctionTool) for tool in agent.tools)


def lambda_free_function(x: int) -> int:
    return x


def test_plain_agent_without_tools() -> None:
    agent = Agent(instructions="Hi.")
    assert agent.tools == []


def test_duplicate_tool_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="get_weather"):
        Assistant(tools=[function_tool(name="get_weather")(tell_joke)])


def test_unbound_method_tool_is_rejected() -> None:
    with pytest.raises(ValueError, match="from an instance"):
        Agent(instructions="x", tools=[Assistant.get_weather])


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="instructions"):
        Agent(instructions=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="FunctionTool or a callable"):
        Agent(instructions="x", tools=["not a tool"])  # type: ignore[list-item]


def test_subclass_can_override_or_remove_a_tool() -> None:
    class Quieter(Assistant):
        get_weather = None  # type: ignore[assignment]

        @function_tool(name="local_time")
        def time_in(self, city: str) -> str:
            return "always noon"

    agent = Quieter()
    assert [tool.name for tool in agent.tools] == ["local_time"]
    assert agent.tools[0](city="x") == "always noon"


def test_inherited_tools_come_before_new_ones() -> None:
    class More(Assistant):
        @function_tool
        def extra(self) -> str:
            return "extra"

    assert [tool.name for tool in More().tools] == ["get_weather", "local_time", "extra"]


def test_tools_property_returns_a_copy() -> None:
    agent = Assistant()
    agent.tools.clear()
    assert len(agent.tools) == 2


def test_session_raises_when_not_attached() -> None:
    agent = Assistant()
    with pytest.raises(RuntimeError, match="not attached to a session"):
        _ = agent.session


def test_attach_and_detach() -> None:
    agent, host = Assistant(), RecordingHost()
    agent._attach(host)
    assert agent.session is host
    agent._attach(host)  # attaching again to the same session is harmless
    with pytest.raises(RuntimeError, match="another session"):
        agent._attach(RecordingHost())
    agent._detach()
    with pytest.raises(RuntimeError):
        _ = agent.session


async def test_default_hooks_do_nothing() -> None:
    agent = Agent(instructions="x")
    await agent.on_enter()
    await agent.on_exit()


async def test_updates_without_session_just_change_the_agent() -> None:
    agent = Assistant()
    await agent.update_instructions("Be brief.")
    await agent.update_tools([tell_joke])
    assert agent.instructions == "Be brief."
    assert [tool.name for tool in agent.tools] == ["tell_joke"]


async def test_updates_notify_the_attached_session() -> None:
    agent, host = Assistant(), RecordingHost()
    agent._attach(host)

    await agent.update_instructions("Be brief.")
    await agent.update_tools([*agent.tools, tell_joke])

    assert host.updates == [
        ("Be brief.", ["get_weather", "local_time"]),
        ("Be brief.", ["get_weather", "local_time", "tell_joke"]),
    ]


async def test_rejected_tool_update_changes_nothing() -> None:
    agent, host = Assistant(), RecordingHost()
    agent._attach(host)
    with pytest.raises(ValueError, match="duplicate"):
        await agent.update_tools([tell_joke, tell_joke])
    assert [tool.name for tool in agent.tools] == ["get_weather", "local_time"]
    assert host.updates == []


async def test_no_notification_after_detach() -> None:
    agent, host = Assistant(), RecordingHost()
    agent._attach(host)
    agent._detach()
    await agent.update_instructions("later")
    assert host.updates == []

"""The keyword tool router that stands in for SmolLM2's missing judgement."""

from __future__ import annotations

from typing import Any

import pytest

from realtalk.server.engines.tool_router import pick_tool, stems, tool_score


def tool(name: str, description: str, **properties: str) -> dict[str, Any]:
    props = {k: {"type": "string", "description": v} for k, v in properties.items()}
    return {
        "type": "function",
        "name": name,
        "description": description,
        "parameters": {"type": "object", "properties": props},
    }


WEATHER = tool("get_weather", "Get the current weather for a city.", city="City name")
TIMER = tool("set_timer", "Set a timer for a number of minutes.", minutes="How long")
MUSIC = tool("play_music", "Play a song by an artist.", artist="Who")
TOOLS = [WEATHER, TIMER, MUSIC]


def test_stems_drop_stop_words_and_suffixes_and_add_related_words() -> None:
    assert stems("What's the weather like?") == {"weather", "like"}
    assert {"rain", "weather"} <= stems("Is it raining?")
    assert stems("get_weather") == {"weather"}


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("What's the weather like in Paris?", "get_weather"),
        ("Is it raining in London right now?", "get_weather"),
        ("Set a timer for five minutes.", "set_timer"),
        ("Remind me in ten minutes", "set_timer"),
        ("Play some music by the Beatles", "play_music"),
        ("Tell me a joke.", None),
        ("Hello, how are you?", None),
        ("Who wrote Hamlet?", None),
    ],
)
def test_auto_picks_the_tool_the_request_is_about(request_text: str, expected: str | None) -> None:
    picked = pick_tool(request_text, TOOLS)
    assert (picked["name"] if picked else None) == expected


def test_name_words_weigh_more_than_description_words() -> None:
    assert tool_score("weather", WEATHER) > tool_score("city", WEATHER) > 0


def test_tool_choice_none_required_and_named() -> None:
    weather = "What's the weather in Rome?"
    assert pick_tool(weather, TOOLS, "none") is None
    assert pick_tool("Tell me a joke", TOOLS, "required") is WEATHER  # best score, else first
    assert pick_tool(weather, TOOLS, {"type": "function", "name": "play_music"}) is MUSIC
    with pytest.raises(ValueError, match="nope"):
        pick_tool(weather, TOOLS, {"type": "function", "name": "nope"})


def test_no_tools_means_no_call() -> None:
    assert pick_tool("What's the weather?", []) is None
    assert pick_tool("What's the weather?", [], "required") is None


@pytest.mark.parametrize(
    "request_text",
    ["what is seventeen times three", "what is two plus two", "ten minus four",
     "what is one divided by zero", "multiply six by seven"],
)  # fmt: skip
def test_spoken_arithmetic_picks_the_calculator_not_the_clock(request_text: str) -> None:
    calculate = tool("calculate", "Evaluate an arithmetic expression exactly.", expression="sum")
    get_time = tool("get_time", "The current date and time.")
    picked = pick_tool(request_text, [get_time, calculate])
    assert picked is not None and picked["name"] == "calculate"
    assert pick_tool("what time is it", [get_time, calculate]) == get_time

"""How SmolLM2's prompt tells of tool calls and results (no model needed: pure formatting)."""

from __future__ import annotations

import json

from realtalk.server.engines.base import ChatMessage, ToolCall
from realtalk.server.engines.llama import TOOL_RESULT_PROMPT, _chat_turns

STYLE = "Speak briefly."
OUTPUT = json.dumps({"time": "14:05", "timezone": "UTC"})


def asked_and_called() -> list[ChatMessage]:
    return [
        ChatMessage("system", "You tell the time."),
        ChatMessage("assistant", "Hi! Ask me anything."),
        ChatMessage("user", "What time is it?"),
        ChatMessage(
            "assistant", "", tool_calls=[ToolCall("get_time", '{"timezone": "UTC"}', "c1")]
        ),
        ChatMessage("tool", OUTPUT, tool_call_id="c1"),
    ]


def test_a_fresh_tool_result_is_plain_context_in_the_question_which_stays_last() -> None:
    turns = _chat_turns(asked_and_called(), STYLE)
    assert turns == [
        ("system", "Speak briefly.\nYou tell the time."),
        ("assistant", "Hi! Ask me anything."),
        (
            "user",
            "Context: The get time tool says: time 14:05, timezone UTC.\n"
            "Question: What time is it?\n" + TOOL_RESULT_PROMPT,
        ),
    ]


def test_answered_calls_leave_no_trace_in_later_turns() -> None:
    messages = [
        *asked_and_called(),
        ChatMessage("assistant", "It is 14:05 in UTC."),
        ChatMessage("user", "What is the capital of France?"),
    ]
    turns = _chat_turns(messages, STYLE)
    assert turns[1:] == [
        ("assistant", "Hi! Ask me anything."),
        ("user", "What time is it?"),
        ("assistant", "It is 14:05 in UTC."),
        ("user", "What is the capital of France?"),
    ]
    text = " ".join(t for _, t in turns)
    assert "get time" not in text and "get_time" not in text and "Context" not in text


def test_parallel_results_share_one_context_and_plain_outputs_stay_as_they_are() -> None:
    messages = [
        ChatMessage("user", "Time and sum?"),
        ChatMessage(
            "assistant",
            "",
            tool_calls=[
                ToolCall("get_time", "{}", "a"),
                ToolCall("calculate", '{"expression": "2 + 2"}', "b"),
            ],
        ),
        ChatMessage("tool", "noon", tool_call_id="a", name="get_time"),
        ChatMessage("tool", "[4, true]", tool_call_id="b"),
    ]
    turns = _chat_turns(messages, STYLE)
    assert turns[1:] == [
        (
            "user",
            "Context: The get time tool says: noon. The calculate tool says: 4, true.\n"
            "Question: Time and sum?\n" + TOOL_RESULT_PROMPT,
        )
    ]


def test_a_result_without_a_question_still_gets_asked_about() -> None:
    messages = [
        ChatMessage("assistant", "", tool_calls=[ToolCall("get_time", "{}", "a")]),
        ChatMessage("tool", "noon", tool_call_id="a"),
    ]
    assert _chat_turns(messages, STYLE)[1:] == [
        ("user", "Context: The get time tool says: noon.\n" + TOOL_RESULT_PROMPT)
    ]

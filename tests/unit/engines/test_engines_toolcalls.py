"""Qwen's tool-call format as we build it: the prompt, the grammar, parsing and validation."""

from __future__ import annotations

import json
import math

import pytest

from realtalk.server.engines.base import ChatMessage, ToolCall
from realtalk.server.engines.toolcalls import (
    ANSWER_FROM_RESULT,
    call_grammar,
    call_lag,
    call_written,
    check_arguments,
    leans_to_call,
    parse_reply,
    render_prompt,
    starts_call,
    system_block,
    system_turn,
)

CALC = {
    "type": "function",
    "name": "calculate",
    "description": "Evaluate arithmetic.",
    "parameters": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
}
CONVERT = {
    "type": "function",
    "name": "convert_units",
    "description": "Convert units.",
    "parameters": {
        "type": "object",
        "properties": {
            "value": {"type": "number"},
            "from_unit": {"type": "string"},
            "to_unit": {"type": "string"},
        },
        "required": ["value", "from_unit", "to_unit"],
    },
}
TOOLS = [CALC, CONVERT]


def test_the_system_turn_lists_the_tools_in_qwens_layout() -> None:
    block = system_block("Be brief.", TOOLS)
    assert block.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert block.endswith("</tool_call><|im_end|>\n")
    lines = block.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(line)["function"]["name"] for line in lines] == [
        "calculate",
        "convert_units",
    ]
    assert system_block("Be brief.", []) == "<|im_start|>system\nBe brief.<|im_end|>\n"


def test_a_conversation_with_a_call_and_its_result_renders_as_qwen_was_trained() -> None:
    messages = [
        ChatMessage("system", "You do sums."),
        ChatMessage("user", "What is 17 times 3?"),
        ChatMessage("assistant", "", tool_calls=[ToolCall("calculate", '{"expression":"17*3"}')]),
        ChatMessage("tool", "51", tool_call_id="c1"),
    ]
    prompt = render_prompt("Be brief.", messages, TOOLS)
    assert prompt.startswith(system_block("Be brief.\nYou do sums.", TOOLS))
    assert (
        '<|im_start|>assistant\n<tool_call>\n{"name": "calculate", "arguments": '
        '{"expression": "17*3"}}\n</tool_call><|im_end|>\n' in prompt
    )
    assert prompt.endswith(
        "<|im_start|>user\n<tool_response>\n51\n</tool_response>\n"
        + ANSWER_FROM_RESULT
        + "<|im_end|>\n<|im_start|>assistant\n"
    )


def test_the_prefix_a_session_prefills_is_the_start_of_every_later_prompt() -> None:
    later = render_prompt(
        "Be brief.", [ChatMessage("system", "X"), ChatMessage("user", "hi")], TOOLS
    )
    assert later.startswith(system_block("Be brief.\nX", TOOLS))


def test_the_grammar_allows_speech_or_a_call_of_a_listed_tool_only() -> None:
    grammar = call_grammar(TOOLS)
    assert grammar is not None and grammar.startswith("%llguidance {}\nstart: speech | call\n")
    assert '"const": "calculate"' in grammar and '"const": "convert_units"' in grammar
    assert '"additionalProperties": false' in grammar and '"maxLength": 80' in grammar
    forced = call_grammar([CALC], speech=False)
    assert forced is not None and "start: call\n" in forced and "convert_units" not in forced
    assert call_grammar([], speech=False) is None
    assert (call_grammar([]) or "").startswith("%llguidance {}\nstart: /[^<>{}")  # speech only


def test_a_call_is_written_once_its_json_is_complete() -> None:
    assert not call_written("<")
    assert not call_written('<tool_call>\n{"name": "calculate", "arguments": {"expr')
    assert call_written('<tool_call>\n{"name": "calculate", "arguments": {}}\n')
    assert call_written('{"name": "calculate", "arguments": {"expression": "{"}}')


def test_speech_and_calls_are_told_apart_from_the_first_characters() -> None:
    assert starts_call("  ") is None
    assert starts_call(' {"name"') is True
    assert starts_call("<tool_call>") is True
    assert starts_call("Seventeen") is False


def test_a_valid_call_is_parsed_with_or_without_its_tags() -> None:
    for text in (
        '{"name": "calculate", "arguments": {"expression": "17 * 3"}}',
        '<tool_call>\n{"name": "calculate", "arguments": {"expression": "17 * 3"}}\n</tool_call>',
        '{"name": "calculate", "arguments": "{\\"expression\\": \\"17 * 3\\"}"}',
        # stopped once its JSON was written, the closing tag begun or not
        '<tool_call>\n{"name": "calculate", "arguments": {"expression": "17 * 3"}}\n</to',
        '<tool_call>\n{"name": "calculate", "arguments": {"expression": "17 * 3"}}',
    ):
        parsed = parse_reply(text, TOOLS)
        assert parsed.error is None and parsed.call is not None
        assert parsed.call.name == "calculate"
        assert json.loads(parsed.call.arguments) == {"expression": "17 * 3"}


def test_unknown_tools_and_bad_arguments_are_errors_that_name_the_problem() -> None:
    unknown = parse_reply('{"name": "rm_rf", "arguments": {}}', TOOLS)
    assert unknown.call is None and "no tool named 'rm_rf'" in (unknown.error or "")
    cut = parse_reply('{"name": "convert_units", "arguments": {"value": 2', TOOLS)
    assert cut.call is None and cut.name == "convert_units" and "not JSON" in (cut.error or "")
    wrong = parse_reply(
        '{"name": "convert_units", "arguments": '
        '{"value": "two", "from_unit": "km", "to_unit": "mi"}}',
        TOOLS,
    )
    assert wrong.call is None and "arguments.value should be number" in (wrong.error or "")
    extra = parse_reply('{"name": "calculate", "arguments": {"expression": "1"}} and', TOOLS)
    assert extra.call is None and "not JSON (Extra data)" in (extra.error or "")
    missing = parse_reply('{"name": "calculate", "arguments": {}}', TOOLS)
    assert "required 'expression'" in (missing.error or "")


def test_argument_checks_cover_types_enums_and_closed_objects() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "u": {"enum": ["c", "f"]}},
        "additionalProperties": False,
    }
    assert check_arguments(schema, {"n": 3, "u": "c"}) is None
    assert check_arguments(schema, {"n": True}) is not None  # a bool is not an integer
    assert check_arguments(schema, {"n": 1.5}) is not None
    assert check_arguments(schema, {"u": "k"}) is not None
    assert check_arguments(schema, {"x": 1}) == "arguments has an unknown key 'x'"
    assert check_arguments(schema, []) is not None


def test_a_greeting_is_not_quoted_to_the_model_but_its_question_is() -> None:
    question = ChatMessage("user", "What is 17 times 3?")
    plain = [ChatMessage("system", "You do sums."), ChatMessage("assistant", "Hi! Ask away.")]
    prompt = render_prompt("Be brief.", [*plain, question], TOOLS)
    # the prefilled system turn still matches: the first question evaluates only itself
    assert prompt == (
        system_block("Be brief.\nYou do sums.", TOOLS)
        + "<|im_start|>user\nWhat is 17 times 3?<|im_end|>\n<|im_start|>assistant\n"
    )
    asking = ChatMessage("assistant", "Hello! I am Ava. Which city are you in? I can help.")
    prompt = render_prompt("Be brief.", [asking, ChatMessage("user", "Paris.")], TOOLS)
    asked = "You have greeted the user and asked: Which city are you in?"
    assert prompt.startswith(system_block(f"Be brief.\n{asked}", TOOLS))
    assert "Ava" not in prompt and "I can help" not in prompt
    assert prompt.endswith("<|im_start|>user\nParis.<|im_end|>\n<|im_start|>assistant\n")


def test_the_last_turn_alone_keeps_the_conversations_system_turn() -> None:
    """The prompt of the user's last turn on its own starts with the very system turn of the
    whole conversation's prompt (so llama.cpp can copy its evaluation), then that turn and
    what follows it."""
    asking = ChatMessage("assistant", "Hello! Which city are you in?")
    call = ToolCall("calculate", '{"expression": "17 * 3"}', "c1")
    messages = [
        ChatMessage("system", "You do sums."),
        asking,
        ChatMessage("user", "Paris."),
        ChatMessage("assistant", "Lovely city!"),
        ChatMessage("user", "What is 17 times 3?"),
        ChatMessage("assistant", "", tool_calls=[call]),
        ChatMessage("tool", "51", tool_call_id="c1"),
    ]
    whole = render_prompt("Be brief.", messages, TOOLS)
    alone = render_prompt("Be brief.", messages, TOOLS, last_turn_only=True)
    system = system_turn("Be brief.", messages, TOOLS)
    assert whole.startswith(system) and alone.startswith(system)
    assert "Which city are you in?" in system and "Lovely city" in whole
    assert alone == system + whole[whole.index("<|im_start|>user\nWhat is 17") :]


def test_a_call_start_within_the_bias_of_the_chosen_token_leans_to_a_call() -> None:
    likeliest = {'{"': -0.2, "The": -3.0, "<": -4.0, "<t": -6.0, "Here": -4.5}
    assert not leans_to_call(-3.0, likeliest, 0.0)
    assert not leans_to_call(-3.0, likeliest, 1.0)
    assert leans_to_call(-3.0, likeliest, 1.25)
    assert call_lag(-3.0, likeliest) == pytest.approx(1.0)
    # bare JSON or a code fence is no call start (the grammar has calls open with the tag)
    assert not leans_to_call(-3.0, {'{"': -0.1, "```": -1.0}, 2.0)
    assert call_lag(-3.0, {'{"': -0.1}) == math.inf

"""ScriptedLLM rules ("when the user says X, call Y with Z, then say W"), and the defaults."""

from __future__ import annotations

from typing import Any

import pytest

from realtalk.server.engines.base import ChatMessage, LLMChunk, LLMUsage, TextDelta, ToolCall
from realtalk.server.engines.scripted import ScriptedLLM, ScriptRule

SUM = ScriptRule(
    "seventeen times three",
    say="Let me see.",
    call="calculate",
    arguments={"expression": "17 * 3"},
    then_say="It is {output}.",
    on_error="Sorry, that failed: {error}.",
)


async def run(llm: ScriptedLLM, messages: list[ChatMessage], **kw: Any) -> list[LLMChunk]:
    return [c async for c in llm.stream(messages, tools=[], **kw)]


def text_of(chunks: list[LLMChunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


def calls_of(chunks: list[LLMChunk]) -> list[ToolCall]:
    return [c for c in chunks if isinstance(c, ToolCall)]


def after_call(user: str, output: str, *between: ChatMessage) -> list[ChatMessage]:
    call = ToolCall("calculate", '{"expression": "17 * 3"}', "call_1")
    return [
        ChatMessage("user", user),
        ChatMessage("assistant", "", tool_calls=[call]),
        *between,
        ChatMessage("tool", output, tool_call_id="call_1", name="calculate"),
    ]


async def test_a_matching_user_message_says_the_preface_then_calls_the_tool() -> None:
    chunks = await run(
        ScriptedLLM(rules=[SUM]), [ChatMessage("user", "What is Seventeen times three?")]
    )
    assert text_of(chunks) == "Let me see."
    [call] = calls_of(chunks)
    assert (call.name, call.arguments) == ("calculate", '{"expression": "17 * 3"}')
    assert isinstance(chunks[-1], LLMUsage)
    # The text comes before the call, as a model that talks while it works.
    assert chunks.index(call) > max(i for i, c in enumerate(chunks) if isinstance(c, TextDelta))


async def test_the_result_is_answered_with_then_say_or_on_error() -> None:
    llm = ScriptedLLM(rules=[SUM])
    assert text_of(await run(llm, after_call("seventeen times three?", "51"))) == "It is 51."
    failed = await run(llm, after_call("seventeen times three?", "Error: division by zero"))
    assert text_of(failed) == "Sorry, that failed: division by zero."


async def test_a_result_after_another_user_turn_still_belongs_to_the_rule_that_called() -> None:
    llm = ScriptedLLM(rules=[SUM, ScriptRule("still there", say="Yes.")])
    messages = after_call(
        "seventeen times three?",
        "51",
        ChatMessage("user", "are you still there?"),
        ChatMessage("assistant", "Yes."),
    )
    assert text_of(await run(llm, messages)) == "It is 51."


async def test_without_a_matching_rule_the_default_rules_apply() -> None:
    llm = ScriptedLLM(rules=[SUM])
    assert text_of(await run(llm, [ChatMessage("user", "hello")])) == "You said: hello."
    chunks = await run(llm, [ChatMessage("user", 'call get_time {"tz": "UTC"}')])
    assert [c.name for c in calls_of(chunks)] == ["get_time"]
    # A rule without then_say answers its result the default way.
    bare = ScriptedLLM(rules=[ScriptRule("sum", call="calculate")])
    assert text_of(await run(bare, after_call("a sum", "51"))) == "Tool calculate returned 51."


async def test_say_only_rules_and_tool_choice_none() -> None:
    llm = ScriptedLLM(rules=[ScriptRule("^hi", say="Hello, human.")])
    assert text_of(await run(llm, [ChatMessage("user", "hi there")])) == "Hello, human."
    chunks = await run(ScriptedLLM(rules=[SUM]), [ChatMessage("user", "seventeen times three")],
                       tool_choice="none")  # fmt: skip
    assert calls_of(chunks) == [] and text_of(chunks) == "Let me see."


async def test_rules_can_be_added_and_cleared_between_turns() -> None:
    llm = ScriptedLLM()
    llm.add_rule(ScriptRule("ping", say="pong"))
    assert text_of(await run(llm, [ChatMessage("user", "ping")])) == "pong"
    llm.clear_rules()
    assert text_of(await run(llm, [ChatMessage("user", "ping")])) == "You said: ping."
    with pytest.raises(TypeError, match="ScriptRule"):
        llm.add_rule("ping")  # type: ignore[arg-type]


def test_bad_rules_are_refused_where_they_are_written() -> None:
    with pytest.raises(ValueError, match="not a regex"):
        ScriptRule("(unclosed", say="x")
    with pytest.raises(ValueError, match="needs `say`, `call`"):
        ScriptRule("x")
    with pytest.raises(ValueError, match="need a `call`"):
        ScriptRule("x", say="y", then_say="z")


def test_the_transcriber_forgets_queued_texts_on_clear() -> None:
    import numpy as np

    from realtalk.server.engines.scripted import ScriptedTranscriber

    transcriber = ScriptedTranscriber(["never heard"])
    transcriber.clear()
    assert transcriber.transcribe(np.zeros(16000, dtype=np.float32)).text == "(speech 1.0 s)"

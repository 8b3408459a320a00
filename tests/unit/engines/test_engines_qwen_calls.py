"""How the Qwen engine turns what the model writes into speech, calls or an error, with a fake
llama.cpp runtime that replays scripted completions (no model needed)."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from realtalk.server.engines.base import (
    ChatMessage,
    EngineError,
    LLMChunk,
    LLMUsage,
    TextDelta,
    ToolCall,
)
from realtalk.server.engines.qwen import QwenLLM
from realtalk.server.engines.runtime import Completion, FirstToken
from realtalk.server.engines.toolcalls import SPEECH_GOES_ON, call_text

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


class FakeRuntime:
    """Replays `replies` (one per completion) in pieces and records each request; a request
    that continues speech (`SPEECH_GOES_ON`) gets what the one closed early had left, and one
    for a single token in the last turn's slot (the decision to call) gets `decides`. A request
    for the likeliest first tokens gets `first` as its first token."""

    n_ctx = 4096

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.rest = ""
        self.decides = "Well"
        self.first: FirstToken | None = None
        self.unread: list[str] = []  # what each completion left unread

    def complete(self, prompt: str | list[str | int], **kw: Any) -> Iterator[str]:
        kw.setdefault("slot", 0)
        self.requests.append({"prompt": prompt, **kw})
        usage: Completion | None = kw.get("usage")
        if usage is not None and kw.get("likeliest"):
            usage.first = self.first
        if kw["slot"] == 1 and kw["max_tokens"] == 1:
            yield self.decides
            return
        reply = self.rest if kw.get("grammar") == SPEECH_GOES_ON else self.replies.pop(0)
        if usage is not None:
            usage.prompt_tokens = len(prompt) // 4
        tokens: list[tuple[int, bytes]] | None = kw.get("tokens")
        sent = 0
        try:
            for i in range(0, len(reply), 3):
                if usage is not None:
                    usage.output_tokens += 1
                if tokens is not None:  # one made-up token per piece
                    tokens.append((1000 + i, reply[i : i + 3].encode()))
                sent = i + 3
                yield reply[i : i + 3]
        finally:
            self.rest = reply[sent:]
            self.unread.append(self.rest)

    def prefill(self, prompt: str, slot: int = 0) -> None:
        self.requests.append({"prompt": prompt, "prefill": True, "slot": slot})

    def in_slot(self, slot: int) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["slot"] == slot]


def engine(*replies: str) -> tuple[QwenLLM, FakeRuntime]:
    llm = QwenLLM.__new__(QwenLLM)
    runtime = FakeRuntime(*replies)
    llm.runtime = runtime  # type: ignore[assignment]
    llm.max_reply_tokens, llm.max_sentences = 80, 2
    llm.system_prompt, llm.temperature = "Be brief.", 0.0
    llm._calls = deque(maxlen=8)
    llm.call_bias = 0.0
    return llm, runtime


async def run(llm: QwenLLM, messages: list[ChatMessage], **kw: Any) -> list[LLMChunk]:
    kw.setdefault("tools", [CALC])
    return [c async for c in llm.stream(messages, **kw)]


ASK = [ChatMessage("user", "What is 17 times 3?")]


async def test_speech_streams_and_stops_after_two_sentences() -> None:
    llm, runtime = engine("Hello there. How are you? I am fine.")
    chunks = await run(llm, ASK)
    text = "".join(c.text for c in chunks if isinstance(c, TextDelta))
    assert text.startswith("Hello there. How are you?") and "fine" not in text
    assert isinstance(chunks[-1], LLMUsage) and chunks[-1].output_tokens > 0
    grammar = runtime.requests[0]["grammar"]
    assert "start: speech | call" in grammar and '"const": "calculate"' in grammar


async def test_speech_pauses_after_its_first_piece_and_goes_on_from_there() -> None:
    """llama.cpp writes on whether or not it is read, so the reply is stopped once its first
    piece is there (the voice speaks it alone) and continued by a second request whose prompt
    ends with the words so far, constrained to go on as speech."""
    llm, runtime = engine("The capital of France is Paris, a city on the Seine.")
    chunks = await run(llm, ASK)
    text = "".join(c.text for c in chunks if isinstance(c, TextDelta))
    assert text == "The capital of France is Paris, a city on the Seine."
    first, second = runtime.requests
    said_first = second["prompt"].removeprefix(first["prompt"])
    assert said_first.startswith("The capital of France ") and said_first in text
    assert second["grammar"] == SPEECH_GOES_ON and second["max_tokens"] < first["max_tokens"]
    usage = chunks[-1]
    assert isinstance(usage, LLMUsage) and usage.output_tokens == len(text) // 3 + 1


async def test_a_reply_going_round_in_circles_stops_before_the_loop_is_said_again() -> None:
    """Greedy decoding can loop; the reply ends there instead of filling its token budget."""
    llm, runtime = engine("Its cities include Shanghai, Guangzhou, " + "Shanghai, " * 30)
    chunks = await run(llm, ASK)
    text = "".join(c.text for c in chunks if isinstance(c, TextDelta))
    assert text.startswith("Its cities include Shanghai, Guangzhou, Shanghai, Shanghai,")
    assert text.count("Shanghai") <= 4, text
    assert runtime.rest  # the model was stopped, not read to its end


async def test_a_short_reply_needs_no_second_request() -> None:
    llm, runtime = engine("Yes.")
    chunks = await run(llm, ASK)
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == "Yes."
    assert len(runtime.requests) == 1


async def test_a_call_is_parsed_validated_and_given_an_id() -> None:
    llm, _ = engine('{"name": "calculate", "arguments": {"expression": "17 * 3"}}')
    chunks = await run(llm, ASK)
    calls = [c for c in chunks if isinstance(c, ToolCall)]
    assert len(calls) == 1 and calls[0].name == "calculate"
    assert json.loads(calls[0].arguments) == {"expression": "17 * 3"}
    assert calls[0].call_id and calls[0].call_id.startswith("call_")
    assert not any(isinstance(c, TextDelta) for c in chunks)


async def test_a_cut_off_call_is_retried_once_constrained_to_that_tool() -> None:
    llm, runtime = engine(
        '{"name": "calculate", "arguments": {"expression": "17 *',
        '{"name": "calculate", "arguments": {"expression": "17 * 3"}}',
    )
    chunks = await run(llm, ASK)
    assert [c.name for c in chunks if isinstance(c, ToolCall)] == ["calculate"]
    retry = runtime.requests[1]["grammar"]
    assert retry.startswith("%llguidance {}\nstart: call\n") and "speech" not in retry


async def test_a_call_that_stays_unusable_is_an_engine_error_not_speech() -> None:
    llm, _ = engine('{"name": "calculate", "arguments": {', '{"name": "calculate", "argu')
    with pytest.raises(EngineError, match="could not write a valid tool call"):
        await run(llm, ASK)


async def test_a_call_going_round_in_circles_is_stopped_and_the_reply_spoken() -> None:
    """A misheard question had the model write "7 * 7 * 7 * ..." for ~150 tokens, then an error
    read out; the call is stopped once it loops, and the reply is spoken instead."""
    looping = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "7 * ' + "7 * " * 60
    llm, runtime = engine(looping, "A week has seven days.")
    chunks = await run(llm, [ChatMessage("user", "How many days are we that week?")])
    assert not [c for c in chunks if isinstance(c, ToolCall)]
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == "A week has seven days."
    assert runtime.unread[0].count("7 *") > 40  # stopped early, not read to its end
    first, spoken = runtime.requests[:2]
    assert first["prompt"] == spoken["prompt"]  # the same turn, answered again in words
    assert '"const": "calculate"' not in (spoken["grammar"] or "")  # calls ruled out
    # a product that repeats a term a few times is no loop
    product = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "2 * 2 * 2 * 2"}}'
    llm, runtime = engine(product + "\n</tool_call>")
    chunks = await run(llm, ASK)
    calls = [c for c in chunks if isinstance(c, ToolCall)]
    assert [c.arguments for c in calls] == ['{"expression": "2 * 2 * 2 * 2"}']


async def test_after_a_tool_result_the_model_may_only_speak() -> None:
    llm, runtime = engine("Seventeen times three is 51.")
    messages = [
        *ASK,
        ChatMessage("assistant", "", tool_calls=[ToolCall("calculate", '{"expression":"17*3"}')]),
        ChatMessage("tool", "51", tool_call_id="c1"),
    ]
    chunks = await run(llm, messages)
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)).endswith("51.")
    grammar = runtime.requests[0]["grammar"]
    assert (
        "call" not in grammar
        and "<tool_response>\n51\n</tool_response>" in (runtime.requests[0]["prompt"])
    )


async def test_a_call_goes_back_to_the_model_as_the_tokens_it_wrote() -> None:
    written = call_text(ToolCall("calculate", '{"expression": "17 * 3"}'))
    llm, runtime = engine(written, "It is 51.")
    (call,) = [c for c in await run(llm, ASK) if isinstance(c, ToolCall)]
    asked = runtime.requests[0]["prompt"]
    # the model was stopped once the call's JSON was complete: the closing tag is fixed
    assert written.endswith(runtime.rest) and 0 < len(runtime.rest) <= len("\n</tool_call>")
    answered = [
        *ASK,
        ChatMessage("assistant", "", tool_calls=[call]),
        ChatMessage("tool", "51", tool_call_id=call.call_id),
    ]
    await run(llm, answered)
    prompt = runtime.requests[1]["prompt"]
    spelled = prompt[1:-1]  # FakeRuntime's made-up tokens, one per piece it gave
    assert prompt[0] == asked and spelled == [1000 + 3 * i for i in range(len(spelled))]
    assert prompt[-1].startswith(written[3 * len(spelled) :] + "<|im_end|>\n")
    assert "<tool_response>\n51\n</tool_response>" in prompt[-1]
    # and so does every later prompt of the conversation (here, the warm-up for its next turn)
    await llm.warm([*answered, ChatMessage("assistant", "It is 51.")], [CALC])
    warmed = runtime.in_slot(0)[-1]
    assert warmed["prefill"] and warmed["prompt"][:2] == [asked, 1000]


async def test_a_call_written_unlike_its_rendering_goes_back_as_text() -> None:
    llm, runtime = engine('{"name": "calculate", "arguments": {"expression": "17 * 3"}}', "51.")
    (call,) = [c for c in await run(llm, ASK) if isinstance(c, ToolCall)]
    answered = [*ASK, ChatMessage("assistant", "", tool_calls=[call]), ChatMessage("tool", "51")]
    await run(llm, answered)
    assert isinstance(runtime.requests[1]["prompt"], str)


async def test_tool_choice_none_and_required_shape_the_grammar() -> None:
    llm, runtime = engine("Fine.", '{"name": "calculate", "arguments": {"expression": "1"}}')
    await run(llm, ASK, tool_choice="none")
    await run(llm, ASK, tool_choice="required")
    assert "call" not in runtime.requests[0]["grammar"]
    assert "start: call\n" in runtime.requests[1]["grammar"]
    with pytest.raises(ValueError, match="not a tool"):
        await run(llm, ASK, tool_choice={"type": "function", "name": "nope"})


async def test_prefill_evaluates_exactly_the_prefix_of_the_later_prompts() -> None:
    llm, runtime = engine("Hi.")
    await llm.prefill("Use tools.", [CALC])
    await run(llm, [ChatMessage("system", "Use tools."), *ASK])
    prefix, later = runtime.requests[0]["prompt"], runtime.requests[1]["prompt"]
    assert runtime.requests[0]["prefill"] and later.startswith(prefix)
    assert '"name": "calculate"' in prefix


async def test_a_long_conversation_drops_its_oldest_turns_to_fit_the_context() -> None:
    llm, runtime = engine("Fine.")
    runtime.n_ctx = 800  # about 1,900 characters of prompt once the reply is reserved
    messages = [ChatMessage("system", "Use tools.")]
    for i in range(30):
        messages += [ChatMessage("user", f"question {i}"), ChatMessage("assistant", f"answer {i}")]
    messages.append(ChatMessage("user", "the last question"))
    await run(llm, messages)
    prompt = runtime.in_slot(0)[0]["prompt"]
    assert "Use tools." in prompt and "the last question" in prompt
    assert "question 0\n" not in prompt and "answer 29" in prompt
    assert prompt.index("<|im_start|>user") < prompt.index("<|im_start|>assistant\nanswer")
    assert len(prompt) <= (800 - 160 - 16) * 3


async def test_warming_evaluates_up_to_the_users_first_word() -> None:
    """While the user speaks, the conversation so far and the start of their turn are evaluated:
    the reply's prompt starts with exactly that, so only their words are left to evaluate."""
    llm, runtime = engine("Paris.")
    before = [ChatMessage("user", "Hi."), ChatMessage("assistant", "Hello! How can I help?")]
    await llm.warm(before, [CALC])
    await run(llm, [*before, ChatMessage("user", "What is the capital of France?")])
    warmed, asked = runtime.in_slot(0)
    assert warmed["prefill"] and warmed["prompt"].endswith("<|im_end|>\n<|im_start|>user\n")
    assert asked["prompt"].startswith(warmed["prompt"])
    assert asked["prompt"][len(warmed["prompt"]) :].startswith("What is the capital of France?")


async def test_warming_with_the_words_so_far_evaluates_them_too() -> None:
    llm, runtime = engine("Paris.")
    await llm.warm([], [CALC], user_words=" What is the capital ")
    await run(llm, [ChatMessage("user", "What is the capital of France?")])
    warmed, asked = runtime.requests
    assert warmed["prompt"].endswith("<|im_start|>user\nWhat is the capital")
    assert asked["prompt"].startswith(warmed["prompt"])  # llama.cpp reuses all of it


EARLIER = [
    ChatMessage("system", "Use tools."),
    ChatMessage("user", "Hello, can you hear me?"),
    ChatMessage("assistant", "Hello! I can hear you."),
]
AFTER_EARLIER = [*EARLIER, *ASK]


async def test_after_earlier_turns_the_last_turn_alone_decides_to_call() -> None:
    """After earlier turns the 0.5B answers in words what it would call a tool for, so the
    user's last turn is shown on its own first (in llama.cpp's second slot, whose system turn
    is the conversation's own); a call there has the conversation write a call."""
    llm, runtime = engine('{"name": "calculate", "arguments": {"expression": "17 * 3"}}')
    runtime.decides = "<"
    chunks = await run(llm, AFTER_EARLIER)
    assert [c.name for c in chunks if isinstance(c, ToolCall)] == ["calculate"]
    (decided,), (wrote,) = runtime.in_slot(1), runtime.in_slot(0)
    alone = decided["prompt"]
    assert "What is 17 times 3?" in alone and "can you hear me" not in alone
    system_turn = wrote["prompt"][: wrote["prompt"].index("<|im_start|>user")]
    assert alone.startswith(system_turn) and '"name": "calculate"' in system_turn
    assert "can you hear me" in wrote["prompt"]
    assert wrote["grammar"].startswith("%llguidance {}\nstart: call\n")


async def test_when_the_last_turn_alone_would_speak_the_conversation_speaks() -> None:
    """After earlier calls the conversation would call a tool for chit-chat too."""
    llm, runtime = engine("Seventeen times three is fifty-one.")
    chunks = await run(llm, AFTER_EARLIER)
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)).startswith("Seventeen")
    assert len(runtime.in_slot(1)) == 1
    assert "call" not in runtime.in_slot(0)[0]["grammar"]


async def test_a_first_turn_or_a_set_tool_choice_needs_no_decision() -> None:
    llm, runtime = engine(
        "Fine.", "Fine.", '{"name": "calculate", "arguments": {"expression": "1"}}'
    )
    await run(llm, [EARLIER[0], *ASK])
    await run(llm, AFTER_EARLIER, tool_choice="none")
    await run(llm, AFTER_EARLIER, tool_choice="required")
    assert runtime.in_slot(1) == [] and len(runtime.in_slot(0)) == 3


async def test_after_earlier_turns_a_tool_result_is_answered_in_the_last_turns_slot() -> None:
    """Answered after the conversation, the 0.5B repeats its last reply ("The capital of
    France is Paris.") instead of the result; answered after the question alone, it does not."""
    llm, runtime = engine("Seventeen times three is 51, which is a prime-free product, really.")
    call = ToolCall("calculate", '{"expression": "17 * 3"}', "c1")
    messages = [
        *AFTER_EARLIER,
        ChatMessage("assistant", "", tool_calls=[call]),
        ChatMessage("tool", "51", tool_call_id="c1"),
    ]
    chunks = await run(llm, messages)
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)).startswith("Seventeen")
    assert runtime.in_slot(0) == []
    answered, went_on = runtime.in_slot(1)  # paused after its first piece, then went on
    assert (
        "can you hear me" not in answered["prompt"] and "What is 17 times 3?" in answered["prompt"]
    )
    assert "<tool_response>\n51\n</tool_response>" in answered["prompt"]
    assert "call" not in answered["grammar"] and went_on["grammar"] == SPEECH_GOES_ON


async def test_warming_after_earlier_turns_warms_the_last_turns_slot_too() -> None:
    llm, runtime = engine("51.")
    runtime.decides = "<"
    await llm.warm(EARLIER, [CALC], user_words="What is 17")
    (warmed,) = runtime.in_slot(1)
    assert warmed["prefill"] and warmed["prompt"].endswith("<|im_start|>user\nWhat is 17")
    assert "can you hear me" not in warmed["prompt"]
    runtime.replies.append('{"name": "calculate", "arguments": {"expression": "17 * 3"}}')
    await run(llm, AFTER_EARLIER)
    assert runtime.in_slot(1)[1]["prompt"].startswith(warmed["prompt"])


#: The model's first token was speech ("The", log-probability -1.0); the plain call start came
#: 0.9 behind it.
CLOSE_BEHIND = FirstToken("The", -1.0, {"The": -1.0, "<": -1.9, "Here": -2.5})


async def test_a_call_close_behind_speech_is_written_when_calls_are_favoured() -> None:
    """Calls are favoured by `call_bias`: a reply whose first token was speech, but whose call
    start came within the bias, is a call instead, written under a call-only grammar before
    anything is said."""
    llm, runtime = engine(
        "The answer is fifty-one.", '{"name": "calculate", "arguments": {"expression": "17 * 3"}}'
    )
    llm.call_bias, runtime.first = 1.25, CLOSE_BEHIND
    chunks = await run(llm, ASK)
    assert [c.name for c in chunks if isinstance(c, ToolCall)] == ["calculate"]
    assert not any(isinstance(c, TextDelta) for c in chunks)
    asked, wrote = runtime.requests
    assert asked["likeliest"] > 0 and "speech | call" in asked["grammar"]
    assert wrote["grammar"].startswith("%llguidance {}\nstart: call\n")


async def test_a_call_further_behind_than_the_bias_stays_speech() -> None:
    llm, runtime = engine("The answer is fifty-one.")
    llm.call_bias, runtime.first = 0.5, CLOSE_BEHIND
    chunks = await run(llm, ASK)
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)).startswith("The answer")
    assert not any(isinstance(c, ToolCall) for c in chunks)


async def test_without_a_bias_no_likeliest_tokens_are_asked_for() -> None:
    llm, runtime = engine("The answer is fifty-one.")
    runtime.first = CLOSE_BEHIND
    await run(llm, ASK)
    assert not runtime.requests[0].get("likeliest")


async def test_a_favoured_call_that_makes_up_its_numbers_is_not_made() -> None:
    """On a question that needs no tool a call the model was only nudged into invents its
    numbers; the reply is then spoken, with calls ruled out."""
    llm, runtime = engine(
        "You should rest.",
        '{"name": "calculate", "arguments": {"expression": "10 - 5"}}',
        "You should rest a little.",
    )
    llm.call_bias, runtime.first = 1.25, CLOSE_BEHIND
    chunks = await run(llm, [ChatMessage("user", "I'm feeling a bit tired today.")])
    assert not any(isinstance(c, ToolCall) for c in chunks)
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == (
        "You should rest a little."
    )
    assert "call" not in runtime.requests[-1]["grammar"]
    assert [c for c in chunks if isinstance(c, LLMUsage)] == [chunks[-1]]


async def test_after_earlier_turns_a_favoured_decision_needs_the_users_numbers_too() -> None:
    llm, runtime = engine(
        '{"name": "calculate", "arguments": {"expression": "2 + 2"}}', "Fifty-one."
    )
    llm.call_bias, runtime.first = 1.25, FirstToken("Well", -1.0, {"<": -1.5})
    chunks = await run(llm, AFTER_EARLIER)
    (decided,) = runtime.in_slot(1)
    assert decided["likeliest"] > 0
    assert not any(isinstance(c, ToolCall) for c in chunks)
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == "Fifty-one."

    llm, runtime = engine('{"name": "calculate", "arguments": {"expression": "17 * 3"}}')
    llm.call_bias, runtime.first = 1.25, FirstToken("Well", -1.0, {"<": -1.5})
    chunks = await run(llm, AFTER_EARLIER)
    assert [c.name for c in chunks if isinstance(c, ToolCall)] == ["calculate"]


async def test_an_optional_argument_the_user_never_gave_is_left_out_of_the_call() -> None:
    """The 0.5B fills in a time zone for "What time is it?" ("UTC", "America/New_York"),
    which the tool's description says to leave out for the user's own time."""
    zone = {
        "type": "function",
        "name": "get_time",
        "description": "The time.",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
    }
    llm, _ = engine(
        '{"name": "get_time", "arguments": {"timezone": "UTC"}}',
        '{"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}',
    )
    (call,) = [
        c
        for c in await run(llm, [ChatMessage("user", "What time is it?")], tools=[zone])
        if isinstance(c, ToolCall)
    ]
    assert json.loads(call.arguments) == {}
    asked = [ChatMessage("user", "What time is it in Tokyo?")]
    (call,) = [c for c in await run(llm, asked, tools=[zone]) if isinstance(c, ToolCall)]
    assert json.loads(call.arguments) == {"timezone": "Asia/Tokyo"}


async def test_a_favoured_call_stops_being_written_at_its_first_made_up_argument() -> None:
    convert = {
        "type": "function",
        "name": "convert_units",
        "description": "Convert units.",
        "parameters": {
            "type": "object",
            "properties": {"value": {"type": "number"}, "unit": {"type": "string"}},
            "required": ["value", "unit"],
        },
    }
    made_up = '{"name": "convert_units", "arguments": {"value": 10, "unit": "meters"}}'
    llm, runtime = engine("The sky is blue.", made_up, "The sky is blue.")
    llm.call_bias, runtime.first = 1.25, CLOSE_BEHIND
    asked = [ChatMessage("user", "What color is the sky on a clear day?")]
    chunks = await run(llm, asked, tools=[convert])
    assert not any(isinstance(c, ToolCall) for c in chunks)
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == "The sky is blue."
    wrote = runtime.requests[1]
    assert wrote["grammar"].startswith("%llguidance {}\nstart: call\n")
    assert wrote["usage"].output_tokens * 3 <= made_up.index("meters")  # stopped at 10,

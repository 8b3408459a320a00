"""Testing examples/assistant.py the way a user talks to it: spoken questions, barge-ins, a tool
that fails. These tests are the text of docs/testing.md.

On the scripted backend (the default) the `t.when(...)` rules decide what the "model" does, so
the agent's own code (its tools, their errors, the session's turn-taking) is what is tested, in
seconds and offline. On the local backend (`-m slow`) the same tests run against the offline
models, and the rules are ignored: the model decides.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import assistant
import pytest

from realtalk import function_tool
from realtalk.testing import AgentTest

# The user's microphone and the agent's speaker run at twice real time: turn-taking, barge-in
# and truncation work on audio time, so the tests mean the same and take half as long.
pytestmark = pytest.mark.realtalk(speed=2.0)

ASSISTANT = Path(assistant.__file__)
FIFTY_ONE = ["51", "fifty-one", "fifty one"]


async def test_a_spoken_sum_is_worked_out_with_the_calculator(agent_test) -> None:
    # The agent file itself, started through its entrypoint as `realtalk run` would.
    t: AgentTest = await agent_test(ASSISTANT)
    t.greeting.expect.next_event().is_agent_message(contains="Ask away")

    t.when("seventeen times three").call("calculate", {"expression": "17 * 3"}).then_say(
        "Seventeen times three is {output}."
    )
    turn = await t.speak("What is seventeen times three?")

    turn.expect.next_event().is_function_call(name="calculate")
    turn.expect.next_event().is_function_call_output(contains="51", is_error=False)
    turn.expect.next_event().is_agent_message(any_of=FIFTY_ONE)
    turn.expect.no_more_events()


class SlowAssistant(assistant.Assistant):
    """The assistant with a calculator that takes two seconds."""

    @function_tool
    async def calculate(self, expression: str) -> str:
        """Evaluate an arithmetic expression exactly.

        Args:
            expression: Numbers with + - * / and parentheses, e.g. "(17 + 4) * 3".
        """
        await asyncio.sleep(2.0)
        return assistant.format_number(assistant.evaluate(expression))


async def test_a_slow_tool_survives_a_barge_in(agent_test) -> None:
    t: AgentTest = await agent_test(SlowAssistant())
    await t.prepare_speech("Are you still there?")  # ready before the moment to cut in
    t.when("seventeen times three").say("Let me work that out, it takes me a moment.").call(
        "calculate", {"expression": "17 * 3"}
    ).then_say("Seventeen times three is {output}.")
    t.when("still there").say("Yes, still working on it.")

    await t.speak("What is seventeen times three?", wait=False)
    # The user cuts in 800 ms into "Let me work that out...", while the tool is running.
    turn = await t.speak("Are you still there?", barge_in_ms=800)

    turn.expect.contains_interruption()
    # The tool was not cancelled by the barge-in: its result arrived and was spoken.
    turn.expect.contains_function_call(name="calculate")
    turn.expect.next_event(type="function_call_output").is_function_call_output(
        contains="51", is_error=False
    )
    turn.expect.contains_agent_message(any_of=FIFTY_ONE)
    [cut] = turn.events_of("interruption")
    [output] = turn.events_of("function_call_output")
    assert cut.t < output.t  # the user cut in while the tool was still running


async def test_a_raising_tool_gives_a_spoken_apology_not_a_traceback(agent_test) -> None:
    t: AgentTest = await agent_test(ASSISTANT)
    t.when("divided by zero").call("calculate", {"expression": "1 / 0"}).on_error(
        "Sorry, I could not work that out: {error}."
    )
    turn = await t.speak("What is one divided by zero?")

    turn.expect.next_event().is_function_call(name="calculate")
    turn.expect.next_event().is_function_call_output(is_error=True, contains="division by zero")
    turn.expect.next_event().is_agent_message(
        any_of=["sorry", "cannot", "can't", "could not", "undefined", "not possible"]
    )
    turn.expect.no_more_events()  # no error event: the session carried on
    assert "Traceback" not in turn.agent_text
    assert turn.spoken_ms > 0  # the apology was spoken, not only written


async def test_a_second_question_after_an_interruption_is_answered(agent_test) -> None:
    t: AgentTest = await agent_test(ASSISTANT)
    t.when("long story").say(
        "Once upon a time there was a calculator who loved numbers so much that it counted "
        "every star in the sky, one by one, night after night, until the sun came up again."
    )
    t.when("seventeen times three").call("calculate", {"expression": "17 * 3"}).then_say(
        "Seventeen times three is {output}."
    )

    story = await t.speak("Tell me a long story.", wait=False)
    answer = await t.speak("What is seventeen times three?", barge_in_ms=800)

    story.expect.contains_agent_message()
    answer.expect.next_event().is_interruption()
    answer.expect.next_event().is_function_call(name="calculate")
    answer.expect.next_event().is_function_call_output(contains="51")
    answer.expect.next_event().is_agent_message(any_of=FIFTY_ONE)
    answer.expect.no_more_events()
    answer.expect.within_budget(latency_ms=10_000, tokens=5_000)

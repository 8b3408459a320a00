"""Expectations over a turn's events: what passes, and the story a failure prints."""

from __future__ import annotations

import re

import pytest

from realtalk.testing import Event, ExpectationFailed, TurnResult


def sum_turn() -> TurnResult:
    """A spoken question answered with the calculator, as the recorder would have kept it."""
    call = {"name": "calculate", "arguments": '{"expression": "17 * 3", "exact": true}'}
    output = {"name": "calculate", "output": "51", "is_error": False}
    metrics = {"usage": {"total_tokens": 200}, "cost_usd": 0.0035, "latency_ms": 300.0}
    events = [
        Event("input", 5.0, {"what": "turn 1: speak('What is seventeen times three?')"}),
        Event("user_started_speaking", 5.1),
        Event("user_stopped_speaking", 6.9),
        Event("user_message", 6.9, {"text": "What is seventeen times three?"}),
        Event("function_call", 6.95, call),
        Event("function_call_output", 6.95, output),
        Event("agent_message", 7.0, {"text": "Seventeen times three is 51."}),
        Event("agent_started_speaking", 7.2),
        Event("agent_stopped_speaking", 8.45, {"played_ms": 1250}),
        Event("metrics", 8.45, metrics),
    ]
    return TurnResult(
        "turn 1: speak('What is seventeen times three?')",
        events,
        heard="What is seventeen times three?",
        done=True,
        input_end_t=6.9,
    )


def test_a_matching_chain_passes_and_moves_the_cursor() -> None:
    turn = sum_turn()
    turn.expect.next_event().is_function_call(name="calculate", arguments={"expression": "17 * 3"})
    turn.expect.next_event().is_function_call_output(
        name="calculate", contains="51", is_error=False
    )
    turn.expect.next_event().is_agent_message(contains="51", regex=r"\bis 51\b", any_of=["51", "x"])
    turn.expect.no_more_events()
    turn.expect.reset().next_event(type="agent_message").is_agent_message(contains="seventeen")
    turn.expect.heard(contains="seventeen times")
    turn.expect.within_budget(latency_ms=1000, tokens=200, cost_usd=0.01)
    assert turn.latency_ms == pytest.approx(300.0)
    assert turn.spoken_ms == 1250
    assert turn.agent_text == "Seventeen times three is 51."


def test_a_wrong_event_shows_what_was_expected_what_came_and_the_story() -> None:
    turn = sum_turn()
    with pytest.raises(ExpectationFailed) as failure:
        turn.expect.next_event().is_agent_message(contains="51")
    message = str(failure.value)
    assert "Expected: next_event().is_agent_message(contains='51')" in message
    assert 'Got: function_call calculate({"expression": "17 * 3", "exact": true})' in message
    assert "What happened in turn 1: speak('What is seventeen times three?'):" in message
    # Every event, timed, with an arrow at the one that did not match.
    assert re.search(r"-->\s+6\.95s  function_call calculate", message)
    assert "   5.10s  user started speaking" in message
    assert "user: 'What is seventeen times three?'" in message
    assert "function_call_output calculate -> '51'" in message
    assert "agent: 'Seventeen times three is 51.'" in message
    assert "turn metrics: latency 300 ms, 200 tokens, $0.0035" in message
    assert "(heard: 'What is seventeen times three?'; latency: 300 ms; tokens: 200" in message


def test_argument_matching_is_partial_unless_exact() -> None:
    turn = sum_turn()
    turn.expect[0].is_function_call(arguments={"expression": "17 * 3"})
    with pytest.raises(ExpectationFailed, match=r"exact=True"):
        turn.expect[0].is_function_call(arguments={"expression": "17 * 3"}, exact=True)
    with pytest.raises(ExpectationFailed, match=r"is_function_call\(name='get_time'\)"):
        turn.expect[0].is_function_call(name="get_time")
    with pytest.raises(ExpectationFailed, match="Got: function_call calculate"):
        turn.expect[0].is_function_call(arguments={"expression": "18 * 3"})


def test_no_more_events_points_at_the_first_extra_one() -> None:
    turn = sum_turn()
    turn.expect.skip_next(2)
    with pytest.raises(ExpectationFailed) as failure:
        turn.expect.no_more_events()
    message = str(failure.value)
    assert "Expected: no more events" in message
    assert "Got: agent: 'Seventeen times three is 51.'" in message
    assert re.search(r"-->\s+7\.00s  agent:", message)


def test_running_out_of_events_says_so() -> None:
    turn = sum_turn()
    turn.expect.skip_next(3)
    with pytest.raises(ExpectationFailed, match="no more events"):
        turn.expect.next_event().is_agent_message()
    with pytest.raises(ExpectationFailed, match=r"skip_next\(1\)"):
        turn.expect.skip_next()


def test_contains_searches_the_whole_turn() -> None:
    turn = sum_turn()
    turn.expect.contains_agent_message(any_of=["fifty-one", "51"])
    turn.expect.contains_function_call(name="calculate", arguments={"expression": "17 * 3"})
    with pytest.raises(ExpectationFailed) as failure:
        turn.expect.contains_interruption()
    assert "Expected: contains_interruption()" in str(failure.value)
    assert "Got: no such interruption in the turn" in str(failure.value)


def test_budgets_name_each_limit_that_was_exceeded() -> None:
    turn = sum_turn()
    with pytest.raises(ExpectationFailed) as failure:
        turn.expect.within_budget(latency_ms=100, tokens=50, cost_usd=0.001)
    message = str(failure.value)
    assert "latency 300 ms > budget 100 ms" in message
    assert "tokens 200 > budget 50" in message
    assert "cost $0.0035 > budget $0.0010" in message
    unspoken = TurnResult("turn 2: send_text('hi')", [], input_end_t=1.0, done=True)
    with pytest.raises(ExpectationFailed, match="latency not measured"):
        unspoken.expect.within_budget(latency_ms=100)


def test_heard_interruption_handoff_and_error_events() -> None:
    turn = TurnResult(
        "turn 3",
        [
            Event("interruption", 1.0, {"played_ms": 800}),
            Event("handoff", 1.5, {"to": "Billing"}),
            Event("error", 2.0, {"message": "rate limited", "fatal": False}),
        ],
        heard="stop",
    )
    turn.expect.next_event().is_interruption()
    turn.expect.next_event().is_handoff(to="Billing")
    turn.expect.next_event().is_error(contains="rate")
    with pytest.raises(ExpectationFailed, match="heard 'stop'"):
        turn.expect.heard(contains="go on")
    with pytest.raises(ExpectationFailed, match=r"is_handoff\(to='Sales'\)"):
        turn.expect[1].is_handoff(to="Sales")
    assert "the turn had not finished" in turn.story()

"""Whether a call a local model was nudged into takes its arguments from the user's words."""

from __future__ import annotations

import pytest

from realtalk.server.engines.grounding import (
    is_about,
    lean_arguments,
    leave_out_unsaid,
    made_up_so_far,
    takes_arguments_from,
)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ('{"expression": "12 * 12"}', "What is 12 squared?"),
        ('{"expression": "sqrt(144)"}', "What is the square root of 144?"),
        ('{"expression": "0.5 * 370"}', "What is half of 370?"),
        ('{"expression": "1000 / 8"}', "What is 1,000 divided by 8?"),
        (
            '{"value": 2, "from_unit": "liters", "to_unit": "gallons"}',
            "Convert two liters to gallons.",
        ),
        ('{"value": 1, "from_unit": "liters", "to_unit": "cups"}', "How many cups in a liter?"),
        (
            '{"value": 60, "from_unit": "miles per hour", "to_unit": "kilometers per hour"}',
            "What is 60 mph in kilometers per hour?",
        ),
        ('{"timezone": "Asia/Tokyo"}', "What time is it in Tokyo?"),
        ('{"timezone": "Asia/Tokyo", "exact": true}', "What time is it in Tokyo?"),
    ],
)
def test_arguments_the_user_said_pass(arguments: str, words: str) -> None:
    assert takes_arguments_from(arguments, words)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ('{"expression": "10 - 5"}', "I'm feeling a bit tired today."),
        ('{"value": 1, "from_unit": "miles", "to_unit": "kilometers"}', "How many hours?"),
        ('{"timezone": "America/New_York"}', "Good morning."),
        ("{}", "What is the capital of France?"),  # nothing to show it answers the user
        ('{"exact": true}', "Hello"),
        ('{"value": 2, "from_unit": "miles", "to_unit": "gallons"}', "Convert two leaders."),
        ("not json", "What is 2 plus 2?"),
    ],
)
def test_made_up_arguments_fail(arguments: str, words: str) -> None:
    assert not takes_arguments_from(arguments, words)


TIME = {
    "name": "get_time",
    "description": "Get the current time and date (weekday, day, month and year). Call this "
    "for any question about the time, today, the date, the day or the month.",
    "parameters": {
        "type": "object",
        "properties": {"timezone": {"type": "string"}, "exact": {"type": "boolean"}},
        "required": [],
    },
}
CONVERT = {
    "name": "convert_units",
    "description": "Convert a quantity from one unit to another.",
    "parameters": {
        "type": "object",
        "properties": {"value": {"type": "number"}, "unit": {"type": "string"}},
        "required": ["value", "unit"],
    },
}


def _leave_out(arguments: str, tool: dict[str, object], words: str) -> str:
    return leave_out_unsaid(arguments, tool, words, words)


def test_optional_arguments_the_user_never_said_are_left_out() -> None:
    assert _leave_out('{"timezone": "UTC"}', TIME, "What time is it?") == "{}"
    assert _leave_out('{"timezone": "UTC"}', TIME, "What's the time right now?") == "{}"
    assert (
        _leave_out('{"timezone": "America/New_York", "exact": true}', TIME, "Time?")
        == '{"exact": true}'
    )
    kept = '{"timezone": "Asia/Tokyo"}'
    assert _leave_out(kept, TIME, "What time is it in Tokyo?") == kept
    # required ones stay whatever they hold: the call needs them
    required = '{"value": 10, "unit": "meters"}'
    assert _leave_out(required, CONVERT, "How tall is it?") == required
    assert _leave_out("not json", TIME, "") == "not json"


def test_an_optional_argument_drawn_from_words_beyond_the_tools_purpose_stays() -> None:
    # "France" is not "Europe/Paris", but it is what the zone was drawn from
    paris = '{"timezone": "Europe/Paris"}'
    assert _leave_out(paris, TIME, "What time is it in France?") == paris
    # a follow-up: the place was said in an earlier turn, the last turn is all about time
    tokyo = '{"timezone": "Asia/Tokyo"}'
    said = "What time is it in Tokyo?\nAnd the date?"
    assert leave_out_unsaid(tokyo, TIME, said, "And the date?") == tokyo
    assert leave_out_unsaid(paris, TIME, said, "And the date?") == "{}"


@pytest.mark.parametrize(
    ("words", "about"),
    [
        ("Which month are we in?", True),
        ("What day of a week is it?", True),  # "week", as in "weekday"
        ("What's the time right now?", True),
        ("Good morning.", False),
        ("What is the capital of France?", False),
        ("How many hours are in a day?", False),  # "hours" is not get_time's word
        ("Yes.", False),  # no content word at all
        ("", False),
    ],
)
def test_words_are_about_a_tool_when_its_purpose_uses_each_content_word(
    words: str, about: bool
) -> None:
    assert is_about(words, TIME) is about


def test_a_leant_call_keeps_said_arguments_needs_none_where_the_words_are_about_it() -> None:
    tokyo = '{"timezone": "Asia/Tokyo"}'
    assert lean_arguments(tokyo, TIME, "What time is it in Tokyo?") == tokyo
    made_up = '{"timezone": "America/New_York"}'
    assert lean_arguments(made_up, TIME, "Which month are we in?") == "{}"
    assert lean_arguments(None, TIME, "Which month are we in?") == "{}"  # cut off: made up
    assert lean_arguments(made_up, TIME, "Good morning.") is None
    assert lean_arguments("{}", TIME, "What is the capital of France?") is None
    # a tool that needs arguments gets none it could not be given
    assert lean_arguments(None, CONVERT, "Convert units, please.") is None
    said = '{"value": 2, "unit": "feet"}'
    assert lean_arguments(said, CONVERT, "Convert 2 feet.") == said


def test_a_call_being_written_gives_itself_away_at_its_first_made_up_argument() -> None:
    head = '<tool_call>\n{"name": "convert_units", "arguments": {"value": 10'
    words = "What color is the sky on a clear day?"
    assert not made_up_so_far(head, words)  # "10" may yet be "100"
    assert made_up_so_far(head + ", ", words)
    assert made_up_so_far(head + ', "from_unit": "met', words)
    said = '<tool_call>\n{"name": "convert_units", "arguments": {"value": 10, "from_unit": "'
    assert not made_up_so_far(said, "How many feet are in 10 meters?")
    assert not made_up_so_far('<tool_call>\n{"name": "get_ti', words)
    assert not made_up_so_far('{"name": "get_time", "arguments": {}}', words)
    zone = '{"name": "get_time", "arguments": {"timezone": "America/New_York"}'
    assert made_up_so_far(zone, "Good morning.")
    assert not made_up_so_far(zone, "What time is it in New York?")

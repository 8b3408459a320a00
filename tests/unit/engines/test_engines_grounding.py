"""Whether a call a local model was nudged into takes its arguments from the user's words."""

from __future__ import annotations

import pytest

from realtalk.server.engines.grounding import (
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
    "type": "object",
    "properties": {"timezone": {"type": "string"}, "exact": {"type": "boolean"}},
    "required": [],
}
CONVERT = {
    "type": "object",
    "properties": {"value": {"type": "number"}, "unit": {"type": "string"}},
    "required": ["value", "unit"],
}


def test_optional_arguments_the_user_never_said_are_left_out() -> None:
    assert leave_out_unsaid('{"timezone": "UTC"}', TIME, "What time is it?") == "{}"
    assert (
        leave_out_unsaid('{"timezone": "America/New_York", "exact": true}', TIME, "Time?")
        == '{"exact": true}'
    )
    kept = '{"timezone": "Asia/Tokyo"}'
    assert leave_out_unsaid(kept, TIME, "What time is it in Tokyo?") == kept
    # required ones stay whatever they hold: the call needs them
    required = '{"value": 10, "unit": "meters"}'
    assert leave_out_unsaid(required, CONVERT, "How tall is it?") == required
    assert leave_out_unsaid("not json", TIME, "") == "not json"


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

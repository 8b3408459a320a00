"""Property-based fuzzing of the sans-I/O protocol core, the first thing bad bytes reach.

Contracts under test:
- ``parse_event`` returns an event dict with a string ``type`` or raises ``ValueError``
  (never anything else), so a receive loop that catches ``ValueError`` cannot die on a frame;
- ``validate_client_event`` never raises: any JSON value gets ``None`` or a ``ProtocolError``
  with a code and a message, which the server turns into an ``error`` event;
- ``decode_audio`` never raises: bytes or a ``ProtocolError``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtalk.protocol import ProtocolError, decode_audio, parse_event, validate_client_event
from tests.reliability.conftest import Ledger
from tests.reliability.corpus import (
    CLIENT_EVENTS,
    JSON_VALUES,
    SERVER_EVENTS,
    byte_mutations,
    mutated_events,
)

AREA = "protocol core"
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _parse_or_value_error(raw: str | bytes) -> dict[str, Any] | None:
    try:
        event = parse_event(raw)
    except ValueError:
        return None
    assert isinstance(event, dict)
    assert isinstance(event["type"], str)
    return event


def _check_verdict(verdict: ProtocolError | None) -> None:
    if verdict is not None:
        assert isinstance(verdict, ProtocolError)
        assert verdict.code and isinstance(verdict.code, str)
        assert verdict.message and isinstance(verdict.message, str)


def test_the_corpus_is_valid() -> None:
    """Mutations start from events the validator accepts and the parser reads back."""
    for event in CLIENT_EVENTS:
        assert validate_client_event(event) is None, event
    for event in SERVER_EVENTS:
        assert parse_event(json.dumps(event)) == event


@FUZZ
@given(raw=st.text(max_size=200) | st.binary(max_size=200))
def test_parse_event_on_noise(ledger: Ledger, raw: str | bytes) -> None:
    _parse_or_value_error(raw)
    ledger.record(AREA, "parse_event: random text and bytes")


@FUZZ
@given(raw=byte_mutations(SERVER_EVENTS))
def test_parse_event_on_corrupted_server_frames(ledger: Ledger, raw: bytes) -> None:
    _parse_or_value_error(raw)
    ledger.record(AREA, "parse_event: server frames truncated, flipped, spliced")


@FUZZ
@given(event=mutated_events(SERVER_EVENTS))
def test_parse_event_on_mutated_server_events(ledger: Ledger, event: dict[str, Any]) -> None:
    parsed = _parse_or_value_error(json.dumps(event))
    if isinstance(event.get("type"), str):  # a JSON object with a string type always parses
        assert parsed is not None
    ledger.record(AREA, "parse_event: server events with fields replaced/deleted/retyped")


@pytest.mark.parametrize(
    "raw",
    ["[" * 100_000, '{"type": "error", "x": ' + "[" * 100_000 + "}"],
    ids=["bare", "in-a-field"],
)
def test_parse_event_on_deep_nesting(ledger: Ledger, raw: str) -> None:
    try:
        _parse_or_value_error(raw)
    except RecursionError:
        ledger.record(
            AREA,
            "parse_event: JSON nested 100,000 deep",
            survived=0,
            lost="RecursionError, not ValueError (callers guard it)",
        )
        raise
    ledger.record(AREA, "parse_event: JSON nested 100,000 deep")


@pytest.mark.parametrize("role", [[], {}, ["user"]], ids=["list", "object", "list-of-role"])
def test_validate_item_with_an_unhashable_role(role: Any) -> None:
    """Found by the mutation fuzzer (a TypeError until 9978327)."""
    item = {"type": "message", "role": role, "content": []}
    _check_verdict(validate_client_event({"type": "conversation.item.create", "item": item}))


@FUZZ
@given(value=JSON_VALUES)
def test_validate_client_event_on_any_json(ledger: Ledger, value: Any) -> None:
    verdict = validate_client_event(value)
    _check_verdict(verdict)
    if not isinstance(value, dict):
        assert verdict is not None
    ledger.record(AREA, "validate_client_event: arbitrary JSON values")


@FUZZ
@given(event=mutated_events(CLIENT_EVENTS))
def test_validate_client_event_on_mutated_events(ledger: Ledger, event: dict[str, Any]) -> None:
    _check_verdict(validate_client_event(event))
    ledger.record(AREA, "validate_client_event: client events with fields mutated")


@FUZZ
@given(
    event=st.sampled_from(CLIENT_EVENTS),
    junk=st.sampled_from(["type", "event_id"]),
    value=JSON_VALUES.filter(lambda v: v is not None and not isinstance(v, str)),
)
def test_validate_client_event_names_a_bad_envelope(
    ledger: Ledger, event: dict[str, Any], junk: str, value: Any
) -> None:
    """A non-string type or event_id is always refused, whatever else the event holds."""
    event = {**event, junk: value}
    verdict = validate_client_event(event)
    assert verdict is not None
    _check_verdict(verdict)
    ledger.record(AREA, "validate_client_event: bad type / event_id envelope")


@FUZZ
@given(value=st.text(max_size=64) | st.sampled_from(["", "=", "A", "AA==", "AAA=", "QUJD\n"]))
def test_decode_audio_never_raises(ledger: Ledger, value: str) -> None:
    result = decode_audio(value)
    assert isinstance(result, bytes | ProtocolError)
    ledger.record(AREA, "decode_audio: arbitrary base64 text")


def test_decode_audio_refuses_oversized_appends(ledger: Ledger) -> None:
    result = decode_audio("A" * (16 * 1024 * 1024 * 4 // 3))
    assert isinstance(result, ProtocolError)
    assert "15 MiB" in result.message
    ledger.record(AREA, "decode_audio: 16 MiB append")

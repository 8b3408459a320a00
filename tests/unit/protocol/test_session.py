"""Session defaults, partial merges and validation, as OpenAI's server applies them."""

from __future__ import annotations

import pytest

from realtalk.protocol import (
    PCM24K,
    PCMU,
    AudioFormat,
    default_session,
    merge_session,
    validate_session,
)


def test_merge_is_deep_and_partial() -> None:
    base = default_session("m")
    merged = merge_session(base, {"audio": {"output": {"voice": "cedar"}}})
    assert merged["audio"]["output"]["voice"] == "cedar"
    assert merged["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert merged["audio"]["input"] == base["audio"]["input"]
    assert base["audio"]["output"]["voice"] == "marin", "merge must not mutate its input"


def test_null_clears_and_lists_replace() -> None:
    base = default_session("m")
    merged = merge_session(
        base, {"audio": {"input": {"turn_detection": None}}, "tools": [{"name": "a"}]}
    )
    assert merged["audio"]["input"]["turn_detection"] is None
    assert merged["tools"] == [{"name": "a"}]
    assert merge_session(merged, {"tools": []})["tools"] == []


def test_turn_detection_of_another_type_replaces_the_old_one() -> None:
    base = default_session("m")
    semantic = merge_session(
        base, {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "low"}}}}
    )
    td = semantic["audio"]["input"]["turn_detection"]
    assert td == {
        "type": "semantic_vad",
        "eagerness": "low",
        "create_response": True,
        "interrupt_response": True,
    }
    back = merge_session(
        semantic, {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.7}}}}
    )
    assert back["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 200
    assert back["audio"]["input"]["turn_detection"]["threshold"] == 0.7
    partial = merge_session(
        back, {"audio": {"input": {"turn_detection": {"silence_duration_ms": 800}}}}
    )
    assert partial["audio"]["input"]["turn_detection"]["threshold"] == 0.7


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({}, "missing_required_parameter", "session.type"),
        ({"type": "realtime", "modalities": ["text"]}, "unknown_parameter", "session.modalities"),
        (
            {"type": "realtime", "input_audio_format": "pcm16"},
            "unknown_parameter",
            "session.input_audio_format",
        ),
        ({"type": "realtime", "temperature": 0.8}, "unknown_parameter", "session.temperature"),
        (
            {"type": "realtime", "output_modalities": ["text", "audio"]},
            "invalid_value",
            "session.output_modalities",
        ),
        ({"type": "realtime", "instructions": 5}, "invalid_type", "session.instructions"),
        (
            {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
            },
            "invalid_value",
            "session.audio.input.format",
        ),
        (
            {"type": "realtime", "audio": {"input": {"turn_detection": {"threshold": 2}}}},
            "invalid_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"type": "realtime", "max_output_tokens": 0},
            "invalid_value",
            "session.max_output_tokens",
        ),
        ({"type": "realtime", "tool_choice": "sometimes"}, "invalid_value", "session.tool_choice"),
        (
            {"type": "realtime", "tools": [{"type": "function"}]},
            "missing_required_parameter",
            "session.tools[0].name",
        ),
        (
            {"type": "realtime", "audio": {"output": {"speed": 3}}},
            "invalid_value",
            "session.audio.output.speed",
        ),
    ],
)
def test_validation_names_the_parameter(session: dict, code: str, param: str) -> None:
    problem = validate_session(session)
    assert problem is not None
    assert (problem.code, problem.param) == (code, param)
    assert param in problem.message


def test_a_full_default_session_is_valid_input() -> None:
    assert validate_session(default_session("m")) is None


def test_audio_format_arithmetic() -> None:
    assert PCM24K.ms_for_bytes(48_000) == 1000
    assert PCM24K.bytes_for_ms(20) == 960
    assert PCMU.ms_for_bytes(800) == 100
    assert PCMU.bytes_for_ms(20) == 160
    assert AudioFormat.parse("g711_ulaw") == PCMU
    assert AudioFormat.parse({"type": "audio/pcm"}) == PCM24K
    assert PCM24K.ms_for_bytes(47) == 0
    with pytest.raises(ValueError, match="rate 24000"):
        AudioFormat.parse({"type": "audio/pcm", "rate": 44100})

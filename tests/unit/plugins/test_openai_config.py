"""OpenAIRealtimeConfig → GA session: every spelling of every setting, checked by the SDK oracle."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.beta.realtime.session import InputAudioTranscription, TurnDetection
from openai.types.realtime.audio_transcription import AudioTranscription
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad, ServerVad

from realtalk.errors import ConfigurationError
from realtalk.plugins.openai import (
    OpenAIRealtimeConfig,
    ReconnectPolicy,
    build_session,
    semantic_vad,
    server_vad,
)
from realtalk.protocol import events, validate_client_event
from tests.conformance import check_client_event


def session_of(config: OpenAIRealtimeConfig, **kwargs: Any) -> dict[str, Any]:
    """The session.update a config produces, checked strictly by the SDK and our validator."""
    event = events.session_update(
        build_session(
            config, instructions=kwargs.get("instructions"), tools=kwargs.get("tools", [])
        )
    )
    check_client_event(event)
    assert validate_client_event(event) is None
    return event["session"]


def test_default_config_is_server_vad_alloy_audio_and_mini_transcribe() -> None:
    session = session_of(OpenAIRealtimeConfig())
    audio_in = session["audio"]["input"]
    assert audio_in["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "create_response": True,
        "interrupt_response": True,
    }
    assert audio_in["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "alloy",
    }
    assert session["output_modalities"] == ["audio"]
    assert session["tool_choice"] == "auto"
    assert session["type"] == "realtime"


def test_temperature_and_beta_fields_are_never_sent() -> None:
    session = session_of(OpenAIRealtimeConfig(temperature=0.3))
    text = json.dumps(session)
    assert "temperature" not in text
    assert "pcm16" not in text
    beta_keys = {"modalities", "voice", "input_audio_format", "turn_detection", "model"}
    assert not beta_keys & set(session)


def test_beta_sdk_types_are_normalised() -> None:
    config = OpenAIRealtimeConfig(
        turn_detection=TurnDetection(
            type="server_vad", threshold=0.7, silence_duration_ms=400, interrupt_response=False
        ),
        input_audio_transcription=InputAudioTranscription(model="whisper-1", language="de"),
    )
    audio_in = session_of(config)["audio"]["input"]
    assert audio_in["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.7,
        "silence_duration_ms": 400,
        "interrupt_response": False,
    }
    assert audio_in["transcription"] == {"model": "whisper-1", "language": "de"}
    assert config.interrupt_response is False


def test_ga_sdk_types_are_normalised() -> None:
    config = OpenAIRealtimeConfig(
        turn_detection=SemanticVad(type="semantic_vad", eagerness="high"),
        input_audio_transcription=AudioTranscription(model="gpt-4o-transcribe", prompt="names"),
    )
    audio_in = session_of(config)["audio"]["input"]
    assert audio_in["turn_detection"] == {"type": "semantic_vad", "eagerness": "high"}
    assert audio_in["transcription"] == {"model": "gpt-4o-transcribe", "prompt": "names"}
    server = OpenAIRealtimeConfig(turn_detection=ServerVad(type="server_vad", idle_timeout_ms=6000))
    assert session_of(server)["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "idle_timeout_ms": 6000,
    }


def test_dicts_and_helpers() -> None:
    assert session_of(OpenAIRealtimeConfig(turn_detection={"threshold": 0.2}))["audio"]["input"][
        "turn_detection"
    ] == {"type": "server_vad", "threshold": 0.2}
    vad = semantic_vad(eagerness="low", interrupt_response=False)
    session = session_of(OpenAIRealtimeConfig(turn_detection=vad))
    assert session["audio"]["input"]["turn_detection"]["eagerness"] == "low"
    assert server_vad(idle_timeout_ms=5000)["idle_timeout_ms"] == 5000


def test_none_turn_detection_is_sent_as_null() -> None:
    config = OpenAIRealtimeConfig(turn_detection=None, input_audio_transcription=None)
    session = session_of(config)
    assert session["audio"]["input"]["turn_detection"] is None
    assert '"turn_detection":null' in json.dumps(session, separators=(",", ":"))
    assert session["audio"]["input"]["transcription"] is None
    assert config.interrupt_response is False


def test_modalities_map_to_one_output_modality() -> None:
    assert session_of(OpenAIRealtimeConfig(modalities=["text"]))["output_modalities"] == ["text"]
    assert session_of(OpenAIRealtimeConfig(modalities=["audio"]))["output_modalities"] == ["audio"]
    with pytest.raises(ValueError, match="modalities"):
        OpenAIRealtimeConfig(modalities=["video"])


def test_every_option_validates() -> None:
    config = OpenAIRealtimeConfig(
        voice="marin",
        noise_reduction="far_field",
        speed=1.2,
        max_output_tokens=512,
        input_audio_format="g711_ulaw",
        output_audio_format={"type": "audio/pcma"},
        tracing={"workflow_name": "support", "group_id": "g1"},
        truncation="disabled",
        tool_choice={"type": "function", "name": "lookup"},
    )
    tools = [
        {
            "type": "function",
            "name": "lookup",
            "description": "Look a thing up.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
    ]
    session = session_of(config, instructions="Be brief.", tools=tools)
    assert session["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcma"},
        "voice": "marin",
        "speed": 1.2,
    }
    assert session["max_output_tokens"] == 512
    assert session["truncation"] == "disabled"
    assert session["tracing"]["workflow_name"] == "support"
    assert session["instructions"] == "Be brief."
    assert session["tools"] == tools
    assert config.input_format.rate == 8000


def test_missing_instructions_get_the_seed_default() -> None:
    assert "helpful assistant" in session_of(OpenAIRealtimeConfig())["instructions"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"turn_detection": {"type": "server_vad", "eagerness": "low"}}, "turn_detection"),
        ({"turn_detection": {"type": "semantic_vad", "eagerness": "fast"}}, "eagerness"),
        ({"turn_detection": {"type": "push_to_talk"}}, "turn_detection.type"),
        ({"turn_detection": {"threshold": 1.5}}, "threshold"),
        ({"turn_detection": 42}, "turn_detection"),
        ({"input_audio_transcription": {"language": "en"}}, "input_audio_transcription"),
        ({"noise_reduction": "studio"}, "noise_reduction"),
        ({"speed": 3.0}, "speed"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"input_audio_format": "mp3"}, "input_audio_format"),
        ({"output_audio_format": {"type": "audio/pcm", "rate": 16000}}, "output_audio_format"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"voice": ""}, "voice"),
        ({"truncation": "never"}, "truncation"),
        ({"input_sample_rate": 1000}, "input_sample_rate"),
        ({"input_channels": 0}, "input_channels"),
        ({"append_batch_ms": 5}, "append_batch_ms"),
        ({"max_image_fps": 0}, "max_image_fps"),
        ({"image_max_size": (8, 8)}, "image_max_size"),
        ({"tool_timeout_s": -1}, "tool_timeout_s"),
        ({"session_recycle_s": 0}, "session_recycle_s"),
    ],
)
def test_bad_settings_fail_at_construction_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigurationError, match=field.split(".")[0]):
        OpenAIRealtimeConfig(**kwargs)


def test_reconnect_policy_backoff_is_exponential_with_jitter() -> None:
    policy = ReconnectPolicy(max_attempts=5, backoff_base_s=0.5, backoff_max_s=3.0)
    assert policy.delay_s(1, rand=lambda: 1.0) == 0.5
    assert policy.delay_s(3, rand=lambda: 1.0) == 2.0
    assert policy.delay_s(5, rand=lambda: 1.0) == 3.0  # capped
    assert policy.delay_s(3, rand=lambda: 0.0) == 1.0  # jitter never below half
    with pytest.raises(ConfigurationError):
        ReconnectPolicy(backoff_base_s=5, backoff_max_s=1)


@pytest.mark.parametrize(
    "turn_detection",
    [{"idle_timeout_ms": 100}, {"prefix_padding_ms": 20_000}, {"silence_duration_ms": -1}],
)
def test_turn_detection_limits_are_the_protocols(turn_detection: dict[str, Any]) -> None:
    """One source of rules: what the local server would refuse fails here, at construction."""
    from realtalk.protocol import validate_session

    session = {"type": "realtime", "audio": {"input": {"turn_detection": turn_detection}}}
    assert validate_session(session) is not None
    with pytest.raises(ConfigurationError, match=next(iter(turn_detection))):
        OpenAIRealtimeConfig(turn_detection=turn_detection)

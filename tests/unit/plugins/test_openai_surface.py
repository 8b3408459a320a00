"""The seed plugin's public surface (its doc: /work/shared/seed/openai-realtime-plugin-doc.txt)
is still there, with the same call shapes, after the client became a sans-I/O core + driver."""

from __future__ import annotations

import dataclasses
import inspect

from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig, OpenAISession

SEED_ASYNC_METHODS = {
    "connect": [],
    "send_first_session_update": [],
    "send_event": ["event"],
    "handle_audio_input": ["audio"],
    "handle_video_input": ["frame"],
    "send_message": ["message"],
    "send_text_message": ["message"],
    "send_message_with_frames": ["message", "frames"],
    "create_response": [],
    "interrupt": [],
    "aclose": [],
}
SEED_METHODS = {
    "set_agent": ["agent"],
    "process_base_url": ["url", "model"],
    "bytes_to_base64_url": ["image_bytes"],
}


def _required(func: object) -> list[str]:
    params = list(inspect.signature(func).parameters.values())[1:]  # type: ignore[arg-type]
    return [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
    ]


def test_the_seed_methods_keep_their_names_kinds_and_required_arguments() -> None:
    for name, required in SEED_ASYNC_METHODS.items():
        method = getattr(OpenAIRealtime, name)
        assert inspect.iscoroutinefunction(method), name
        assert _required(method) == required, name
    for name, required in SEED_METHODS.items():
        method = getattr(OpenAIRealtime, name)
        assert not inspect.iscoroutinefunction(method), name
        assert _required(method) == required, name


def test_the_constructor_is_keyword_only_as_in_the_seed() -> None:
    params = inspect.signature(OpenAIRealtime.__init__).parameters
    assert [n for n in params if n != "self"][:4] == ["api_key", "model", "config", "base_url"]
    assert all(p.kind is p.KEYWORD_ONLY for n, p in params.items() if n != "self")
    assert params["model"].default is inspect.Parameter.empty


def test_config_and_session_fields_of_the_seed_remain() -> None:
    config = {f.name: f for f in dataclasses.fields(OpenAIRealtimeConfig)}
    for name in ("voice", "temperature", "turn_detection", "input_audio_transcription"):
        assert name in config
    assert OpenAIRealtimeConfig().voice == "alloy"
    assert OpenAIRealtimeConfig().temperature == 0.8
    assert OpenAIRealtimeConfig().tool_choice == "auto"
    assert [f.name for f in dataclasses.fields(OpenAISession)] == ["ws", "msg_queue", "tasks"]

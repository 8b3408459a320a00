"""The GA session object: its defaults, how ``session.update`` merges into it, and validation.

The server keeps one effective session per connection and answers every update with the whole of
it; the client builds the ``session`` of its ``session.update`` from the user's config. Both use
this module, so a field has one name and one rule.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .audio_formats import AudioFormat
from .errors import ProtocolError, invalid_type, invalid_value, missing_parameter, unknown_parameter

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "default_server_vad",
    "default_session",
    "merge_session",
    "validate_session",
]

DEFAULT_INSTRUCTIONS = (
    "You are a helpful, friendly voice assistant. Keep your answers short and conversational."
)

#: Ours (OpenAI documents none): the ``instructions`` of a session or a response, in characters.
MAX_INSTRUCTIONS_CHARS = 512 * 1024
#: Ours, the number OpenAI's other APIs allow: the tools of a session or a response.
MAX_TOOLS = 128

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")


def default_server_vad() -> dict[str, Any]:
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


def default_session(model: str, *, voice: str = "marin") -> dict[str, Any]:
    """The session a server starts with (what ``session.created`` carries, minus id/expiry)."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": default_server_vad(),
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": voice,
                "speed": 1.0,
            },
        },
    }


def merge_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep partial merge: present keys change, ``None`` clears, lists replace, objects merge.

    A turn detection of another ``type`` replaces the old one wholesale (server_vad fields make no
    sense on semantic_vad); a new server_vad starts from the defaults.
    """
    merged = copy.deepcopy(current)
    _merge_into(merged, update, path=())
    return merged


def _merge_into(target: dict[str, Any], update: dict[str, Any], path: tuple[str, ...]) -> None:
    for key, value in update.items():
        here = (*path, key)
        old = target.get(key)
        if here == ("audio", "input", "turn_detection") and isinstance(value, dict):
            if not isinstance(old, dict) or old.get("type") != value.get("type", old.get("type")):
                old = _turn_detection_defaults(value.get("type", "server_vad"))
                target[key] = old
            _merge_into(old, value, here)
        elif isinstance(value, dict) and isinstance(old, dict) and key not in _REPLACED_WHOLE:
            _merge_into(old, value, here)
        else:
            target[key] = copy.deepcopy(value)


# Objects that are values, not records to merge into.
_REPLACED_WHOLE = frozenset({"format", "tool_choice", "prompt", "tracing", "truncation", "voice"})


def _turn_detection_defaults(kind: str) -> dict[str, Any]:
    if kind == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": True,
            "interrupt_response": True,
        }
    return default_server_vad()


# --- validation ------------------------------------------------------------------------------

Check = Callable[[str, Any], ProtocolError | None]


def _is(kind: type | tuple[type, ...], name: str, nullable: bool = False) -> Check:
    def check(param: str, value: Any) -> ProtocolError | None:
        if value is None and nullable:
            return None
        bad_bool = isinstance(value, bool) and bool not in _as_tuple(kind)
        if bad_bool or not isinstance(value, kind):
            return invalid_type(param, name, value)
        return None

    return check


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _number_in(low: float, high: float, *, nullable: bool = False, integer: bool = False) -> Check:
    def check(param: str, value: Any) -> ProtocolError | None:
        if value is None and nullable:
            return None
        wrong = not isinstance(value, int) if integer else not isinstance(value, int | float)
        if isinstance(value, bool) or wrong:
            return invalid_type(param, "an integer" if integer else "a number", value)
        if not low <= value <= high:
            return invalid_value(param, f"expected a value between {low} and {high}, got {value}.")
        return None

    return check


def _one_of(*choices: Any, nullable: bool = False) -> Check:
    def check(param: str, value: Any) -> ProtocolError | None:
        if value is None and nullable:
            return None
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            return invalid_value(param, f"{value!r}. Supported values are: {listed}.")
        return None

    return check


def _record(
    fields: dict[str, Check], *, required: tuple[str, ...] = (), nullable: bool = False
) -> Check:
    def check(param: str, value: Any) -> ProtocolError | None:
        if value is None and nullable:
            return None
        if not isinstance(value, dict):
            return invalid_type(param, "an object", value)
        for key in required:
            if key not in value:
                return missing_parameter(f"{param}.{key}")
        for key, sub in value.items():
            rule = fields.get(key)
            if rule is None:
                return unknown_parameter(f"{param}.{key}")
            problem = rule(f"{param}.{key}", sub)
            if problem is not None:
                return problem
        return None

    return check


def _audio_format(param: str, value: Any) -> ProtocolError | None:
    if isinstance(value, dict):
        extra = set(value) - {"type", "rate"}
        if extra:
            return unknown_parameter(f"{param}.{sorted(extra)[0]}")
    try:
        AudioFormat.parse(value)
    except ValueError as exc:
        return invalid_value(param, str(exc))
    return None


def _turn_detection(param: str, value: Any) -> ProtocolError | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return invalid_type(param, "an object", value)
    kind = value.get("type", "server_vad")
    common: dict[str, Check] = {
        "type": _one_of("server_vad", "semantic_vad"),
        "create_response": _is(bool, "a boolean"),
        "interrupt_response": _is(bool, "a boolean"),
    }
    if kind == "semantic_vad":
        fields = {**common, "eagerness": _one_of("low", "medium", "high", "auto")}
    else:
        fields = {
            **common,
            "threshold": _number_in(0.0, 1.0),
            "prefix_padding_ms": _number_in(0, 10_000, integer=True),
            "silence_duration_ms": _number_in(0, 10_000, integer=True),
            "idle_timeout_ms": _number_in(5_000, 30_000, integer=True, nullable=True),
        }
    return _record(fields)(param, value)


def _voice(param: str, value: Any) -> ProtocolError | None:
    if isinstance(value, str) and value:
        return None
    if isinstance(value, dict):
        return _record({"id": _is(str, "a string")}, required=("id",))(param, value)
    return invalid_type(param, "a string or an object with an id", value)


def _function_tool(param: str, value: Any) -> ProtocolError | None:
    rule = _record(
        {
            "type": _one_of("function", "mcp"),
            "name": _is(str, "a string"),
            "description": _is(str, "a string", nullable=True),
            "parameters": _is(dict, "an object", nullable=True),
        },
        required=("name",),
    )
    if isinstance(value, dict) and value.get("type") == "mcp":
        return invalid_value(f"{param}.type", "MCP tools are not supported by this server.")
    return rule(param, value)


def _instructions(param: str, value: Any) -> ProtocolError | None:
    if not isinstance(value, str):
        return invalid_type(param, "a string", value)
    if len(value) > MAX_INSTRUCTIONS_CHARS:
        return invalid_value(
            param,
            f"string too long. Expected a string with maximum length {MAX_INSTRUCTIONS_CHARS}, "
            f"but got a string with length {len(value)} instead.",
        )
    return None


def _tools(param: str, value: Any) -> ProtocolError | None:
    if not isinstance(value, list):
        return invalid_type(param, "an array", value)
    if len(value) > MAX_TOOLS:
        return invalid_value(
            param, f"array too long. Expected at most {MAX_TOOLS} tools, got {len(value)}."
        )
    names: set[str] = set()
    for i, tool in enumerate(value):
        problem = _function_tool(f"{param}[{i}]", tool)
        if problem is not None:
            return problem
        if tool["name"] in names:
            return invalid_value(f"{param}[{i}].name", f"duplicate tool name {tool['name']!r}.")
        names.add(tool["name"])
    return None


def _tool_choice(param: str, value: Any) -> ProtocolError | None:
    if isinstance(value, str):
        return _one_of("none", "auto", "required")(param, value)
    return _record(
        {"type": _one_of("function", "mcp"), "name": _is(str, "a string"), "server_label": _any},
        required=("type",),
    )(param, value)


def _max_output_tokens(param: str, value: Any) -> ProtocolError | None:
    if value == "inf":
        return None
    return _number_in(1, 4096, integer=True)(param, value)


def _output_modalities(param: str, value: Any) -> ProtocolError | None:
    if not isinstance(value, list) or not value:
        return invalid_type(param, "a non-empty array", value)
    if value not in (["audio"], ["text"]):
        return invalid_value(param, f"{value!r}. Supported values are: ['audio'], ['text'].")
    return None


def _any(param: str, value: Any) -> ProtocolError | None:
    return None


_TRANSCRIPTION = _record(
    {
        "model": _is(str, "a string"),
        "language": _is(str, "a string", nullable=True),
        "prompt": _is(str, "a string", nullable=True),
    },
    nullable=True,
)
_NOISE_REDUCTION = _record(
    {"type": _one_of("near_field", "far_field")}, required=("type",), nullable=True
)
_AUDIO = _record(
    {
        "input": _record(
            {
                "format": _audio_format,
                "transcription": _TRANSCRIPTION,
                "noise_reduction": _NOISE_REDUCTION,
                "turn_detection": _turn_detection,
            }
        ),
        "output": _record(
            {"format": _audio_format, "voice": _voice, "speed": _number_in(0.25, 1.5)}
        ),
    }
)

#: Rules for every key of a realtime session object, shared by session.update and response.create.
SESSION_FIELDS: dict[str, Check] = {
    "type": _one_of("realtime"),
    "model": _is(str, "a string"),
    "output_modalities": _output_modalities,
    "instructions": _instructions,
    "audio": _AUDIO,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "max_output_tokens": _max_output_tokens,
    "tracing": _any,
    "truncation": _any,
    "prompt": _any,
    "include": _is(list, "an array", nullable=True),
    "reasoning": _is(dict, "an object", nullable=True),
    "parallel_tool_calls": _is(bool, "a boolean"),
    # Present in session.created; a client echoing the whole session back must not be refused.
    "object": _one_of("realtime.session"),
    "id": _is(str, "a string"),
    "expires_at": _is(int, "an integer"),
}


def validate_session(session: Any, *, param: str = "session") -> ProtocolError | None:
    """Check a ``session.update`` session; the first problem, as OpenAI words it, or None."""
    if not isinstance(session, dict):
        return invalid_type(param, "an object", session)
    if "type" not in session:
        return missing_parameter(f"{param}.type")
    if session["type"] == "transcription":
        return invalid_value(f"{param}.type", "transcription sessions are not supported here.")
    return _record(SESSION_FIELDS)(param, session)


check_tools = _tools
check_instructions = _instructions
check_tool_choice = _tool_choice
check_max_output_tokens = _max_output_tokens
check_output_modalities = _output_modalities
check_audio_format = _audio_format
check_voice = _voice

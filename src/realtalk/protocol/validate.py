"""Validation of client events, as a server needs it: the first problem, in OpenAI's words.

Sans-I/O: takes a decoded event, returns a :class:`ProtocolError` or ``None``. The local server
turns the error into an ``error`` event carrying the client's ``event_id``; tests call it directly.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from .errors import ProtocolError, invalid_type, invalid_value, missing_parameter, unknown_parameter
from .events import CLIENT_EVENT_TYPES
from .session import (
    _any,
    _is,
    _one_of,
    _record,
    check_audio_format,
    check_max_output_tokens,
    check_output_modalities,
    check_tool_choice,
    check_tools,
    check_voice,
    validate_session,
)

__all__ = [
    "MAX_AUDIO_APPEND_BYTES",
    "MAX_EVENT_DEPTH",
    "decode_audio",
    "validate_client_event",
    "validate_item",
]

#: OpenAI refuses an ``input_audio_buffer.append`` whose audio is larger than 15 MiB.
MAX_AUDIO_APPEND_BYTES: Final = 15 * 1024 * 1024
#: Deeper client events are refused: no real event comes close (a tool schema nests a few levels).
MAX_EVENT_DEPTH: Final = 64

_USER_PARTS = ("input_text", "input_audio", "input_image")
_PARTS_BY_ROLE = {
    "system": ("input_text",),
    "user": _USER_PARTS,
    "assistant": ("output_text", "text"),
}


def validate_client_event(event: Any) -> ProtocolError | None:
    """Check the envelope and the fields of one client event."""
    if not isinstance(event, dict):
        return ProtocolError("invalid_event", "Expected an event object.", None)
    kind = event.get("type")
    if kind is None:
        return ProtocolError("invalid_event", "The 'type' field is missing.", "type")
    if not isinstance(kind, str):
        return invalid_type("type", "a string", kind)
    if kind not in CLIENT_EVENT_TYPES:
        return ProtocolError(
            "invalid_event",
            f"Invalid value: '{kind}'. Supported values are: "
            + ", ".join(f"'{t}'" for t in sorted(CLIENT_EVENT_TYPES))
            + ".",
            "type",
        )
    event_id = event.get("event_id")
    if event_id is not None and not isinstance(event_id, str):
        return invalid_type("event_id", "a string", event_id)
    too_deep = _deeper_than(event, MAX_EVENT_DEPTH)
    if too_deep is not None:
        return invalid_value(too_deep, f"nested deeper than {MAX_EVENT_DEPTH} levels.")
    allowed, required, checks = _FIELDS[kind]
    for key in required:
        if key not in event:
            return missing_parameter(key)
    for key, value in event.items():
        if key in ("type", "event_id"):
            continue
        if key not in allowed:
            return unknown_parameter(key)
        check = checks.get(key)
        if check is not None:
            problem = check(key, value)
            if problem is not None:
                return problem
    return None


def _deeper_than(value: Any, limit: int) -> str | None:
    """The path of the first value nested deeper than ``limit`` levels, or None.

    Iterative on purpose: a recursive walk (or ``copy.deepcopy`` later on) of a frame nested
    a thousand levels deep would hit Python's recursion limit.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > limit:
            return path.lstrip(".") or "event"
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node))
    return None


def decode_audio(value: str, param: str = "audio") -> bytes | ProtocolError:
    """Base64 audio of an append, or the error OpenAI gives for it."""
    too_big = invalid_value(param, "audio exceeds the maximum of 15 MiB per event.")
    if len(value) > MAX_AUDIO_APPEND_BYTES * 4 // 3 + 4:
        return too_big
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return invalid_value(param, "audio is not valid base64.")
    return too_big if len(data) > MAX_AUDIO_APPEND_BYTES else data


def validate_item(param: str, item: Any) -> ProtocolError | None:
    """Check a conversation item a client wants to create."""
    if not isinstance(item, dict):
        return invalid_type(param, "an object", item)
    kind = item.get("type")
    if kind == "message":
        return _validate_message(param, item)
    if kind == "function_call":
        return _record(
            {
                "type": _any,
                "id": _is(str, "a string"),
                "object": _any,
                "status": _any,
                "call_id": _is(str, "a string"),
                "name": _is(str, "a string"),
                "arguments": _is(str, "a string"),
            },
            required=("name", "arguments"),
        )(param, item)
    if kind == "function_call_output":
        return _record(
            {
                "type": _any,
                "id": _is(str, "a string"),
                "object": _any,
                "status": _any,
                "call_id": _is(str, "a string"),
                "output": _is(str, "a string"),
            },
            required=("call_id", "output"),
        )(param, item)
    if kind is None:
        return missing_parameter(f"{param}.type")
    return invalid_value(
        f"{param}.type",
        f"{kind!r}. Supported values are: 'message', 'function_call', 'function_call_output'.",
    )


def _validate_message(param: str, item: dict[str, Any]) -> ProtocolError | None:
    role = item.get("role")
    if not isinstance(role, str) or role not in _PARTS_BY_ROLE:
        if role is None:
            return missing_parameter(f"{param}.role")
        return invalid_value(
            f"{param}.role", f"{role!r}. Supported values are: 'system', 'user', 'assistant'."
        )
    for key in item:
        if key not in ("type", "role", "content", "id", "object", "status"):
            return unknown_parameter(f"{param}.{key}")
    content = item.get("content")
    if not isinstance(content, list):
        return invalid_type(f"{param}.content", "an array", content)
    allowed = _PARTS_BY_ROLE[role]
    for i, part in enumerate(content):
        where = f"{param}.content[{i}]"
        if not isinstance(part, dict):
            return invalid_type(where, "an object", part)
        ptype = part.get("type")
        if ptype not in allowed:
            if role == "assistant" and ptype in ("output_audio", "audio"):
                return invalid_value(
                    f"{where}.type", "clients cannot create assistant audio messages."
                )
            return invalid_value(
                f"{where}.type",
                f"{ptype!r}. Supported values for role '{role}' are: "
                + ", ".join(repr(a) for a in allowed)
                + ".",
            )
        problem = _check_part(where, part)
        if problem is not None:
            return problem
    return None


def _check_part(where: str, part: dict[str, Any]) -> ProtocolError | None:
    ptype = part["type"]
    if ptype in ("input_text", "output_text", "text"):
        fields = {"type": _any, "text": _is(str, "a string")}
        return _record(fields, required=("text",))(where, part)
    if ptype == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url.startswith("data:image/"):
            return invalid_value(
                f"{where}.image_url", "expected a data URL such as 'data:image/jpeg;base64,...'."
            )
        fields = {"type": _any, "image_url": _any, "detail": _one_of("auto", "low", "high")}
        return _record(fields)(where, part)
    fields = {"type": _any, "audio": _is(str, "a string"), "transcript": _any}
    return _record(fields)(where, part)


def _metadata(param: str, value: Any) -> ProtocolError | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return invalid_type(param, "an object", value)
    if len(value) > 16:
        return invalid_value(param, "metadata may have at most 16 keys.")
    for key, sub in value.items():
        if len(key) > 64:
            return invalid_value(param, f"metadata key {key[:20]!r}... is longer than 64.")
        if not isinstance(sub, str) or len(sub) > 512:
            return invalid_value(f"{param}.{key}", "expected a string of at most 512 characters.")
    return None


def _response_input(param: str, value: Any) -> ProtocolError | None:
    if not isinstance(value, list):
        return invalid_type(param, "an array", value)
    for i, item in enumerate(value):
        where = f"{param}[{i}]"
        if isinstance(item, dict) and item.get("type") == "item_reference":
            if not isinstance(item.get("id"), str):
                return missing_parameter(f"{where}.id")
            continue
        problem = validate_item(where, item)
        if problem is not None:
            return problem
    return None


_RESPONSE = _record(
    {
        "conversation": _is(str, "a string"),
        "input": _response_input,
        "instructions": _is(str, "a string"),
        "output_modalities": check_output_modalities,
        "audio": _record({"output": _record({"format": check_audio_format, "voice": check_voice})}),
        "tools": check_tools,
        "tool_choice": check_tool_choice,
        "max_output_tokens": check_max_output_tokens,
        "metadata": _metadata,
        "prompt": _any,
        "reasoning": _is(dict, "an object", nullable=True),
        "parallel_tool_calls": _is(bool, "a boolean"),
    },
    nullable=True,
)


def _nonempty_str(param: str, value: Any) -> ProtocolError | None:
    if not isinstance(value, str) or not value:
        return invalid_type(param, "a non-empty string", value)
    return None


def _audio_end_ms(param: str, value: Any) -> ProtocolError | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return invalid_type(param, "an integer", value)
    if value < 0:
        return invalid_value(param, f"expected a value >= 0, got {value}.")
    return None


def _content_index(param: str, value: Any) -> ProtocolError | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return invalid_type(param, "a non-negative integer", value)
    return None


def _audio_b64(param: str, value: Any) -> ProtocolError | None:
    if not isinstance(value, str):
        return invalid_type(param, "a string", value)
    return None


def _previous_item_id(param: str, value: Any) -> ProtocolError | None:
    return None if value is None else _nonempty_str(param, value)


Fields = tuple[frozenset[str], tuple[str, ...], dict[str, Any]]

_FIELDS: dict[str, Fields] = {
    "session.update": (
        frozenset({"session"}),
        ("session",),
        {"session": lambda p, v: validate_session(v, param=p)},
    ),
    "input_audio_buffer.append": (frozenset({"audio"}), ("audio",), {"audio": _audio_b64}),
    "input_audio_buffer.commit": (frozenset(), (), {}),
    "input_audio_buffer.clear": (frozenset(), (), {}),
    "output_audio_buffer.clear": (frozenset(), (), {}),
    "conversation.item.create": (
        frozenset({"item", "previous_item_id"}),
        ("item",),
        {"item": validate_item, "previous_item_id": _previous_item_id},
    ),
    "conversation.item.retrieve": (
        frozenset({"item_id"}),
        ("item_id",),
        {"item_id": _nonempty_str},
    ),
    "conversation.item.delete": (frozenset({"item_id"}), ("item_id",), {"item_id": _nonempty_str}),
    "conversation.item.truncate": (
        frozenset({"item_id", "content_index", "audio_end_ms"}),
        ("item_id", "content_index", "audio_end_ms"),
        {"item_id": _nonempty_str, "content_index": _content_index, "audio_end_ms": _audio_end_ms},
    ),
    "response.create": (frozenset({"response"}), (), {"response": _RESPONSE}),
    "response.cancel": (
        frozenset({"response_id"}),
        (),
        {"response_id": lambda p, v: None if v is None else _nonempty_str(p, v)},
    ),
}

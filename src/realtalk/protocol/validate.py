"""Validation of client events, as a server needs it: the first problem, in OpenAI's words.

Sans-I/O: takes a decoded event, returns a :class:`ProtocolError` or ``None``. The local server
turns the error into an ``error`` event carrying the client's ``event_id``; tests call it directly.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from .errors import ProtocolError, invalid_type, invalid_value, missing_parameter, unknown_parameter
from .event_names import CLIENT_EVENT_TYPES
from .session import (
    _any,
    _is,
    _one_of,
    _record,
    check_audio_format,
    check_instructions,
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
    "MAX_ID_CHARS",
    "MAX_ITEM_ID_CHARS",
    "decode_audio",
    "prepare_client_event",
    "validate_client_event",
    "validate_item",
    "without_nulls",
]

#: OpenAI refuses an ``input_audio_buffer.append`` whose audio is larger than 15 MiB.
MAX_AUDIO_APPEND_BYTES: Final = 15 * 1024 * 1024
#: Deeper client events are refused: no real event comes close (a tool schema nests a few levels).
MAX_EVENT_DEPTH: Final = 64
#: OpenAI refuses item ids longer than 32 characters.
MAX_ITEM_ID_CHARS: Final = 32
#: Ours: any other id a client gives (``event_id``, ``call_id``, ``response_id``).
MAX_ID_CHARS: Final = 512
#: A ``null`` for these fields is a value ("none", "clear", "default"); for every other
#: optional field of a client event it means "not given", as OpenAI reads it.
NULL_IS_A_VALUE: Final = frozenset(
    {
        "turn_detection",
        "transcription",
        "noise_reduction",
        "tracing",
        "prompt",
        "include",
        "idle_timeout_ms",
        "language",
        "metadata",
        "reasoning",
    }
)
# Free-form values a client owns: never edited (a JSON schema may hold ``"default": null``).
_OPAQUE = frozenset({"parameters", "metadata", "prompt", "tracing", "reasoning", "truncation"})

_USER_PARTS = ("input_text", "input_audio", "input_image")
_PARTS_BY_ROLE = {
    "system": ("input_text",),
    "user": _USER_PARTS,
    "assistant": ("output_text", "text"),
}


def validate_client_event(event: Any) -> ProtocolError | None:
    """Check the envelope and the fields of one client event."""
    return prepare_client_event(event)[1]


def prepare_client_event(event: Any) -> tuple[dict[str, Any], None] | tuple[None, ProtocolError]:
    """The event with its ``null`` optional fields removed, or the first problem it has."""
    problem = _check_envelope(event)
    if problem is not None:
        return None, problem
    too_deep, nulls = _scan(event, MAX_EVENT_DEPTH)
    if too_deep is not None:
        return None, invalid_value(too_deep, f"nested deeper than {MAX_EVENT_DEPTH} levels.")
    if nulls:  # rare (LiveKit's plugin sends them): copy only then
        event = without_nulls(event)
    problem = _check_fields(event)
    if problem is not None:
        return None, problem
    return event, None


def _check_envelope(event: Any) -> ProtocolError | None:
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
    if event_id is not None:
        problem = _id(MAX_ID_CHARS)("event_id", event_id)
        if problem is not None:
            return problem
    return None


def _check_fields(event: dict[str, Any]) -> ProtocolError | None:
    allowed, required, checks = _FIELDS[event["type"]]
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
    """The path of the first value nested deeper than ``limit`` levels, or None."""
    return _scan(value, limit)[0]


def _scan(value: Any, limit: int) -> tuple[str | None, bool]:
    """The path of the first value nested deeper than ``limit`` levels (or None), and whether
    any object holds a ``null``: one walk for both.

    Iterative on purpose: a recursive walk (or ``copy.deepcopy`` later on) of a frame nested
    a thousand levels deep would hit Python's recursion limit. Linear, and no string is built
    per value: only containers go on the stack, each with a link to its parent, and the path
    is spelled out once, for the value refused.
    """
    Link = tuple[Any, int, Any, Any]  # (node, depth, parent link, key in the parent)
    stack: list[Link] = [(value, 0, None, None)]
    nulls = False
    while stack:
        link = stack.pop()
        node, depth = link[0], link[1]
        if isinstance(node, dict):
            children: Any = node.items()
            nulls = nulls or None in node.values()
        else:
            children = enumerate(node)
        for key, child in children:
            if depth + 1 > limit:
                return _path((child, depth + 1, link, key)), nulls
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, link, key))
    return None, nulls


def _path(link: Any) -> str:
    keys: list[Any] = []
    while link is not None and link[2] is not None:
        keys.append(link[3])
        link = link[2]
    out = ""
    for key in reversed(keys):
        out += f"[{key}]" if isinstance(key, int) else f".{key}"
    return out.lstrip(".") or "event"


def without_nulls(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of the event's records without their ``null`` optional fields.

    OpenAI reads ``"instructions": null`` as "not given" (LiveKit's plugin sends it from every
    ``generate_reply``); only the fields of :data:`NULL_IS_A_VALUE` keep a ``null``. Free-form
    values (tool schemas, metadata) are left as they are. Runs after the depth check.
    """
    return _strip(event)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (v if k in _OPAQUE else _strip(v))
            for k, v in value.items()
            if v is not None or k in NULL_IS_A_VALUE
        }
    if isinstance(value, list):
        if not any(isinstance(v, dict | list) for v in value):
            return value  # nothing to strip: no copy
        return [_strip(v) for v in value]
    return value


_B64_SLICE = 1024 * 1024  # a multiple of 4: slices decode independently


def decode_audio(value: str, param: str = "audio") -> bytes | ProtocolError:
    """Base64 audio of an append, or the error OpenAI gives for it.

    Decoded in 1 MiB slices, so a worker thread decoding 15 MiB lets the event loop run between
    slices (one ``b64decode`` call holds the interpreter for all of it).
    """
    too_big = invalid_value(param, "audio exceeds the maximum of 15 MiB per event.")
    if len(value) > MAX_AUDIO_APPEND_BYTES * 4 // 3 + 4:
        return too_big
    try:
        if len(value) <= _B64_SLICE:
            data = base64.b64decode(value, validate=True)
        else:
            if len(value) % 4 or value.find("=", 0, len(value) - 2) >= 0:
                raise ValueError("padding inside the data")
            data = b"".join(
                base64.b64decode(value[i : i + _B64_SLICE], validate=True)
                for i in range(0, len(value), _B64_SLICE)
            )
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
                "id": _id(MAX_ITEM_ID_CHARS),
                "object": _any,
                "status": _any,
                "call_id": _id(MAX_ID_CHARS),
                "name": _is(str, "a string"),
                "arguments": _is(str, "a string"),
            },
            required=("name", "arguments"),
        )(param, item)
    if kind == "function_call_output":
        return _record(
            {
                "type": _any,
                "id": _id(MAX_ITEM_ID_CHARS),
                "object": _any,
                "status": _any,
                "call_id": _id(MAX_ID_CHARS),
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
    if "id" in item:
        problem = _id(MAX_ITEM_ID_CHARS)(f"{param}.id", item["id"])
        if problem is not None:
            return problem
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
            if "id" not in item:
                return missing_parameter(f"{where}.id")
            problem = _id(MAX_ITEM_ID_CHARS)(f"{where}.id", item["id"])
            if problem is not None:
                return problem
            continue
        problem = validate_item(where, item)
        if problem is not None:
            return problem
    return None


_RESPONSE = _record(
    {
        "conversation": _is(str, "a string"),
        "input": _response_input,
        "instructions": check_instructions,
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


def _id(max_chars: int) -> Any:
    """A non-empty id of at most ``max_chars`` characters."""

    def check(param: str, value: Any) -> ProtocolError | None:
        problem = _nonempty_str(param, value)
        if problem is None and len(value) > max_chars:
            return invalid_value(
                param,
                f"string too long. Expected a string with maximum length {max_chars}, "
                f"but got a string with length {len(value)} instead.",
            )
        return problem

    return check


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
    if value is None or value == "root":
        return None
    return _id(MAX_ITEM_ID_CHARS)(param, value)


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
        {"item_id": _id(MAX_ITEM_ID_CHARS)},
    ),
    "conversation.item.delete": (
        frozenset({"item_id"}),
        ("item_id",),
        {"item_id": _id(MAX_ITEM_ID_CHARS)},
    ),
    "conversation.item.truncate": (
        frozenset({"item_id", "content_index", "audio_end_ms"}),
        ("item_id", "content_index", "audio_end_ms"),
        {
            "item_id": _id(MAX_ITEM_ID_CHARS),
            "content_index": _content_index,
            "audio_end_ms": _audio_end_ms,
        },
    ),
    "response.create": (frozenset({"response"}), (), {"response": _RESPONSE}),
    "response.cancel": (
        frozenset({"response_id"}),
        (),
        {"response_id": lambda p, v: None if v is None else _id(MAX_ID_CHARS)(p, v)},
    ),
}

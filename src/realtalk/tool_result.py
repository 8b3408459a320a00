"""Tool results: what one tool call reports to the model, and how a return value becomes text.

Result serialisation, done exactly once (:func:`serialize_result`):

==========================  ===========================================================
tool returns                ``ToolResult.output``
==========================  ===========================================================
``str``                     the string itself (never JSON-quoted)
``None``                    ``"ok"`` (the call succeeded and has nothing to report)
a pydantic model            ``model.model_dump_json()``
anything else               compact JSON (dicts, lists, numbers, dataclasses, enums,
                            datetimes...); objects JSON cannot express become ``str(obj)``
``bytes`` (also nested)     their text when they are UTF-8, else ``"base64:<base64>"``
                            (binary data the model can at least see the size and kind of)
==========================  ===========================================================

Outputs longer than a tool's ``max_output_chars`` (default 16 KiB) are cut by
:func:`truncate_output`, ending with a marker that says so, because a huge tool output costs
tokens on every later turn.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic import BaseModel

__all__ = [
    "DEFAULT_MAX_OUTPUT_CHARS",
    "NONE_OUTPUT",
    "ToolResult",
    "serialize_result",
    "truncate_output",
]

DEFAULT_MAX_OUTPUT_CHARS = 16 * 1024
NONE_OUTPUT = "ok"
"""What a tool that returns ``None`` reports to the model."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one tool call.

    Attributes:
        output: the text for the ``function_call_output`` item (for errors, ``"Error: ..."``).
        is_error: True when the tool was not called, failed, or timed out.
        error: the error message alone, or None on success.
    """

    output: str
    is_error: bool = False
    error: str | None = None
    #: The tool handed the conversation to another agent (a :class:`realtalk.handoff.Handoff`).
    handoff: Any = None
    #: False: send the output but ask for no follow-up reply; whoever set it (the session, after
    #: a handoff) asks for the next reply itself.
    reply: bool = True

    @classmethod
    def failure(cls, message: str) -> ToolResult:
        return cls(output=f"Error: {message}", is_error=True, error=message)


def serialize_result(value: object) -> str:
    """Turn a tool's return value into the ``function_call_output`` text (see module docstring)."""
    if isinstance(value, str):
        return value
    if value is None:
        return NONE_OUTPUT
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return pydantic_core.to_json(value, fallback=str).decode()
    except pydantic_core.PydanticSerializationError:
        # Bytes have a JSON form (their UTF-8 text), so the str fallback never sees them, and
        # bytes that are not UTF-8 fail instead: describe those. Any left where the walk does not
        # reach (inside a dataclass) are base64 too, without the prefix.
        readable = _describe_binary(value)
        return pydantic_core.to_json(readable, fallback=str, bytes_mode="base64").decode()


def _describe_binary(value: object) -> object:
    """``value`` with each non-UTF-8 ``bytes``/``bytearray`` in it (through dicts, lists,
    tuples and sets) replaced by ``"base64:<base64>"``."""
    if isinstance(value, bytes | bytearray):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {
            (_describe_binary(k) if isinstance(k, bytes) else k): _describe_binary(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_describe_binary(v) for v in value]
    return value


def truncate_output(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, ending with a marker that gives the full length."""
    if len(text) <= max_chars:
        return text
    marker = f"\n…[truncated: {len(text)} characters in total]"
    if max_chars <= len(marker):
        return text[:max_chars]
    return text[: max_chars - len(marker)] + marker

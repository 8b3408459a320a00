"""Decoding one client frame in bounded time and memory, before any validation.

``json.loads`` of a hostile frame is the expensive part: 24 MiB of ``[0,0,0,…]`` is eleven
million Python objects (gigabytes, seconds of CPU). :func:`decode_frame` counts the frame's JSON
values first, from its separators, and refuses a frame with more than ``max_values`` before
parsing anything. Large frames that are legitimately large carry one long string (the base64
audio of an append, an image data URL): those strings are lifted out before parsing and put
back afterwards, so the parser only sees a small document and the long string is one slice.

Every step is a C-level scan of the text (``str.count``, ``str.find``) done in slices, so when
it runs in a worker thread the event loop gets the interpreter back between slices.
"""

from __future__ import annotations

import codecs
import json
import secrets
from typing import Any, Final

from .errors import ProtocolError

__all__ = ["MAX_FRAME_VALUES", "decode_frame", "value_count_bound"]

#: Default bound on the JSON values of one frame.
MAX_FRAME_VALUES: Final = 50_000
#: Strings at least this long are lifted out of a frame before parsing.
LIFT_CHARS: Final = 64 * 1024
#: Frames shorter than this are parsed as they are (the parse takes well under a millisecond).
LIFT_FRAME_CHARS: Final = 1024 * 1024
_SLICE = 1024 * 1024


def _count(text: str, char: str) -> int:
    if len(text) <= _SLICE:
        return text.count(char)
    return sum(text.count(char, i, i + _SLICE) for i in range(0, len(text), _SLICE))


def value_count_bound(text: str) -> int:
    """An upper bound of the JSON values in ``text``, outside strings or not.

    Every value but the first of an array or object is preceded by a comma, and nesting without
    commas is bounded by the depth limit; so values <= commas + depth + 1.
    """
    return _count(text, ",")


def decode_frame(frame: str | bytes, *, max_values: int = MAX_FRAME_VALUES) -> Any:
    """The decoded event, or a :class:`ProtocolError` saying why the frame was refused."""
    if isinstance(frame, bytes | bytearray | memoryview):
        try:
            text = _utf8(frame)
        except UnicodeDecodeError as exc:
            return ProtocolError("invalid_json", f"The event is not valid UTF-8: {exc}.")
    else:
        text = frame
    if value_count_bound(text) > max_values:
        return ProtocolError(
            "invalid_event",
            f"The event has more than {max_values} JSON values (counted by their separators).",
        )
    lifted: dict[str, str] = {}
    if len(text) >= LIFT_FRAME_CHARS and text.find("\\") < 0:
        text, lifted = _lift_long_strings(text)
    try:
        event = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        return ProtocolError("invalid_json", f"The event is not valid JSON: {exc}.")
    except RecursionError:
        return ProtocolError("invalid_json", "The event is nested too deeply.")
    if lifted:
        event = _restore(event, lifted)
    return event


def _utf8(data: bytes | bytearray | memoryview) -> str:
    """Decode in slices (an incremental decoder keeps characters split between slices)."""
    if len(data) <= _SLICE:
        return bytes(data).decode("utf-8")
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    parts = [decoder.decode(view[i : i + _SLICE]) for i in range(0, len(view), _SLICE)]
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def _lift_long_strings(text: str) -> tuple[str, dict[str, str]]:
    """Replace each string of LIFT_CHARS or more by a short placeholder string.

    Only called on text without a backslash: then quotes simply alternate between opening and
    closing a string, and every string's content is its raw text.
    """
    nonce = secrets.token_hex(8)
    lifted: dict[str, str] = {}
    pieces: list[str] = []
    last = 0
    position = 0
    while True:
        opening = text.find('"', position)
        if opening < 0:
            break
        closing = text.find('"', opening + 1)
        if closing < 0:
            break
        if closing - opening - 1 >= LIFT_CHARS:
            key = f"\x00lifted-{nonce}-{len(lifted)}"
            pieces.append(text[last : opening + 1])
            pieces.append(json.dumps(key)[1:-1])
            lifted[key] = text[opening + 1 : closing]
            last = closing
        position = closing + 1
    pieces.append(text[last:])
    return "".join(pieces), lifted


def _restore(value: Any, lifted: dict[str, str]) -> Any:
    """Put the lifted strings back (iteratively: the event may still be deeply nested)."""
    if isinstance(value, str):
        return lifted.get(value, value)
    stack: list[Any] = [value]
    remaining = len(lifted)
    while stack and remaining:
        node = stack.pop()
        if isinstance(node, dict):
            for key, sub in node.items():
                if isinstance(sub, str):
                    if sub in lifted:
                        node[key] = lifted[sub]
                        remaining -= 1
                elif isinstance(sub, dict | list):
                    stack.append(sub)
        elif isinstance(node, list):
            for index, sub in enumerate(node):
                if isinstance(sub, str):
                    if sub in lifted:
                        node[index] = lifted[sub]
                        remaining -= 1
                elif isinstance(sub, dict | list):
                    stack.append(sub)
    return value

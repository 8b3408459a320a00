"""``null`` for an optional field of a client event means "not given", as OpenAI reads it.

Issue 11: ``response.create`` with ``"instructions": null`` was refused, and LiveKit's plugin
sends exactly that from every ``generate_reply()``. Every optional field of every client event,
as the official SDK's ``openai.types.realtime`` types list them (nested records too), is sent
as ``null`` here and must be accepted.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterator
from typing import Any, Union

import pytest
from openai.types import realtime as rt

from realtalk.protocol.validate import NULL_IS_A_VALUE, prepare_client_event

PCM = {"type": "audio/pcm", "rate": 24000}
BASES: list[tuple[Any, dict[str, Any]]] = [
    (
        rt.SessionUpdateEventParam,
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "tool_choice": {"type": "function", "name": "f"},
                "tools": [{"type": "function", "name": "f", "description": "d"}],
                "audio": {
                    "input": {
                        "format": PCM,
                        "transcription": {"model": "whisper-1", "language": "en"},
                        "noise_reduction": {"type": "near_field"},
                        "turn_detection": {"type": "server_vad", "threshold": 0.5},
                    },
                    "output": {"format": PCM, "voice": "marin", "speed": 1.0},
                },
            },
        },
    ),
    (
        rt.ResponseCreateEventParam,
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "instructions": "x",
                "audio": {"output": {"format": PCM, "voice": "marin"}},
                "metadata": {"k": "v"},
            },
        },
    ),
    (rt.ResponseCancelEventParam, {"type": "response.cancel", "response_id": "resp_1"}),
    (rt.InputAudioBufferAppendEventParam, {"type": "input_audio_buffer.append", "audio": ""}),
    (rt.InputAudioBufferCommitEventParam, {"type": "input_audio_buffer.commit"}),
    (rt.InputAudioBufferClearEventParam, {"type": "input_audio_buffer.clear"}),
    (rt.ConversationItemRetrieveEventParam, {"type": "conversation.item.retrieve", "item_id": "a"}),
    (rt.ConversationItemDeleteEventParam, {"type": "conversation.item.delete", "item_id": "a"}),
    (
        rt.ConversationItemTruncateEventParam,
        {
            "type": "conversation.item.truncate",
            "item_id": "a",
            "content_index": 0,
            "audio_end_ms": 0,
        },
    ),
]
ITEMS: list[tuple[Any, dict[str, Any]]] = [
    (
        rt.RealtimeConversationItemUserMessageParam,
        {
            "id": "item_1",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_text", "text": "hi"}],
        },
    ),
    (
        rt.RealtimeConversationItemSystemMessageParam,
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "x"}]},
    ),
    (
        rt.RealtimeConversationItemAssistantMessageParam,
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]},
    ),
    (
        rt.RealtimeConversationItemFunctionCallParam,
        {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c1", "id": "i2"},
    ),
    (
        rt.RealtimeConversationItemFunctionCallOutputParam,
        {"type": "function_call_output", "call_id": "c1", "output": "{}", "id": "i3"},
    ),
]
for _item_type, item in ITEMS:
    BASES.append(
        (
            rt.ConversationItemCreateEventParam,
            {"type": "conversation.item.create", "previous_item_id": "root", "item": item},
        )
    )


def _required(cls: Any) -> set[str]:
    """The SDK's ``Required[...]`` keys (its modules use string annotations, so the TypedDicts'
    own ``__required_keys__`` cannot see them)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {k for k, h in hints.items() if typing.get_origin(h) is typing.Required}


def _typed_dicts(hint: Any) -> list[Any]:
    """The TypedDicts a field's annotation allows (through Optional, Union, Required...)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType, typing.Required, typing.NotRequired):
        return [t for arg in typing.get_args(hint) for t in _typed_dicts(arg)]
    if origin in (list, typing.Iterable) or (origin is not None and "Iterable" in str(origin)):
        return [t for arg in typing.get_args(hint) for t in _typed_dicts(arg)]
    return [hint] if hasattr(hint, "__optional_keys__") else []


def _null_paths(
    cls: Any, value: dict[str, Any], path: tuple[Any, ...] = ()
) -> Iterator[tuple[Any, ...]]:
    """Paths of every optional field of ``cls`` (and of the records ``value`` holds)."""
    hints = typing.get_type_hints(cls)
    for key in sorted(set(hints) - _required(cls)):
        yield (*path, key)
    for key, sub in value.items():
        kinds = _typed_dicts(hints.get(key))
        subs = list(enumerate(sub)) if isinstance(sub, list) else [(None, sub)]
        for index, element in subs:
            if not isinstance(element, dict):
                continue
            where = (*path, key) if index is None else (*path, key, index)
            for kind in kinds:
                if _required(kind) <= set(element):
                    yield from _null_paths(kind, element, where)


def _set(event: dict[str, Any], path: tuple[Any, ...]) -> None:
    node: Any = event
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = None


# Optional in the SDK's types, which spell every variant of a union in one TypedDict, but
# needed to know what the thing is: a null there is refused as a missing parameter, clearly.
# (The GA server itself requires session.type: "Missing required parameter: 'session.type'.")
def _needed_here(path: tuple[Any, ...]) -> bool:
    names = [k for k in path if isinstance(k, str)]
    return names[-2:] in (
        ["session", "type"],
        ["format", "type"],
        ["noise_reduction", "type"],
        ["tools", "name"],
        ["content", "type"],
        ["content", "text"],
    )


ALL = sorted(
    {(base["type"], i, p) for i, (cls, base) in enumerate(BASES) for p in _null_paths(cls, base)}
)
CASES = [c for c in ALL if not _needed_here(c[2])]
NEEDED = [c for c in ALL if _needed_here(c[2])]


def test_the_sdk_types_were_walked() -> None:
    paths = {p for _, _, p in CASES}
    assert ("response", "instructions") in paths
    assert ("session", "audio", "input", "turn_detection") in paths
    assert ("item", "content", 0, "type") not in paths  # required, not optional
    assert len(CASES) > 40, CASES


@pytest.mark.parametrize(
    ("kind", "base", "path"), NEEDED, ids=[f"{k}:{'.'.join(map(str, p))}" for k, _, p in NEEDED]
)
def test_null_for_a_field_needed_here_is_refused_as_missing(
    kind: str, base: int, path: tuple[Any, ...]
) -> None:
    event = copy.deepcopy(BASES[base][1])
    _set(event, path)
    _, problem = prepare_client_event(event)
    assert problem is not None
    assert problem.code in ("missing_required_parameter", "invalid_value", "invalid_type")


@pytest.mark.parametrize(
    ("kind", "base", "path"), CASES, ids=[f"{k}:{'.'.join(map(str, p))}" for k, _, p in CASES]
)
def test_null_for_an_optional_field_is_not_given(
    kind: str, base: int, path: tuple[Any, ...]
) -> None:
    event = copy.deepcopy(BASES[base][1])
    _set(event, path)
    prepared, problem = prepare_client_event(event)
    assert problem is None, problem
    assert prepared is not None
    node: Any = prepared
    for key in path[:-1]:
        node = node[key]
    if path[-1] in NULL_IS_A_VALUE:
        assert node[path[-1]] is None  # a value: turn detection off, no transcription...
    else:
        assert path[-1] not in node  # dropped: the server's default or current value applies

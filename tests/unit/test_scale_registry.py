"""The sans-I/O parts of the scale-out registry: keys, session ids, snapshots, redaction."""

from __future__ import annotations

import json

from realtalk.scale.registry import (
    Keys,
    decode_conversation,
    encode_conversation,
    new_session_id,
    redact_url,
    valid_session_id,
)


def test_keys_share_one_prefix() -> None:
    keys = Keys("app:")
    assert keys.workers == "app:workers"
    assert keys.worker("w1") == "app:worker:w1"
    assert keys.slots("w1") == "app:worker:w1:slots"
    assert keys.conversation("s") == "app:conversation:s"


def test_session_ids_are_random_and_validated() -> None:
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100 and all(valid_session_id(i) for i in ids)
    for bad in (
        None,
        7,
        "",
        "short",
        "x" * 65,
        "has space in it!!",
        "../../etc/passwd/xx",
        "é" * 20,
    ):
        assert not valid_session_id(bad), bad


def test_redact_url_hides_the_password_only() -> None:
    assert redact_url("redis://:s3cret@db:6379/0") == "redis://:***@db:6379/0"
    assert redact_url("rediss://app:s3cret@db:6380") == "rediss://app:***@db:6380"
    assert redact_url("unix:///tmp/r.sock") == "unix:///tmp/r.sock"
    assert "s3cret" not in redact_url("redis://user:s3cret@h")


def _message(role: str, text: str, image: bool = False) -> dict[str, object]:
    content: list[dict[str, str]] = [{"type": "input_text", "text": text}]
    if image:
        content.append({"type": "input_image", "image_url": "data:image/jpeg;base64," + "A" * 5000})
    return {"type": "message", "role": role, "content": content}


def test_a_conversation_round_trips() -> None:
    items = [
        _message("user", "my name is Ada"),
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
    ]
    text, dropped = encode_conversation(items)
    assert dropped == 0
    assert decode_conversation(text) == items


def test_an_oversized_conversation_loses_images_first_then_the_oldest_items() -> None:
    items = [_message("user", f"turn {i}", image=i == 9) for i in range(10)]
    text, dropped = encode_conversation(items, max_bytes=2000)
    assert dropped == 0 and len(text) <= 2000 and "input_image" not in text
    many = [_message("user", f"turn {i} " + "word " * 20) for i in range(100)]
    text, dropped = encode_conversation(many, max_bytes=4000)
    kept = decode_conversation(text)
    assert kept is not None and len(text.encode()) <= 4000
    assert dropped > 0 and len(kept) + dropped == 100
    assert kept[-1] == many[-1]  # the latest turns are the ones kept
    assert json.loads(text)["dropped"] == dropped


def test_unreadable_snapshots_are_no_conversation() -> None:
    assert decode_conversation(None) is None
    assert decode_conversation("not json") is None
    assert decode_conversation("[1, 2]") is None
    assert decode_conversation('{"items": 3}') is None
    assert decode_conversation('{"items": [1, {"no": "type"}, {"type": "message"}]}') == [
        {"type": "message"}
    ]

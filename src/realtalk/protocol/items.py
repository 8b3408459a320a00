"""Conversation items and their content parts, as both the client and the server write them.

``with_object`` adds ``"object": "realtime.item"``, which the server's copies carry and the
client's ``conversation.item.create`` leaves out.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "assistant_text_item",
    "function_call_item",
    "function_call_output_item",
    "input_image",
    "input_text",
    "message_item",
    "system_text_item",
    "user_text_item",
]


def input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def input_image(image_url: str, detail: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "input_image", "image_url": image_url}
    if detail is not None:
        part["detail"] = detail
    return part


def message_item(
    role: str,
    content: list[dict[str, Any]],
    *,
    item_id: str | None = None,
    status: str | None = None,
    with_object: bool = False,
) -> dict[str, Any]:
    """A ``message`` item (``system``, ``user`` or ``assistant``)."""
    item: dict[str, Any] = {"type": "message", "role": role, "content": content}
    return _identified(item, item_id, status, with_object)


def user_text_item(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    return message_item("user", [input_text(text)], item_id=item_id)


def assistant_text_item(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    """An assistant message the client may create (GA: ``output_text`` content)."""
    return message_item("assistant", [{"type": "output_text", "text": text}], item_id=item_id)


def system_text_item(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    return message_item("system", [input_text(text)], item_id=item_id)


def function_call_item(
    *,
    call_id: str,
    name: str,
    arguments: str,
    item_id: str | None = None,
    status: str | None = None,
    with_object: bool = False,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }
    return _identified(item, item_id, status, with_object)


def function_call_output_item(
    call_id: str, output: str, *, item_id: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "function_call_output", "call_id": call_id, "output": output}
    if item_id is not None:
        item["id"] = item_id
    return item


def _identified(
    item: dict[str, Any], item_id: str | None, status: str | None, with_object: bool
) -> dict[str, Any]:
    """``item`` with its id, ``object`` and status where given, in the order the server uses."""
    if item_id is not None:
        item["id"] = item_id
    if with_object:
        item["object"] = "realtime.item"
    if status is not None:
        item["status"] = status
    return item

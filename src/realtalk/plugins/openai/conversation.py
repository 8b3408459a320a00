"""A client-side mirror of the server's conversation, and its replay after a reconnect.

Why: a Realtime session dies at OpenAI's 60-minute limit or with the network, and a new session
starts with an empty conversation. To carry on, the client replays a *text copy* of what was said
into the new session. The mirror is updated only from the server's acknowledgements
(``conversation.item.added/done/deleted/truncated`` and transcripts), so it holds what the server
really had, not what the client hoped to send. Items the client created but the server has not
acknowledged yet are kept as *pending* and replayed after the acknowledged ones, so a tool output
sent just before a drop is not lost.

Replay rules (audio cannot be replayed, and clients may not create assistant audio):

- user audio → a user ``input_text`` with its transcript (skipped when there is none);
- assistant audio → an assistant ``output_text`` with the transcript of what was *heard*: after a
  truncation only the share of words matching the played share of audio is kept;
- text, function calls and function outputs → as they were; images → only the latest few.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from realtalk.protocol import events

__all__ = ["ConversationMirror"]

logger = logging.getLogger("realtalk.client")

#: Images are large; only the most recent ones are kept for replay.
MAX_REPLAYED_IMAGES = 4


@dataclass(slots=True)
class _Entry:
    item: dict[str, Any]
    transcript: str | None = None  # of the item's audio part (user or assistant)
    truncated: bool = False
    images: int = 0  # input_image parts still held


@dataclass(slots=True)
class ConversationMirror:
    """Ordered items by id, as the server acknowledged them, plus unacknowledged creations."""

    _order: list[str] = field(default_factory=list)
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The ids of the entries still holding images, in ``_order``'s order: a handful at most
    #: (each holds one or more, and only ``MAX_REPLAYED_IMAGES`` are kept), so limiting images
    #: never walks the whole conversation.
    _with_images: list[str] = field(default_factory=list)

    # -- acknowledgements ---------------------------------------------------------------------

    def added(self, item: dict[str, Any], previous_item_id: str | None = None) -> None:
        item_id = item.get("id")
        if not isinstance(item_id, str):
            return
        self._pending.pop(item_id, None)
        if item_id in self._entries:
            self._update(item_id, item)
            return
        entry = _Entry(item=_strip_audio(item))
        entry.images = _count_images(entry.item)
        # The server names the item before each one; it is nearly always the last (no search).
        appended = True
        if previous_item_id in self._entries and self._order[-1] != previous_item_id:
            self._order.insert(self._order.index(str(previous_item_id)) + 1, item_id)
            appended = False
        else:
            self._order.append(item_id)
        self._entries[item_id] = entry
        self._set_transcript_from(entry, item)
        self._images_changed(item_id, entry, appended=appended)

    def done(self, item: dict[str, Any]) -> None:
        item_id = item.get("id")
        if isinstance(item_id, str):
            if item_id not in self._entries:
                self.added(item)
            else:
                self._update(item_id, item)

    def deleted(self, item_id: str) -> None:
        self._pending.pop(item_id, None)
        if self._entries.pop(item_id, None) is not None:
            self._order.remove(item_id)
            if item_id in self._with_images:
                self._with_images.remove(item_id)

    def truncated(self, item_id: str, audio_end_ms: int, total_ms: int) -> None:
        """Keep the transcript share heard: ``audio_end_ms`` of ``total_ms`` received."""
        entry = self._entries.get(item_id)
        if entry is None:
            return
        words = (entry.transcript or "").split()
        keep = round(len(words) * audio_end_ms / total_ms) if total_ms > 0 else 0
        entry.transcript = " ".join(words[: max(0, min(len(words), keep))])
        entry.truncated = True

    def set_transcript(self, item_id: str, transcript: str) -> None:
        entry = self._entries.get(item_id)
        if entry is not None and not entry.truncated:
            entry.transcript = transcript

    def append_transcript(self, item_id: str, delta: str) -> None:
        """Agent transcript deltas, so a reply cut by a disconnect replays what arrived."""
        entry = self._entries.get(item_id)
        if entry is not None and not entry.truncated:
            entry.transcript = (entry.transcript or "") + delta

    # -- what the client sent -----------------------------------------------------------------

    def created(self, item: dict[str, Any]) -> None:
        """The client sent ``conversation.item.create`` for ``item`` (which carries an id)."""
        item_id = item.get("id")
        if isinstance(item_id, str) and item_id not in self._entries:
            self._pending[item_id] = _strip_images(item) if _count_images(item) else item

    def is_acknowledged(self, item_id: str) -> bool:
        return item_id in self._entries

    # -- queries ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._entries

    def item_ids(self) -> list[str]:
        """The acknowledged items' ids, oldest first."""
        return list(self._order)

    def item(self, item_id: str) -> dict[str, Any] | None:
        entry = self._entries.get(item_id)
        return copy.deepcopy(entry.item) if entry else None

    def transcript(self, item_id: str) -> str | None:
        entry = self._entries.get(item_id)
        return entry.transcript if entry else None

    def role(self, item_id: str) -> str | None:
        entry = self._entries.get(item_id)
        return entry.item.get("role") if entry else None

    def clear(self) -> None:
        self._order.clear()
        self._entries.clear()
        self._pending.clear()
        self._with_images.clear()

    def replay_items(self) -> list[dict[str, Any]]:
        """Items to create, in order, to rebuild this conversation in a fresh session."""
        out: list[dict[str, Any]] = []
        for item_id in self._order:
            replayed = _replayable(self._entries[item_id])
            if replayed is not None:
                out.append(replayed)
        out.extend(copy.deepcopy(item) for item in self._pending.values())
        return out

    # -- internals ----------------------------------------------------------------------------

    def _update(self, item_id: str, item: dict[str, Any]) -> None:
        entry = self._entries[item_id]
        entry.item = _strip_audio(item)
        entry.images = _count_images(entry.item)
        self._set_transcript_from(entry, item)
        self._images_changed(item_id, entry, appended=self._order[-1] == item_id)

    def _set_transcript_from(self, entry: _Entry, item: dict[str, Any]) -> None:
        if entry.truncated:
            return
        for part in item.get("content") or ():
            if part.get("type") in ("input_audio", "output_audio", "audio"):
                text = part.get("transcript")
                if isinstance(text, str) and text:
                    entry.transcript = text

    def _images_changed(self, item_id: str, entry: _Entry, *, appended: bool) -> None:
        """Keep ``_with_images`` in order, then strip the images beyond the latest few."""
        listed = item_id in self._with_images
        if entry.images and not listed:
            if appended:
                self._with_images.append(item_id)
            else:  # an image item inserted in the middle (rare): find its place once
                self._with_images = [i for i in self._order if self._entries[i].images]
        elif not entry.images and listed:
            self._with_images.remove(item_id)
        self._limit_images()

    def _limit_images(self) -> None:
        """Keep the images of the most recent items, ``MAX_REPLAYED_IMAGES`` in all."""
        seen = 0
        kept: list[str] = []
        for item_id in reversed(self._with_images):
            entry = self._entries[item_id]
            seen += entry.images
            if seen > MAX_REPLAYED_IMAGES:
                entry.item = _strip_images(entry.item)
                entry.images = 0
            else:
                kept.append(item_id)
        if len(kept) != len(self._with_images):
            self._with_images = kept[::-1]


def _count_images(item: dict[str, Any]) -> int:
    return sum(1 for p in item.get("content") or () if p.get("type") == "input_image")


def _strip_images(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    out["content"] = [p for p in item.get("content") or () if p.get("type") != "input_image"]
    return out


def _strip_audio(item: dict[str, Any]) -> dict[str, Any]:
    """The item without audio bytes (servers normally omit them; never keep them)."""
    out = dict(item)
    if "content" in item:
        out["content"] = [
            {k: v for k, v in part.items() if k != "audio"} for part in item.get("content") or ()
        ]
    return out


def _replayable(entry: _Entry) -> dict[str, Any] | None:
    item = entry.item
    kind = item.get("type")
    item_id = item.get("id")
    if kind == "function_call":
        return events.function_call_item(
            call_id=str(item.get("call_id") or ""),
            name=str(item.get("name") or ""),
            arguments=str(item.get("arguments") or "{}"),
            item_id=item_id,
        )
    if kind == "function_call_output":
        return events.function_call_output_item(
            str(item.get("call_id") or ""), str(item.get("output") or ""), item_id=item_id
        )
    if kind != "message":
        return None
    role = item.get("role")
    parts: list[dict[str, Any]] = []
    for part in item.get("content") or ():
        ptype = part.get("type")
        if ptype in ("input_text", "text", "output_text"):
            text = part.get("text") or ""
            if text:
                parts.append(
                    {"type": "output_text" if role == "assistant" else "input_text", "text": text}
                )
        elif ptype in ("input_audio", "output_audio", "audio"):
            if entry.transcript:
                kind_text = "output_text" if role == "assistant" else "input_text"
                parts.append({"type": kind_text, "text": entry.transcript})
        elif ptype == "input_image" and role == "user" and part.get("image_url"):
            parts.append(events.input_image(part["image_url"], part.get("detail")))
    if not parts and entry.transcript and role in ("user", "assistant"):
        kind_text = "output_text" if role == "assistant" else "input_text"
        parts.append({"type": kind_text, "text": entry.transcript})
    if not parts or role not in ("user", "assistant", "system"):
        logger.debug("not replaying item %s (nothing textual to carry over)", item_id)
        return None
    if role == "system":
        parts = [p for p in parts if p["type"] == "input_text"]
    return events.message_item(str(role), parts, item_id=item_id)

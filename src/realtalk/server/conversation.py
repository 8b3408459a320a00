"""One connection's conversation: the ordered items, their audio, and the edits a client may make.

Pure bookkeeping, no I/O: the connection calls it and turns what it returns into events. Items are
kept in their public shape (what ``conversation.item.added`` carries, never with audio bytes); the
audio of each audio content part is kept beside the item, in the wire format it arrived or was
sent in, so ``conversation.item.retrieve`` can return it and ``truncate`` can cut it.

Order is a linked list keyed by id, so inserting after any item (a reconnecting client replays
its whole conversation, each item after the one before), deleting and finding the previous item
are O(1). A list searched with ``list.index`` made replaying 2,000 items take seconds (the
entries' dataclass ``__eq__`` ran millions of times).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from realtalk.protocol.audio_formats import AudioFormat

from . import errors

__all__ = ["Conversation", "Entry", "SpokenSegment", "spoken_text"]


@dataclass(frozen=True, slots=True)
class SpokenSegment:
    """Where one voiced sentence sits in an assistant item: audio span and transcript span."""

    start_ms: float
    end_ms: float
    start_char: int
    end_char: int


@dataclass(eq=False)  # an entry is one item: compared by identity, never field by field
class Entry:
    """One conversation item plus what the public shape leaves out."""

    item: dict[str, Any]
    #: Audio bytes per content index, in ``audio_format``.
    audio: dict[int, bytearray] = field(default_factory=dict)
    audio_format: AudioFormat | None = None
    #: Assistant audio only: which transcript text each stretch of audio speaks.
    spoken: list[SpokenSegment] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.item["id"])

    def snapshot(self, *, with_audio: bool = False) -> dict[str, Any]:
        """A copy safe to put in an event (later edits of the entry do not leak into it)."""
        item = copy.deepcopy(self.item)
        if with_audio:
            for index, data in self.audio.items():
                item["content"][index]["audio"] = base64.b64encode(data).decode("ascii")
        return item

    def audio_ms(self, content_index: int = 0) -> int:
        data = self.audio.get(content_index)
        if data is None or self.audio_format is None:
            return 0
        return self.audio_format.ms_for_bytes(len(data))

    @property
    def is_assistant_audio(self) -> bool:
        return (
            self.item.get("type") == "message"
            and self.item.get("role") == "assistant"
            and any(p.get("type") == "output_audio" for p in self.item.get("content", []))
        )


class Conversation:
    """The default conversation of one session, in order."""

    def __init__(self) -> None:
        self._by_id: dict[str, Entry] = {}
        self._previous: dict[str, str | None] = {}
        self._next: dict[str, str | None] = {}
        self._first: str | None = None
        self._last: str | None = None

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def __iter__(self) -> Iterator[Entry]:
        """The entries in order (a snapshot: editing the conversation meanwhile is safe)."""
        entries: list[Entry] = []
        item_id = self._first
        while item_id is not None:
            entries.append(self._by_id[item_id])
            item_id = self._next[item_id]
        return iter(entries)

    def get(self, item_id: str) -> Entry | None:
        return self._by_id.get(item_id)

    @property
    def last_id(self) -> str | None:
        return self._last

    def previous_id(self, item_id: str) -> str | None:
        """The id of the item just before ``item_id`` (None at the beginning)."""
        return self._previous[item_id]

    def add(self, entry: Entry, previous_item_id: str | None = None) -> str | None:
        """Insert after ``previous_item_id`` (``"root"``: first; None: last); returns the id now
        before it. Raises :class:`errors.RequestError` for an unknown previous id or a duplicate."""
        item_id = entry.id
        if item_id in self._by_id:
            raise errors.duplicate_item(item_id)
        before: str | None
        if previous_item_id is None:
            before = self._last
        elif previous_item_id == "root":
            before = None
        elif previous_item_id in self._by_id:
            before = previous_item_id
        else:
            raise errors.previous_item_not_found(previous_item_id)
        after = self._first if before is None else self._next[before]
        self._by_id[item_id] = entry
        self._previous[item_id] = before
        self._next[item_id] = after
        if before is None:
            self._first = item_id
        else:
            self._next[before] = item_id
        if after is None:
            self._last = item_id
        else:
            self._previous[after] = item_id
        return before

    def delete(self, item_id: str) -> Entry:
        entry = self._by_id.pop(item_id, None)
        if entry is None:
            raise errors.item_not_found("delete", item_id)
        before = self._previous.pop(item_id)
        after = self._next.pop(item_id)
        if before is None:
            self._first = after
        else:
            self._next[before] = after
        if after is None:
            self._last = before
        else:
            self._previous[after] = before
        return entry

    def retrieve(self, item_id: str) -> dict[str, Any]:
        entry = self._by_id.get(item_id)
        if entry is None:
            raise errors.item_not_found("retrieve", item_id)
        return entry.snapshot(with_audio=True)

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """Cut an assistant audio item to what the user heard: audio and transcript.

        The transcript keeps the sentences heard in full and, of the sentence cut in the
        middle, the share of its words that fits the share of its audio that was played.
        """
        entry = self._by_id.get(item_id)
        if entry is None:
            raise errors.item_not_found("truncate", item_id)
        if not entry.is_assistant_audio:
            raise errors.truncate_unsupported()
        data = entry.audio.get(content_index)
        if data is None or entry.audio_format is None:
            raise errors.truncate_bad_content_index(content_index)
        duration = entry.audio_ms(content_index)
        if audio_end_ms > duration:
            raise errors.truncate_too_long(duration, audio_end_ms)
        del data[entry.audio_format.bytes_for_ms(audio_end_ms) :]
        part = entry.item["content"][content_index]
        transcript = part.get("transcript") or ""
        part["transcript"] = spoken_text(transcript, entry.spoken, audio_end_ms, duration)
        entry.spoken = [s for s in entry.spoken if s.start_ms < audio_end_ms]


def spoken_text(
    transcript: str, segments: list[SpokenSegment], audio_end_ms: float, total_ms: float
) -> str:
    """The part of ``transcript`` heard in the first ``audio_end_ms`` (whole words only)."""
    if audio_end_ms >= total_ms:
        return transcript
    if not segments:  # no timing known: assume the words are spread evenly over the audio
        segments = [SpokenSegment(0.0, float(total_ms), 0, len(transcript))]
    cut = 0
    for seg in segments:
        if audio_end_ms >= seg.end_ms:
            cut = seg.end_char
            continue
        if audio_end_ms > seg.start_ms and seg.end_ms > seg.start_ms:
            share = (audio_end_ms - seg.start_ms) / (seg.end_ms - seg.start_ms)
            cut = _word_boundary(transcript, seg.start_char, seg.end_char, share)
        break
    return transcript[:cut].rstrip()


def _word_boundary(text: str, start: int, end: int, share: float) -> int:
    """The end of the last whole word within the first ``share`` of ``text[start:end]``."""
    words = text[start:end].split()
    if not words:
        return start
    keep = int(len(words) * share)
    if keep <= 0:
        return start
    position = start
    for word in words[:keep]:
        position = text.index(word, position) + len(word)
    return position

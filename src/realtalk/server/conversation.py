"""One connection's conversation: the ordered items, their audio, and the edits a client may make.

Pure bookkeeping, no I/O: the connection calls it and turns what it returns into events. Items are
kept in their public shape (what ``conversation.item.added`` carries, never with audio bytes); the
audio of each audio content part is kept beside the item, in the wire format it arrived or was
sent in, so ``conversation.item.retrieve`` can return it and ``truncate`` can cut it.

Two things keep a long session cheap:

- **Order is a linked list keyed by id**, so inserting after any item (a reconnecting client
  replays its whole conversation, each item after the one before), deleting and finding the
  previous item are O(1). A list searched with ``list.index`` made replaying 2,000 items take
  seconds (the entries' dataclass ``__eq__`` ran millions of times).
- **Audio bytes are kept only for the most recent items** (:data:`KEEP_AUDIO_ITEMS` items holding
  audio, and at most :data:`KEEP_AUDIO_MS` of audio among them beyond the newest); older items
  keep only their audio's *duration*. A session that talks for an hour no longer holds ~170 MB
  of audio. What changes for a client: ``truncate`` on an older item still validates
  ``audio_end_ms`` against its duration and still cuts its transcript, and ``retrieve`` returns
  the item without the ``audio`` field of those parts. Clients truncate what they are playing
  (the newest reply), so truncation loses nothing.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from realtalk.protocol.audio_formats import AudioFormat

from . import errors

__all__ = [
    "KEEP_AUDIO_ITEMS",
    "KEEP_AUDIO_MS",
    "Conversation",
    "Entry",
    "SpokenSegment",
    "spoken_text",
]

#: How many of the most recent items holding audio keep their bytes.
KEEP_AUDIO_ITEMS = 8
#: How much audio (ms) those items may hold together, the newest one not counted.
KEEP_AUDIO_MS = 5 * 60 * 1000


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
    #: Audio bytes per content index, in ``audio_format`` (empty once released).
    audio: dict[int, bytearray] = field(default_factory=dict)
    audio_format: AudioFormat | None = None
    #: Assistant audio only: which transcript text each stretch of audio speaks.
    spoken: list[SpokenSegment] = field(default_factory=list)
    #: Duration (ms) per content index whose bytes were let go to bound memory.
    released_ms: dict[int, int] = field(default_factory=dict)
    #: Characters of text the client gave with the item (counted against the conversation).
    text_bytes: int = 0

    @property
    def id(self) -> str:
        return str(self.item["id"])

    def snapshot(self, *, with_audio: bool = False) -> dict[str, Any]:
        """A copy safe to put in an event (later edits of the entry do not leak into it).

        ``with_audio`` adds the audio of each part that still holds it (released parts have
        none)."""
        item = copy.deepcopy(self.item)
        if with_audio:
            for index, data in self.audio.items():
                if index not in self.released_ms:
                    item["content"][index]["audio"] = base64.b64encode(data).decode("ascii")
        return item

    def audio_ms(self, content_index: int = 0) -> int:
        """The part's audio duration, whether its bytes are still held or not."""
        released = self.released_ms.get(content_index)
        if released is not None:
            return released
        data = self.audio.get(content_index)
        if data is None or self.audio_format is None:
            return 0
        return self.audio_format.ms_for_bytes(len(data))

    def release_audio(self) -> None:
        """Let the audio bytes go, keeping each part's duration (and its key in ``audio``)."""
        for index in self.audio:
            if index not in self.released_ms:
                self.released_ms[index] = self.audio_ms(index)
                self.audio[index] = bytearray()

    @property
    def holds_audio(self) -> bool:
        """Has (or, for a reply still being voiced, will have) audio bytes."""
        return self.audio_format is not None and not self.released_ms

    @property
    def is_assistant_audio(self) -> bool:
        return (
            self.item.get("type") == "message"
            and self.item.get("role") == "assistant"
            and any(p.get("type") == "output_audio" for p in self.item.get("content", []))
        )


class Conversation:
    """The default conversation of one session, in order."""

    def __init__(
        self, *, keep_audio_items: int = KEEP_AUDIO_ITEMS, keep_audio_ms: int = KEEP_AUDIO_MS
    ) -> None:
        if keep_audio_items < 1 or keep_audio_ms < 0:
            raise ValueError("keep_audio_items must be >= 1 and keep_audio_ms >= 0")
        self._by_id: dict[str, Entry] = {}
        self._previous: dict[str, str | None] = {}
        self._next: dict[str, str | None] = {}
        self._first: str | None = None
        self._last: str | None = None
        #: Entries holding audio bytes, oldest first (dicts keep insertion order).
        self._with_audio: dict[str, Entry] = {}
        self._keep_audio_items = keep_audio_items
        self._keep_audio_ms = keep_audio_ms
        #: The sum of the entries' ``text_bytes``.
        self.text_bytes = 0

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
        self.text_bytes += entry.text_bytes
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
        if entry.holds_audio:
            self._with_audio[item_id] = entry
            self._release_old_audio()
        return before

    def delete(self, item_id: str) -> Entry:
        entry = self._by_id.pop(item_id, None)
        if entry is None:
            raise errors.item_not_found("delete", item_id)
        self.text_bytes -= entry.text_bytes
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
        self._with_audio.pop(item_id, None)
        return entry

    def retrieve(self, item_id: str) -> dict[str, Any]:
        """The item with the audio it still holds (older items' audio was let go)."""
        entry = self._by_id.get(item_id)
        if entry is None:
            raise errors.item_not_found("retrieve", item_id)
        return entry.snapshot(with_audio=True)

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """Cut an assistant audio item to what the user heard: audio and transcript.

        The transcript keeps the sentences heard in full and, of the sentence cut in the
        middle, the share of its words that fits the share of its audio that was played.
        An item whose audio bytes were released is cut by its recorded duration.
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
        if content_index in entry.released_ms:
            entry.released_ms[content_index] = audio_end_ms
        else:
            del data[entry.audio_format.bytes_for_ms(audio_end_ms) :]
        part = entry.item["content"][content_index]
        transcript = part.get("transcript") or ""
        part["transcript"] = spoken_text(transcript, entry.spoken, audio_end_ms, duration)
        entry.spoken = [s for s in entry.spoken if s.start_ms < audio_end_ms]

    def _release_old_audio(self) -> None:
        """Keep the bytes of the newest items within the limits; older ones keep durations.

        Walks only the items still holding audio (a handful), so each ``add`` stays O(1). An
        item still being written (``in_progress``: a reply being voiced) is never released."""
        kept, kept_ms, full = 0, 0, False
        for entry in reversed(list(self._with_audio.values())):
            ms = sum(entry.audio_ms(i) for i in entry.audio)
            if kept:
                full = full or kept >= self._keep_audio_items or kept_ms + ms > self._keep_audio_ms
            if full and entry.item.get("status") != "in_progress":
                entry.release_audio()
                del self._with_audio[entry.id]
                continue
            kept += 1
            kept_ms += ms if kept > 1 else 0


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

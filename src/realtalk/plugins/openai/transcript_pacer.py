"""The agent's transcript in step with its voice, and after a barge-in only what was heard.

The server sends each piece of the reply's transcript with the first audio of that piece, and the
audio arrives faster than it plays, so a transcript shown on arrival runs ahead of the voice, and
after a barge-in still shows words the user never heard. The pacer holds each piece until the
audio it belongs to starts playing: a piece that arrived when ``at_ms`` of the item's audio had
been received is released once ``played_ms`` reaches ``at_ms``. The final transcript is released
when everything before it has played. When the item is cut off, the unplayed pieces are dropped
and the final transcript is what was released so far, marked as interrupted.

No I/O and no clock: the model calls :meth:`tick` (on a timer while anything is held, armed for
when :meth:`due_in_ms` says the next piece is due) with a function that reads the played position
of an item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["TranscriptPacer"]

#: (item id, text so far, final, interrupted)
Emit = Callable[[str, str, bool, bool], None]


@dataclass
class _Item:
    pieces: list[tuple[float, str]] = field(default_factory=list)  # (audio position, text so far)
    final: tuple[float, str] | None = None
    shown: str = ""  # text released so far
    started: bool = False
    closed: bool = False


class TranscriptPacer:
    """Agent transcripts released as their audio plays."""

    def __init__(self, emit: Emit, *, max_items: int = 64) -> None:
        self._emit = emit
        self._items: dict[str, _Item] = {}
        self._max_items = max_items

    @property
    def holding(self) -> bool:
        """Whether anything waits to be released (the caller keeps ticking while so)."""
        return any(i.pieces or i.final for i in self._items.values() if not i.closed)

    def due_in_ms(self, played_ms: Callable[[str], float]) -> float | None:
        """How long until the next release, for the items already playing (None: nothing of
        theirs waits; an item that has not started is released by :meth:`started`'s tick)."""
        due: float | None = None
        for item_id, item in self._items.items():
            if not item.started or item.closed:
                continue
            if item.pieces:
                at = item.pieces[0][0]
            elif item.final is not None:
                at = item.final[0]
            else:
                continue
            wait = at - played_ms(item_id)
            due = wait if due is None else min(due, wait)
        return due

    def delta(self, item_id: str, text: str, at_ms: float) -> None:
        """The transcript so far, whose newest piece starts at ``at_ms`` of the item's audio."""
        item = self._item(item_id)
        if not item.closed:
            item.pieces.append((at_ms, text))

    def done(self, item_id: str, text: str, at_ms: float, *, has_audio: bool) -> None:
        """The whole transcript; the item's audio ends at ``at_ms`` (None of it: show now)."""
        item = self._item(item_id)
        if item.closed:
            return
        item.final = (at_ms, text)
        if not has_audio:
            item.started = True
            item.pieces.clear()
            self._release(item_id, item, float("inf"))

    def started(self, item_id: str) -> None:
        self._item(item_id).started = True

    def tick(self, played_ms: Callable[[str], float]) -> None:
        """Release what the played audio has reached."""
        for item_id, item in list(self._items.items()):
            if item.started and not item.closed:
                self._release(item_id, item, played_ms(item_id))

    def finished(self, item_id: str, *, interrupted: bool) -> None:
        """The item's audio ended: all of it played, or cut off (then only what was heard)."""
        item = self._items.get(item_id)
        if item is None or item.closed:
            return
        if interrupted:
            self.cut(item_id)
        else:
            item.started = True
            self._release(item_id, item, float("inf"))

    def cut(self, item_id: str) -> None:
        """Barge-in: drop what was not heard; the final transcript is what was shown."""
        item = self._items.get(item_id)
        if item is None or item.closed:
            return
        item.closed = True
        item.pieces.clear()
        item.final = None
        self._emit(item_id, item.shown, True, True)

    def _release(self, item_id: str, item: _Item, played: float) -> None:
        while item.pieces and item.pieces[0][0] <= played:
            _at, text = item.pieces.pop(0)
            item.shown = text
            self._emit(item_id, text, False, False)
        if item.final is not None and not item.pieces and item.final[0] <= played:
            item.shown = item.final[1]
            item.closed = True
            item.final = None
            self._emit(item_id, item.shown, True, False)

    def _item(self, item_id: str) -> _Item:
        item = self._items.get(item_id)
        if item is None:
            if len(self._items) >= self._max_items:  # forget the oldest finished ones
                for old in [k for k, v in self._items.items() if v.closed][: self._max_items // 2]:
                    del self._items[old]
            item = self._items[item_id] = _Item()
        return item

"""AudioOutput: paced playout of the agent's voice, and the one record of what was really played.

Why this exists: on barge-in the model must be told how much of its reply the user heard
(`conversation.item.truncate`). Estimates from wall clocks or byte counts are wrong (truncation
errors, "audio content is already shorter than ..."). Here the position is counted in samples
handed to the consumer (the WebRTC track, a speaker, a file), exact to the sample.

Also why: the seed kept playing stale audio after the second barge-in (a flag was never reset)
and played audio of cancelled responses. `flush()` empties everything every time, and audio that
arrives later for a flushed or discarded item is dropped.

Remote playout: a consumer that hands frames to a far end with its own buffer (a phone call's
media stream) is not where the audio is heard. It turns on :meth:`AudioOutput.confirm_playout`,
tags what it sends with :meth:`AudioOutput.playout_mark` and reports each mark the far end
confirms with :meth:`AudioOutput.confirm_played`; the positions of an interrupted item (flush,
discard, the finished callback) are then what was confirmed, not what was handed out.

Threading: all methods may be called from any thread (a lock guards the state), but callbacks run
in the thread that caused them, outside the lock; a speaker thread using `read_frame` must hop to
its event loop itself (`loop.call_soon_threadsafe`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .frame import AudioFrame, check_format, frame_unchecked

logger = logging.getLogger("realtalk.media")

_HISTORY_SIZE = 256  # finished/flushed items remembered for played_ms() and late-delta dropping


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What a barge-in interrupted.

    `item_id` is the item at the head of the queue (None when nothing was queued) and
    `played_ms` how much of it was handed out (0 when it had not started: delete it rather than
    truncate). `dropped_item_ids` are the items queued behind it that never started.
    """

    item_id: str | None
    played_ms: int
    dropped_item_ids: tuple[str, ...] = ()


class _Item:
    """One item's unplayed audio, kept as the chunks that were pushed (no copy into one buffer):
    a frame is usually a slice of one chunk, and a chunk of exactly one frame is handed out
    as it is."""

    __slots__ = ("chunks", "ended", "item_id", "off", "played", "size", "start_mark", "started")

    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        self.chunks: deque[bytes] = deque()
        self.off = 0  # bytes of chunks[0] already handed out
        self.size = 0  # unplayed bytes; may end with half a sample until the next push
        self.played = 0  # samples handed out
        self.started = False
        self.ended = False
        self.start_mark = 0  # samples handed out by the output before this item's first one

    def available(self) -> int:
        """Unplayed bytes that form whole samples."""
        return self.size & ~1

    def add(self, pcm: bytes) -> None:
        if pcm:
            self.chunks.append(pcm)
            self.size += len(pcm)

    def take(self, n: int) -> bytes:
        """The next ``n`` unplayed bytes (``n`` <= ``size``)."""
        self.size -= n
        chunks = self.chunks
        chunk = chunks[0]
        off = self.off
        end = off + n
        if end < len(chunk):
            self.off = end
            return chunk[off:end]
        if end == len(chunk):
            chunks.popleft()
            self.off = 0
            return chunk[off:] if off else chunk
        parts = []
        while n:
            chunk = chunks[0]
            left = len(chunk) - off
            if left > n:
                parts.append(chunk[off : off + n])
                off += n
                break
            parts.append(chunk[off:] if off else chunk)
            chunks.popleft()
            off = 0
            n -= left
        self.off = off
        return b"".join(parts)

    def drop_last_byte(self) -> None:
        """A half sample at the end that no push will complete."""
        self.size -= 1
        last = self.chunks.pop()[:-1]
        if not self.chunks and len(last) <= self.off:  # it was the head, now used up
            self.off = 0
        elif last:
            self.chunks.append(last)

    def clear(self) -> None:
        self.chunks.clear()
        self.off = self.size = 0


_Event = tuple[Callable[..., Any], tuple[Any, ...]]


class AudioOutput:
    """A queue of items (one per response audio item) played in push order as 20 ms frames.

    Consumers call `await next_frame()` (paced against `clock` when `realtime`) or `read_frame()`
    (unpaced, for a device that keeps its own clock). Silence is returned whenever nothing is
    ready, so a WebRTC track never stalls.
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        frame_ms: int = 20,
        jitter_ms: int = 40,
        clock: Callable[[], float] = time.monotonic,
        *,
        realtime: bool = True,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        max_lag_ms: int = 100,
        on_item_started: Callable[[str], Any] | None = None,
        on_item_finished: Callable[[str, int, bool], Any] | None = None,
        on_idle: Callable[[], Any] | None = None,
    ) -> None:
        check_format(sample_rate, 1)
        if frame_ms <= 0 or (sample_rate * frame_ms) % 1000:
            raise ValueError(
                f"frame_ms={frame_ms} is not a whole number of samples at {sample_rate} Hz"
            )
        if jitter_ms < 0 or max_lag_ms < 0:
            raise ValueError("jitter_ms and max_lag_ms must be >= 0")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.jitter_ms = jitter_ms
        self.realtime = realtime
        self.on_item_started = on_item_started
        self.on_item_finished = on_item_finished
        self.on_idle = on_idle
        self._clock = clock
        self._sleep = sleep
        self._frame_samples = sample_rate * frame_ms // 1000
        self._frame_bytes = 2 * self._frame_samples
        self._jitter_bytes = 2 * (sample_rate * jitter_ms // 1000)
        self._frame_s = frame_ms / 1000.0
        self._max_lag_s = max_lag_ms / 1000.0
        self._silence = AudioFrame(bytes(self._frame_bytes), sample_rate, 1)
        self._lock = threading.Lock()
        self._queue: deque[_Item] = deque()
        self._items: dict[str, _Item] = {}
        self._history: OrderedDict[str, int] = OrderedDict()  # item_id -> samples played
        self._dead: OrderedDict[str, None] = OrderedDict()  # flushed/discarded: drop late audio
        self._starved = True  # waiting for the jitter buffer to fill before (re)starting
        self._active = False  # an item has started since the last idle
        self._t0: float | None = None
        self._n = 0
        self._confirming = False
        self._queued = 0  # bytes pushed and not handed out, of every queued item
        self._handed = 0  # samples of audio (not silence) handed out since the start
        self._confirmed = 0  # of those, how many the far end confirmed it played

    # -- producer side -----------------------------------------------------------------------

    def push(self, item_id: str, pcm: bytes | bytearray | memoryview) -> None:
        """Queue int16 mono PCM of `item_id`; a trailing half sample waits for the next push."""
        with self._lock:
            item = self._items.get(item_id)
            if item is None:
                if item_id in self._dead:
                    return  # a late delta of a flushed/cancelled item: never play it
                if item_id in self._history:
                    raise ValueError(f"audio pushed for item {item_id!r} after it ended")
                item = _Item(item_id)
                self._items[item_id] = item
                self._queue.append(item)
            elif item.ended:
                raise ValueError(f"audio pushed for item {item_id!r} after end_item()")
            data = pcm if type(pcm) is bytes else bytes(pcm)  # ours to keep, as bytes
            item.add(data)
            self._queued += len(data)

    def end_item(self, item_id: str) -> None:
        """Mark that no more audio of `item_id` will come (it may then finish and play out
        without waiting for the jitter buffer)."""
        events: list[_Event] = []
        with self._lock:
            item = self._items.get(item_id)
            if item is None or item.ended:
                return
            item.ended = True
            if item.size & 1:
                logger.warning("item %s ended with half a sample; dropping one byte", item_id)
                item.drop_last_byte()
                self._queued -= 1
            if not item.size:
                # Nothing left to hand out (a started item is always the head): finish now,
                # not on some later frame.
                self._remove(item, interrupted=False, events=events)
        self._emit(events)

    def discard(self, item_id: str) -> int:
        """Drop the unplayed audio of a cancelled item (and any that arrives later).

        Returns the milliseconds of it that were already played.
        """
        events: list[_Event] = []
        with self._lock:
            self._mark_dead(item_id)
            item = self._items.get(item_id)
            if item is None:
                return self._ms(self._history.get(item_id, 0))
            if self._queue and self._queue[0] is item:
                self._starved = True
            played = self._heard(item)
            self._remove(item, interrupted=True, events=events)
        self._emit(events)
        return self._ms(played)

    def flush(self) -> FlushResult:
        """Barge-in: drop all queued audio now; the next frame handed out is silence."""
        events: list[_Event] = []
        with self._lock:
            if not self._queue:
                return FlushResult(None, 0)
            head = self._queue[0]
            dropped = tuple(it.item_id for it in list(self._queue)[1:])
            for it in list(self._queue):
                self._mark_dead(it.item_id)
                self._remove(it, interrupted=True, events=events)
            self._starved = True
            result = FlushResult(head.item_id, self._ms(self._heard(head)), dropped)
        self._emit(events)
        return result

    # -- consumer side -----------------------------------------------------------------------

    async def next_frame(self) -> AudioFrame:
        """The next frame, released at its deadline (start + n * frame_ms) when `realtime`.

        Deadlines never drift; if the consumer falls behind by more than `max_lag_ms` the
        schedule is re-anchored to now instead of bursting frames to catch up.
        """
        if self.realtime:
            now = self._clock()
            if self._t0 is None:
                self._t0, self._n = now, 0
            delay = self._t0 + self._n * self._frame_s - now
            if delay > 0:
                await self._sleep(delay)
            elif -delay > self._max_lag_s:
                logger.debug("playout consumer %.0f ms late: re-anchoring", -delay * 1000)
                self._t0, self._n = now, 0
            self._n += 1
        return self.read_frame()

    def read_frame(self) -> AudioFrame:
        """The next frame right away (no pacing): for consumers with their own clock."""
        with self._lock:
            # The common case, 50 times a second per session: the head item is playing and has
            # a whole frame left after this one is cut. No callback can fire, nothing to check.
            queue = self._queue
            if queue and not self._starved:
                item = queue[0]
                fb = self._frame_bytes
                size = item.size
                if item.started and (size > fb or (size == fb and not item.ended)):
                    chunk = item.chunks[0]
                    off = item.off
                    end = off + fb
                    if end < len(chunk):  # inside one pushed chunk: one slice
                        data = chunk[off:end]
                        item.off = end
                        item.size = size - fb
                    else:
                        data = item.take(fb)
                    self._queued -= fb
                    item.played += self._frame_samples
                    self._handed += self._frame_samples
                    return frame_unchecked(data, self.sample_rate)
            events: list[_Event] = []
            frame = self._take(events)
        if events:
            self._emit(events)
        return frame

    def _take(self, events: list[_Event]) -> AudioFrame:
        fb = self._frame_bytes
        while self._queue:
            item = self._queue[0]
            avail = item.available()
            if self._starved:
                if not item.ended and avail < self._jitter_bytes:
                    return self._silence  # jitter buffer still filling
                self._starved = False
            if avail >= fb:
                data = item.take(fb)
                self._queued -= fb
                self._hand_out(item, self._frame_samples, events)
                if item.ended and not item.size:
                    self._remove(item, interrupted=False, events=events)
                return frame_unchecked(data, self.sample_rate)
            if item.ended:
                if not avail:  # never had audio
                    self._remove(item, interrupted=False, events=events)
                    continue
                data = item.take(avail) + self._silence.data[avail:]
                self._queued -= item.size + avail
                item.clear()
                self._hand_out(item, avail // 2, events)
                self._remove(item, interrupted=False, events=events)
                return frame_unchecked(data, self.sample_rate)
            self._starved = True  # underrun inside an item: refill the jitter buffer
            return self._silence
        return self._silence

    def _hand_out(self, item: _Item, samples: int, events: list[_Event]) -> None:
        if not item.started:
            item.start_mark = self._handed
        item.played += samples
        self._handed += samples
        if not item.started:
            item.started = True
            self._active = True
            if self.on_item_started is not None:
                events.append((self.on_item_started, (item.item_id,)))

    def _remove(self, item: _Item, *, interrupted: bool, events: list[_Event]) -> None:
        self._queued -= item.size
        item.clear()
        self._queue.remove(item)
        del self._items[item.item_id]
        played = self._heard(item) if interrupted else item.played
        self._remember(self._history, item.item_id, played)
        if item.started and self.on_item_finished is not None:
            events.append((self.on_item_finished, (item.item_id, self._ms(played), interrupted)))
        if not self._queue:
            self._starved = True
            if self._active:
                self._active = False
                if self.on_idle is not None:
                    events.append((self.on_idle, ()))

    def _heard(self, item: _Item) -> int:
        """Samples of ``item`` the listener got: handed out, or confirmed by the far end."""
        if not self._confirming or not item.started:
            return item.played
        return max(0, min(item.played, self._confirmed - item.start_mark))

    def _mark_dead(self, item_id: str) -> None:
        self._remember(self._dead, item_id, None)

    @staticmethod
    def _remember(table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        if len(table) > _HISTORY_SIZE:
            table.popitem(last=False)

    @staticmethod
    def _emit(events: list[_Event]) -> None:
        for callback, args in events:
            try:
                callback(*args)
            except Exception:
                logger.exception("AudioOutput callback %r failed", callback)

    def _ms(self, samples: int) -> int:
        return samples * 1000 // self.sample_rate

    # -- remote playout --------------------------------------------------------------------------

    def confirm_playout(self) -> None:
        """From now on an interrupted item counts as played only up to the last confirmed mark.

        For consumers whose far end buffers what they send (a phone call's media stream).
        """
        with self._lock:
            self._confirming = True
            self._confirmed = self._handed

    def playout_mark(self) -> int:
        """A mark for everything handed out so far (samples since the start; it only grows)."""
        with self._lock:
            return self._handed

    def confirm_played(self, mark: int) -> None:
        """The far end has played everything up to ``mark`` (from :meth:`playout_mark`).

        Marks from the past or the future (a far end that echoes stale or made-up marks) never
        move the position backwards nor past what was handed out.
        """
        with self._lock:
            self._confirmed = max(self._confirmed, min(int(mark), self._handed))

    @property
    def unconfirmed_ms(self) -> int:
        """Milliseconds handed out that the far end has not confirmed yet."""
        with self._lock:
            return self._ms(self._handed - self._confirmed) if self._confirming else 0

    # -- queries -------------------------------------------------------------------------------

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of `item_id` handed out so far (0 for unknown items); with
        :meth:`confirm_playout`, an item still playing counts what the far end confirmed."""
        with self._lock:
            item = self._items.get(item_id)
            if item is not None:
                return self._ms(self._heard(item))
            return self._ms(self._history.get(item_id, 0))

    @property
    def buffered_ms(self) -> int:
        """Milliseconds of audio queued and not yet handed out, rounded UP: it is > 0 whenever
        any sample is waiting (a consumer polling it never strands a sub-millisecond tail)."""
        with self._lock:
            samples = sum(it.available() for it in self._queue) // 2
        return -(-samples * 1000 // self.sample_rate)

    @property
    def queued_ms(self) -> int:
        """Milliseconds of audio queued, without taking the lock (a limit's check per delta:
        a read racing the consumer is off by a frame at most)."""
        return self._queued * 500 // self.sample_rate

    @property
    def playing_item_id(self) -> str | None:
        """The item whose audio is being handed out (None when idle or still buffering)."""
        with self._lock:
            if self._queue and self._queue[0].started:
                return self._queue[0].item_id
            return None

    @property
    def silence_frame(self) -> AudioFrame:
        """The one frame object handed out whenever nothing is ready (compare with `is`)."""
        return self._silence
